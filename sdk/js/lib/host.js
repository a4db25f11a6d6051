//! The host's services to a plugin: the log, the monotonic clock and the key-value store, behind
//! one replaceable services object.
//!
//! Under node (tests) the services are `MemoryServices`: an in-memory store with the host's
//! limits, a log kept as a list, a clock that moves only when a test advances it. The Wasm
//! build's glue (`component.js`) installs services that call the host instead, so a plugin's
//! code is the same in both.

import { utf8Encode } from "./utf8.js";

/** Severity of a log line: the contract's `log-level` case names. */
export const LogLevel = Object.freeze({
  TRACE: "trace",
  DEBUG: "debug",
  INFO: "info",
  WARN: "warn",
  ERROR: "error",
});

/** A write the host refused: `reason` is `"key-too-long"` or `"store-full"`. */
export class KvError extends Error {
  constructor(reason) {
    super(`kv write refused: ${reason}`);
    this.name = "KvError";
    this.reason = reason;
  }
}

/** The longest key the host accepts, in bytes (wit/router.wit, `kv-error.key-too-long`). */
export const MAX_KEY_BYTES = 256;

const I64_MIN = -(2n ** 63n);
const U64 = 2n ** 64n;

/**
 * The host's services in memory, with the host's rules: keys of at most 256 bytes, a size cap
 * (`maxBytes`, none by default), counters as 8 little-endian bytes wrapping like an i64.
 */
export class MemoryServices {
  constructor(maxBytes = undefined) {
    /** @type {Map<string, Uint8Array>} */
    this.store = new Map();
    /** @type {Array<[string, string]>} the lines logged, as `[level, message]` */
    this.lines = [];
    this.clockUs = 0;
    this.maxBytes = maxBytes;
  }

  log(level, message) {
    this.lines.push([level, message]);
  }

  nowUs() {
    return this.clockUs;
  }

  kvGet(key) {
    return this.store.get(key);
  }

  _check(key, value) {
    const keyBytes = utf8Encode(key).length;
    if (keyBytes > MAX_KEY_BYTES) throw new KvError("key-too-long");
    if (this.maxBytes !== undefined) {
      let size = 0;
      for (const [k, v] of this.store) if (k !== key) size += utf8Encode(k).length + v.length;
      if (size + keyBytes + value.length > this.maxBytes) throw new KvError("store-full");
    }
  }

  kvSet(key, value) {
    this._check(key, value);
    this.store.set(key, Uint8Array.from(value));
  }

  kvInsert(key, value) {
    if (this.store.has(key)) return false;
    this.kvSet(key, value);
    return true;
  }

  kvDelete(key) {
    return this.store.delete(key);
  }

  kvIncrement(key, delta) {
    const old = this.store.get(key);
    let current = 0n;
    if (old !== undefined && old.length === 8) {
      current = new DataView(old.buffer, old.byteOffset, 8).getBigInt64(0, true);
    }
    // Wraps like the host's i64.
    const next = ((((current + BigInt(delta) - I64_MIN) % U64) + U64) % U64) + I64_MIN;
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigInt64(0, next, true);
    this.kvSet(key, bytes);
    return Number(next);
  }
}

let current = new MemoryServices();

/**
 * Make `services` the host's services (the glue does this in the Wasm build; tests may install
 * a fresh `MemoryServices`). Returns it.
 */
export function install(services) {
  current = services;
  return services;
}

/** The services in use. */
export function services() {
  return current;
}

/** Write a line to lbx's log, tagged with the plugin. `level` is a `LogLevel`. */
export function log(level, message) {
  current.log(level, String(message));
}

/** Microseconds on a monotonic clock shared by every instance of the plugin (a number). */
export function nowUs() {
  return current.nowUs();
}
