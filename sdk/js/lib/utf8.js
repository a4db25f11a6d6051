//! UTF-8 between text and bytes, for the body prefix and kv values. QuickJS (the Wasm build's
//! engine) has no `TextEncoder`/`TextDecoder`, so this uses them where they exist (node,
//! StarlingMonkey) and a small strict codec where they do not.

const decoder = typeof TextDecoder === "function" ? new TextDecoder("utf-8", { fatal: true }) : null;
const encoder = typeof TextEncoder === "function" ? new TextEncoder() : null;

/** `bytes` as text; throws on invalid UTF-8 (a truncated body is not JSON anyway). */
export function utf8Decode(bytes) {
  if (decoder !== null) return decoder.decode(bytes);
  let out = "";
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    let cp;
    let extra;
    if (b < 0x80) {
      cp = b;
      extra = 0;
    } else if (b >= 0xc2 && b < 0xe0) {
      cp = b & 0x1f;
      extra = 1;
    } else if (b >= 0xe0 && b < 0xf0) {
      cp = b & 0x0f;
      extra = 2;
    } else if (b >= 0xf0 && b < 0xf5) {
      cp = b & 0x07;
      extra = 3;
    } else {
      throw new TypeError(`invalid UTF-8 at byte ${i}`);
    }
    for (let k = 1; k <= extra; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) throw new TypeError(`invalid UTF-8 at byte ${i + k}`);
      cp = (cp << 6) | (c & 0x3f);
    }
    if ((extra === 2 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) || (extra === 3 && (cp < 0x10000 || cp > 0x10ffff))) {
      throw new TypeError(`invalid UTF-8 at byte ${i}`);
    }
    out += String.fromCodePoint(cp);
    i += extra + 1;
  }
  return out;
}

/** `text` as UTF-8 bytes. */
export function utf8Encode(text) {
  if (encoder !== null) return encoder.encode(text);
  const out = [];
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (cp < 0x80) out.push(cp);
    else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  }
  return Uint8Array.from(out);
}
