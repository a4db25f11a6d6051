//! The host's small key-value store, shared by every instance of the plugin and kept across hot
//! swaps: `kv.get`, `kv.set`, `kv.insert`, `kv.delete`, `kv.increment`. Bounded: the host
//! refuses writes past its size (`KvError`).

import { services } from "./host.js";
import { utf8Decode, utf8Encode } from "./utf8.js";

function bytes(value) {
  return typeof value === "string" ? utf8Encode(value) : Uint8Array.from(value);
}

/** The value stored under `key` (a `Uint8Array`), or undefined. */
export function get(key) {
  return services().kvGet(key) ?? undefined;
}

/** The value stored under `key` as UTF-8 text, or undefined. */
export function getText(key) {
  const value = get(key);
  return value === undefined ? undefined : utf8Decode(value);
}

/** Store `value` (bytes, or text as UTF-8) under `key`; throws `KvError` when refused. */
export function set(key, value) {
  services().kvSet(key, bytes(value));
}

/** Store `value` only if `key` is absent; true if it was stored. Throws `KvError` when refused. */
export function insert(key, value) {
  return services().kvInsert(key, bytes(value));
}

/** Remove `key`; true if it existed. */
// `delete` is a reserved word, so the function is `remove`, exported under both names.
function remove(key) {
  return services().kvDelete(key);
}
export { remove, remove as delete };

/** Atomically add `delta` to the counter under `key` (absent counts as 0); the new value. */
export function increment(key, delta = 1) {
  return services().kvIncrement(key, delta);
}
