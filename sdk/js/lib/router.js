//! The `Router` base class a plugin extends: the same shape as the Rust SDK's `Router` trait
//! (guest-sdk/src/router.rs) and the Python SDK's `Router`. One instance lives per plugin
//! instance in the host; calls never overlap, so its fields are the plugin's state.

/**
 * A configuration the plugin refuses; thrown from `init`, its message reaches the operator.
 * (Anything thrown by `init` refuses the plugin; this one says so on purpose.)
 */
export class ConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * A routing plugin: set up by `init`, asked to `choose` a backend for each request, and
 * optionally told how each attempt went (`onOutcome`).
 *
 * ```js
 * export class FirstHealthy extends Router {
 *   choose(request, backends, retry) {
 *     const healthy = backends.candidates(retry);
 *     return healthy.length > 0 ? pick(healthy[0]) : noOpinion();
 *   }
 * }
 * ```
 */
export class Router {
  /**
   * Whether the plugin wants `onOutcome` calls (off by default: feedback then costs nothing).
   * Override `wantsOutcomes` for a choice that depends on the configuration.
   */
  static OUTCOMES = false;

  /**
   * Set up from the configuration, parsed from JSON (`{}` when the operator gave none).
   * Throwing (e.g. a `ConfigError`) refuses the plugin with the error's message.
   *
   * The default accepts only an empty configuration, so that a typo in the operator's file is
   * reported instead of silently ignored (the Rust SDK's `init_default`).
   */
  init(config) {
    const empty =
      config == null || (typeof config === "object" && !Array.isArray(config) && Object.keys(config).length === 0);
    if (!empty) {
      throw new ConfigError(`this plugin takes no configuration, got ${JSON.stringify(config)}`);
    }
  }

  /** Whether this instance wants `onOutcome` calls, asked once right after `init`. */
  wantsOutcomes() {
    return Boolean(this.constructor.OUTCOMES);
  }

  /**
   * Called before the first `choose` and whenever the backend set changes; position in
   * `backends` (`BackendInfo`s) is the index used by `choose`. The SDK also keeps them for
   * `Backends.info`. The default does nothing.
   */
  backendsChanged(_backends) {}

  /**
   * Choose a backend for one request: return `pick(i, ...)`, `reject(status)` or `noOpinion()`.
   * `retry.tried` lists the backends that already failed this request.
   */
  choose(_request, _backends, _retry) {
    throw new Error(`${this.constructor.name} must define choose`);
  }

  /**
   * How one attempt went, if the plugin wants outcomes; possibly on another instance than the
   * one that decided (match by `outcome.tag`). The default does nothing.
   */
  onOutcome(_outcome) {}
}
