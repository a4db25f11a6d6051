//! What the host asks of a plugin, done once for both worlds: the Wasm glue (`component.js`)
//! and the test kit (`testkit.js`) drive a user's `Router` through this same `Driver`, so what
//! the tests see (configuration parsing, refusals, the kept `Backends`, outcome delivery) is
//! what runs in lbx.

import { Backends, FIRST_ATTEMPT } from "./backends.js";
import { Router } from "./router.js";

/** `init` refused the plugin; the message is what lbx reports. */
export class Refused extends Error {
  constructor(message) {
    super(message);
    this.name = "Refused";
  }
}

/** One plugin instance: the user's router object, the backends' identities, and the `Backends` refilled per request. */
export class Driver {
  constructor(RouterClass) {
    if (typeof RouterClass !== "function" || !(RouterClass.prototype instanceof Router)) {
      throw new TypeError(`a plugin needs a subclass of Router, got ${String(RouterClass)}`);
    }
    this.RouterClass = RouterClass;
    this.router = undefined;
    this.backends = new Backends();
    this.outcomes = false;
  }

  /**
   * Parse `config` (JSON text), create and set up the router; whether it wants outcomes.
   * Throws `Refused` with the reason when the configuration is bad.
   */
  init(config) {
    let parsed = {};
    if (config && config.trim()) {
      try {
        parsed = JSON.parse(config);
      } catch (problem) {
        throw new Refused(`invalid plugin config (not JSON): ${problem.message}`);
      }
    }
    let router;
    try {
      router = new this.RouterClass();
      router.init(parsed);
      this.outcomes = Boolean(router.wantsOutcomes());
    } catch (problem) {
      // Any failure of the user's init refuses the plugin, with its message.
      throw new Refused(`invalid plugin config: ${problem instanceof Error ? problem.message : String(problem)}`);
    }
    this.router = router;
    return this.outcomes;
  }

  /** Keep the new backend set (`BackendInfo`s) and signal names, and tell the router. */
  backendsChanged(infos, signalNames) {
    this.backends.setIdentities(infos, signalNames);
    this._router().backendsChanged(infos);
  }

  /** One decision on the host's flat numbers. */
  choose(request, stats, signals, retry) {
    const router = this._router();
    const backends = this.backends;
    backends.refill(stats, signals);
    return router.choose(request, backends, retry ?? FIRST_ATTEMPT);
  }

  /** Deliver an outcome (the host calls this only when `init` asked for outcomes). */
  onOutcome(outcome) {
    this._router().onOutcome(outcome);
  }

  _router() {
    if (this.router === undefined) throw new Error("the plugin was called before init");
    return this.router;
  }
}
