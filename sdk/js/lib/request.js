//! The incoming request as a plugin sees it: method, path, query, authority, headers, cookies,
//! the client's address, and the first bytes of the body (raw and as parsed JSON).
//!
//! Every accessor of the host's request copies a string across the Wasm boundary (~95 ns each,
//! and more to make a JS string), so `Request` asks only for what the plugin reads, and keeps
//! what it got for the rest of the decision: a rule list that reads `path()` five times pays once.

import { utf8Decode } from "./utf8.js";

const UNSET = Symbol("unset");

/**
 * The request being routed. Subclasses provide the `_fetch*` readers (the host's request in
 * the Wasm build, the test kit's `FakeRequest` in tests); the public methods cache answers.
 */
export class Request {
  constructor() {
    this._path = UNSET;
    this._method = UNSET;
    this._body = UNSET;
    this._json = UNSET;
  }

  /** The HTTP method, e.g. `GET`. */
  method() {
    if (this._method === UNSET) this._method = this._fetchMethod();
    return this._method;
  }

  /** The path without the query string, e.g. `/api/users`. */
  path() {
    if (this._path === UNSET) this._path = this._fetchPath();
    return this._path;
  }

  /** The query string without the leading `?`, or undefined. */
  query() {
    return this._fetchQuery() ?? undefined;
  }

  /** The Host header (or HTTP/2 `:authority`), or undefined. */
  authority() {
    return this._fetchAuthority() ?? undefined;
  }

  /** The first header called `name` (case-insensitive), if present and valid text. */
  header(name) {
    return this._fetchHeader(name.toLowerCase()) ?? undefined;
  }

  /** The value of the cookie `name` (case-sensitive), if present. */
  cookie(name) {
    return this._fetchCookie(name) ?? undefined;
  }

  /** The client's IP address as text, e.g. `127.0.0.1` or `::1`. */
  clientIp() {
    return this._fetchClientIp();
  }

  /** The client's TCP port. */
  clientPort() {
    return this._fetchClientPort();
  }

  /** The client's address as `ip:port` (`[ip]:port` for IPv6). */
  client() {
    const ip = this.clientIp();
    return ip.includes(":") ? `[${ip}]:${this.clientPort()}` : `${ip}:${this.clientPort()}`;
  }

  /**
   * The first bytes of the body (a `Uint8Array`), up to the plugin's `body_prefix` limit;
   * undefined when the limit is 0 (lbx did not read ahead), empty for a request without a body.
   */
  bodyPrefix() {
    if (this._body === UNSET) {
      const body = this._fetchBodyPrefix();
      this._body = body == null ? undefined : body instanceof Uint8Array ? body : Uint8Array.from(body);
    }
    return this._body;
  }

  /** The body prefix parsed as JSON; undefined when absent, truncated or not JSON. */
  bodyJson() {
    if (this._json === UNSET) {
      const body = this.bodyPrefix();
      let parsed;
      if (body !== undefined && body.length > 0) {
        try {
          parsed = JSON.parse(utf8Decode(body));
        } catch {
          // A prefix cut mid-document, or not JSON at all: the router routes without it.
          parsed = undefined;
        }
      }
      this._json = parsed;
    }
    return this._json;
  }

  // What a concrete request provides (lowercase header names; null or undefined when absent).
  _fetchMethod() {
    throw new Error("Request._fetchMethod is not implemented");
  }

  _fetchPath() {
    throw new Error("Request._fetchPath is not implemented");
  }

  _fetchQuery() {
    throw new Error("Request._fetchQuery is not implemented");
  }

  _fetchAuthority() {
    throw new Error("Request._fetchAuthority is not implemented");
  }

  _fetchHeader(_lowerName) {
    throw new Error("Request._fetchHeader is not implemented");
  }

  _fetchCookie(_name) {
    throw new Error("Request._fetchCookie is not implemented");
  }

  _fetchClientIp() {
    throw new Error("Request._fetchClientIp is not implemented");
  }

  _fetchClientPort() {
    throw new Error("Request._fetchClientPort is not implemented");
  }

  _fetchBodyPrefix() {
    throw new Error("Request._fetchBodyPrefix is not implemented");
  }
}
