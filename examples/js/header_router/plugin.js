//! The Wasm build's entry (build.sh bundles it): hands the router class to the SDK's glue,
//! which exports the contract's `router` interface. Tests import app.js instead, so node never
//! needs the host's interfaces.

import { bind } from "@lbx/router/component";

import { HeaderRouter } from "./app.js";

export const router = bind(HeaderRouter);
