//! How one attempt went (`Outcome`), reported to routers that ask for outcomes, and whose fault
//! a failure was (`Fault`).

/** Whose fault a failed attempt was: the contract's `fault` enum, as its case names. */
export const Fault = Object.freeze({
  /** The client: malformed or incomplete body, gone, too slow. */
  CLIENT: "client",
  /** The backend: refused, reset, broken response, no response in time. */
  BACKEND: "backend",
  /** lbx's own limit: the request's deadline. */
  LBX: "lbx",
});

/** How one attempt went, reported after it is over. Optional numbers are `undefined` when absent. */
export class Outcome {
  constructor({
    backend,
    status,
    fault,
    ttfbUs,
    firstByteUs,
    totalUs = 0,
    bytesUp = 0,
    bytesDown = 0,
    attempt = 0,
    tag = 0,
  }) {
    /** Index of the backend in the list the decision was made on. */
    this.backend = backend;
    /** The backend's response status; undefined if it never answered. */
    this.status = status ?? undefined;
    /** Why the attempt failed (a `Fault`); undefined if the exchange completed cleanly. */
    this.fault = fault ?? undefined;
    /** µs from the attempt's start to the response head; undefined if none arrived. */
    this.ttfbUs = ttfbUs ?? undefined;
    /** µs from the attempt's start to the body's first byte; undefined if none arrived. */
    this.firstByteUs = firstByteUs ?? undefined;
    /** µs from the attempt's start to its end. */
    this.totalUs = totalUs;
    /** Request body bytes sent to the backend. */
    this.bytesUp = bytesUp;
    /** Response body bytes received from the backend. */
    this.bytesDown = bytesDown;
    /** 0 for the first attempt, 1 for the first retry, and so on. */
    this.attempt = attempt;
    /** The `tag` of the pick; 0 when it had none or the host's fallback chose. */
    this.tag = tag;
    Object.freeze(this);
  }
}
