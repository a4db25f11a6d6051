//! Fleet mode: many lbx nodes kept in step through a shared store (etcd). What every node must
//! agree on — the backends with their runtime changes, the plugin and its config, the
//! fleet-wide settings — lives under one prefix of the store; listeners, certificates and the
//! store's own settings stay in each node's file.
//!
//! The shape, from APISIX's and Envoy's experience (DESIGN.md, "Scaling past one machine"):
//! - a write is one guarded transaction ([`store::Txn`]) that commits whole or not at all; a node
//!   never changes only its local copy, and answers 503 when the store is unreachable;
//! - a node reads the prefix at one revision R ([`store::Store::list`]), validates and swaps the
//!   whole, then watches from R+1 ([`store::Store::watch`]); every watch batch is one etcd
//!   response, so a transaction's changes are applied together; a compacted or lost watch makes
//!   it list again and apply only the difference;
//! - each node's own status lives in keys bound to a lease ([`store::Lease`]) that it keeps
//!   alive, so a node that dies disappears from the fleet view after the lease's TTL.
//!
//! - [`store`]: lbx's own view of the store, a trait and plain types; nothing else in the host
//!   names etcd-client types.
//! - [`etcd`]: the store on etcd v3 (the `etcd-client` crate), with `members` keeping requests
//!   away from members that stopped answering.
//! - [`follow`]: a node's copy of the fleet's keys, kept in step: listed, then watched, each
//!   watch batch applied whole, listed again after a compaction or a lost watch.
//! - [`layout`]: which key holds what.
//! - [`shared`]: the shared state read from one listing, checked, compared and laid over a
//!   node's own config.
//! - [`modules`]: the node's checked copies of plugin modules.
//! - [`state_file`]: the last applied state on disk, to start while the store is down.
//! - [`status`]: what each node says of itself (applied revision, plugin, refusals).
//! - [`node`]: this lbx as a node: its start (from the store, seeding an empty one, or from
//!   its state file) and the handle the admin API uses; `sync` keeps it in step and publishes
//!   its status; [`writes`] are the admin API's changes as guarded transactions.
//! - [`cli`]: `lbx fleet status`, read from the store.
//! - [`canary`]: a canary declared fleet-wide, judged on the sum of every node's figures by
//!   one node (`judge`).
//! - [`overlay`]: the fleet's part of a node's config, and the trait the reload path
//!   implements to put it in force; `fetch` brings a module too large for the store.

pub mod canary;
pub mod cli;
pub mod etcd;
mod fetch;
pub mod follow;
mod judge;
pub mod layout;
mod members;
pub mod metrics;
pub mod modules;
pub mod node;
pub mod overlay;
pub mod shared;
pub mod state_file;
pub mod status;
pub mod store;
mod sync;
pub mod writes;

pub use node::{FleetNode, StartedFrom};
pub use overlay::{Applier, Overlay};
