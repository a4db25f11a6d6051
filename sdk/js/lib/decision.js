//! The plugin's answer for one request: `pick` a backend (with headers, fallbacks, statuses worth
//! a retry, a path rewrite, a tag), `reject` the request with a status, or `noOpinion` (the
//! host's built-in fallback decides). Plain frozen values, so the test kit reads them without
//! Wasm; the glue (`component.js`) turns them into the contract's types.

/** Headers as `[[name, value], ...]` or `{ name: value }`, normalised to pairs. */
function headerPairs(headers) {
  if (headers == null) return EMPTY;
  const items = Array.isArray(headers) ? headers : Object.entries(headers);
  return Object.freeze(items.map(([name, value]) => Object.freeze([String(name), String(value)])));
}

const EMPTY = Object.freeze([]);

/** Send the request to backend `backend` (its index in this call's backends). */
export class Pick {
  constructor(backend, options = {}) {
    this.backend = backend;
    /** Headers added to the request sent to the backend, as `[name, value]` pairs. */
    this.upstreamHeaders = headerPairs(options.upstreamHeaders);
    /** Headers added to the response sent to the client (e.g. a sticky `set-cookie`). */
    this.downstreamHeaders = headerPairs(options.downstreamHeaders);
    /** Alternates in order of preference, taken by retries without calling `choose` again. */
    this.fallbacks = Object.freeze(Array.from(options.fallbacks ?? EMPTY, Number));
    /** Response statuses worth another attempt (e.g. 429, 503). */
    this.retryOn = Object.freeze(Array.from(options.retryOn ?? EMPTY, Number));
    /** A new upstream path and query in origin form (`/v1/users?page=2`), or undefined. */
    this.rewrite = options.rewrite ?? undefined;
    /** An opaque number handed back in the `Outcome` of this pick (0: none). */
    this.tag = Number(options.tag ?? 0);
    Object.freeze(this);
  }

  /** Whether anything beyond backend and headers is set (a plain pick crosses cheaper). */
  get hasOptions() {
    return (
      this.fallbacks.length > 0 || this.retryOn.length > 0 || this.rewrite !== undefined || this.tag !== 0
    );
  }
}

/** Answer the client directly with `status` (4xx or 5xx) and these headers. */
export class Reject {
  constructor(status, headers) {
    this.status = status;
    this.headers = headerPairs(headers);
    Object.freeze(this);
  }
}

/** No preference: the host's built-in fallback (least in-flight among healthy) decides. */
export class NoOpinion {
  constructor() {
    Object.freeze(this);
  }
}

const NO_OPINION = new NoOpinion();

/**
 * The plain pick of each index, made once: this runs on every decision, and the glue
 * recognises these by identity to send an answer it lowered once.
 */
export const PLAIN_PICKS = new Map();

/**
 * Send the request to backend `backend`, with optional headers and pick options:
 * `pick(2, { downstreamHeaders: { "set-cookie": "b=2" }, fallbacks: [0], retryOn: [503], tag: 7 })`.
 */
export function pick(backend, options) {
  if (options === undefined) {
    let plain = PLAIN_PICKS.get(backend);
    if (plain === undefined) {
      plain = new Pick(backend);
      PLAIN_PICKS.set(backend, plain);
    }
    return plain;
  }
  return new Pick(backend, options);
}

/** Answer the client directly with `status` (e.g. 429 with `{ "retry-after": "2" }`). */
export function reject(status, headers) {
  return new Reject(status, headers);
}

/** Leave the choice to the host's built-in fallback. */
export function noOpinion() {
  return NO_OPINION;
}
