//! What a router knows of its backends: identities (`BackendInfo`, from `backendsChanged`), the
//! host's live numbers for one request (`BackendStats`, read through `Backends`), the backend
//! signals (Prometheus gauges lbx scrapes) by name, and the candidates a router may choose from.
//!
//! The host sends the per-request numbers as one flat list, 5 per backend (healthy, weight,
//! in-flight, ewma-latency-us, recent-failures: `wit/router.wit`, `router.choose`). `Backends`
//! keeps that list as it came and reads it by index: making an object per backend on every
//! request would cost more than most routers' whole decision, so a `BackendStats` is made only
//! when asked for (`backends.at(i)`).

/** Numbers per backend in the flat `stats` list of `router.choose`. */
export const STATS_FIELDS = 5;
const HEALTHY = 0;
const WEIGHT = 1;
const IN_FLIGHT = 2;
const EWMA = 3;
const FAILURES = 4;

/** The identity of one backend, as configured: delivered by `Router.backendsChanged`. */
export class BackendInfo {
  /**
   * @param {string} id stable identifier from the configuration (defaults to the address)
   * @param {string} address `host:port` lbx connects to
   * @param {number} [weight] relative weight from the configuration
   * @param {Record<string, string>} [labels] free-form labels, e.g. `{ pool: "api" }`
   */
  constructor(id, address, weight = 1, labels = {}) {
    this.id = id;
    this.address = address;
    this.weight = weight;
    this.labels = Object.freeze({ ...labels });
    Object.freeze(this);
  }

  /** Whether every label of `selector` is set on this backend to the same value. */
  matches(selector) {
    const labels = this.labels;
    for (const key in selector) {
      if (labels[key] !== selector[key]) return false;
    }
    return true;
  }
}

/** Live statistics of one backend at this request, as plain numbers. */
export class BackendStats {
  constructor({
    healthy = true,
    weight = 1,
    inFlight = 0,
    ewmaLatencyUs = 0,
    recentFailures = 0,
  } = {}) {
    /** Whether the host considers the backend usable right now. */
    this.healthy = Boolean(healthy);
    /** Relative weight from the configuration. */
    this.weight = weight;
    /** Requests this lbx is serving on the backend now (always current). */
    this.inFlight = inFlight;
    /** Moving average of time to response headers, in µs (0 until the first response). */
    this.ewmaLatencyUs = ewmaLatencyUs;
    /** Failures seen recently; decays back to 0 on success. */
    this.recentFailures = recentFailures;
    Object.freeze(this);
  }

  /** This backend's 5 numbers in the host's wire order. */
  flat() {
    return [this.healthy ? 1 : 0, this.weight, this.inFlight, this.ewmaLatencyUs, this.recentFailures];
  }
}

/** What the host knows about earlier attempts of this request. */
export class RetryContext {
  /**
   * @param {number} [attempt] 0 for the first attempt, 1 for the first retry, and so on
   * @param {readonly number[]} [tried] indexes of backends that already failed this request
   */
  constructor(attempt = 0, tried = []) {
    this.attempt = attempt;
    this.tried = tried;
    Object.freeze(this);
  }
}

/** The retry context of every first attempt (the host sends none): shared, as it never changes. */
export const FIRST_ATTEMPT = new RetryContext();

const NO_SIGNALS = Object.freeze([]);

/**
 * Every backend for one request: `length`, `at(i)` (a `BackendStats`), per-field readers by
 * index (`inFlight(i)`, ...), identities (`info(i)`), signals by name, and candidates.
 *
 * The SDK keeps one `Backends` per plugin instance and refills it for each request.
 */
export class Backends {
  /**
   * @param {ArrayLike<number> | Iterable<BackendStats>} [stats] the host's flat list (5 numbers
   *   per backend) or `BackendStats` values
   * @param {readonly BackendInfo[]} [infos]
   * @param {readonly string[]} [signalNames]
   * @param {ArrayLike<number> | null} [signals]
   */
  constructor(stats = [], infos = [], signalNames = [], signals = null) {
    let items = Array.isArray(stats) || ArrayBuffer.isView(stats) ? stats : Array.from(stats);
    if (items.length > 0 && items[0] instanceof BackendStats) {
      items = items.flatMap((b) => b.flat());
    }
    this._infos = infos;
    this._names = signalNames;
    this.refill(items, signals);
  }

  /** Take one request's numbers (the SDK's glue calls this; names and infos stay). */
  refill(stats, signals) {
    this._stats = stats;
    this._count = (stats.length / STATS_FIELDS) | 0;
    this._signals = signals == null ? NO_SIGNALS : signals;
  }

  /** Keep the identities and signal names of the last `backendsChanged`. */
  setIdentities(infos, signalNames) {
    this._infos = infos;
    this._names = signalNames;
  }

  /** How many backends this request sees. */
  get length() {
    return this._count;
  }

  /** Backend `index`'s numbers as one object (made on demand). Throws when out of range. */
  at(index) {
    if (!(index >= 0 && index < this._count)) {
      throw new RangeError(`backend ${index} out of range (${this._count} backends)`);
    }
    const s = this._stats;
    const at = index * STATS_FIELDS;
    return new BackendStats({
      healthy: s[at] !== 0,
      weight: s[at + 1],
      inFlight: s[at + 2],
      ewmaLatencyUs: s[at + 3],
      recentFailures: s[at + 4],
    });
  }

  *[Symbol.iterator]() {
    for (let i = 0; i < this._count; i++) yield this.at(i);
  }

  // Per-field readers: no object per backend, for the hot path.
  /** Whether backend `index` is usable right now. */
  healthy(index) {
    return this._stats[index * STATS_FIELDS + HEALTHY] !== 0;
  }

  /** Backend `index`'s configured weight. */
  weight(index) {
    return this._stats[index * STATS_FIELDS + WEIGHT];
  }

  /** Requests in flight on backend `index`. */
  inFlight(index) {
    return this._stats[index * STATS_FIELDS + IN_FLIGHT];
  }

  /** Backend `index`'s moving average latency to response headers, in µs. */
  ewmaLatencyUs(index) {
    return this._stats[index * STATS_FIELDS + EWMA];
  }

  /** Backend `index`'s recent failures. */
  recentFailures(index) {
    return this._stats[index * STATS_FIELDS + FAILURES];
  }

  // Identities, from the last `backendsChanged`.
  /** Backend `index`'s identity (id, address, weight, labels), or undefined if unknown. */
  info(index) {
    return index >= 0 && index < this._infos.length ? this._infos[index] : undefined;
  }

  /** Backend `index`'s labels (empty if unknown). */
  labels(index) {
    const info = this.info(index);
    return info === undefined ? {} : info.labels;
  }

  // Candidates.
  /** Indexes of the healthy backends, in order. */
  healthyIndices() {
    const s = this._stats;
    const out = [];
    for (let i = 0, at = 0; i < this._count; i++, at += STATS_FIELDS) {
      if (s[at] !== 0) out.push(i);
    }
    return out;
  }

  /**
   * Healthy backends not yet tried by this request; every healthy backend when all of them
   * were tried (a retry then still has somewhere to go), as the Rust SDK's `Candidates`.
   */
  candidates(retry = FIRST_ATTEMPT) {
    const healthy = this.healthyIndices();
    const tried = retry.tried;
    if (tried.length === 0) return healthy;
    const fresh = healthy.filter((i) => !tried.includes(i));
    return fresh.length > 0 ? fresh : healthy;
  }

  /** The index among `indices` with the fewest requests in flight (the first on a tie). */
  leastInFlight(indices) {
    const s = this._stats;
    let best;
    let low = 0;
    for (const i of indices) {
      const n = s[i * STATS_FIELDS + IN_FLIGHT];
      if (best === undefined || n < low) {
        best = i;
        low = n;
      }
    }
    return best;
  }

  // Signals: `1 + n` numbers per backend (scrape age, then one per name); NaN when missing.
  /** The names of the backend signals, in slot order (empty when none are configured). */
  get signalNames() {
    return this._names;
  }

  /** Backend `index`'s latest value of the signal `name`; undefined if missing or unknown. */
  signal(index, name) {
    const slot = this._names.indexOf(name);
    return slot < 0 ? undefined : this._reading(index, 1 + slot);
  }

  /** Age in milliseconds of backend `index`'s last successful scrape; undefined if never. */
  signalAgeMs(index) {
    return this._reading(index, 0);
  }

  _reading(index, offset) {
    const at = index * (this._names.length + 1) + offset;
    if (index < 0 || at >= this._signals.length) return undefined;
    const value = this._signals[at];
    return Number.isNaN(value) ? undefined : value;
  }
}
