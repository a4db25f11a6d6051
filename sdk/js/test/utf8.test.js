//! The UTF-8 codec QuickJS builds use (it has no TextEncoder/TextDecoder): loaded here with
//! those globals hidden, and checked against node's own codec.
//!
//! Run: node --test sdk/js

import assert from "node:assert/strict";
import { test } from "node:test";

const saved = [globalThis.TextDecoder, globalThis.TextEncoder];
delete globalThis.TextDecoder;
delete globalThis.TextEncoder;
// A query string makes a fresh module instance, evaluated without the globals.
const { utf8Decode, utf8Encode } = await import("../lib/utf8.js?without-text-codecs");
[globalThis.TextDecoder, globalThis.TextEncoder] = saved;

const samples = ["", "plain", '{"model": "llama-3"}', "héllo wörld", "日本語", "emoji 🚀 done"];

test("the fallback codec round-trips text as node's codec does", () => {
  for (const text of samples) {
    const bytes = utf8Encode(text);
    assert.deepEqual(Array.from(bytes), Array.from(new TextEncoder().encode(text)), text);
    assert.equal(utf8Decode(bytes), text);
  }
});

test("the fallback decoder refuses invalid and truncated UTF-8", () => {
  for (const bad of [[0xff], [0xc3], [0xe6, 0x97], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0x80]]) {
    assert.throws(() => utf8Decode(Uint8Array.from(bad)), TypeError, JSON.stringify(bad));
  }
});
