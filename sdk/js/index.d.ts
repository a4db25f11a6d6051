// Types of @lbx/router (index.js): the SDK a JavaScript lbx routing plugin is written against
// (contract lbx:router@0.2.0, wit/router.wit). Hand-written beside the plain-JavaScript modules
// so the SDK needs no build step; a TypeScript plugin or an editor reads them.

/** Numbers per backend in the host's flat `stats` list (healthy, weight, in-flight, ewma, failures). */
export declare const STATS_FIELDS: 5;

/** The identity of one backend, as configured: delivered by `Router.backendsChanged`. */
export declare class BackendInfo {
  constructor(id: string, address: string, weight?: number, labels?: Record<string, string>);
  /** Stable identifier from the configuration (defaults to the address). */
  readonly id: string;
  /** `host:port` lbx connects to. */
  readonly address: string;
  /** Relative weight from the configuration. */
  readonly weight: number;
  /** Free-form labels from the configuration, e.g. `{ pool: "api" }`. */
  readonly labels: Readonly<Record<string, string>>;
  /** Whether every label of `selector` is set on this backend to the same value. */
  matches(selector: Record<string, string>): boolean;
}

/** Live statistics of one backend at this request. */
export declare class BackendStats {
  constructor(stats?: Partial<Omit<BackendStats, "flat">>);
  /** Whether the host considers the backend usable right now. */
  readonly healthy: boolean;
  /** Relative weight from the configuration. */
  readonly weight: number;
  /** Requests this lbx is serving on the backend now (always current). */
  readonly inFlight: number;
  /** Moving average of time to response headers, in µs (0 until the first response). */
  readonly ewmaLatencyUs: number;
  /** Failures seen recently; decays back to 0 on success. */
  readonly recentFailures: number;
  /** This backend's 5 numbers in the host's wire order. */
  flat(): [number, number, number, number, number];
}

/** What the host knows about earlier attempts of this request. */
export declare class RetryContext {
  constructor(attempt?: number, tried?: ArrayLike<number>);
  /** 0 for the first attempt, 1 for the first retry, and so on. */
  readonly attempt: number;
  /** Indexes of backends that already failed this request. */
  readonly tried: ArrayLike<number> & { includes(index: number): boolean };
}

/** The retry context of every first attempt. */
export declare const FIRST_ATTEMPT: RetryContext;

/** Every backend for one request: stats by index, identities, signals by name, candidates. */
export declare class Backends implements Iterable<BackendStats> {
  constructor(
    stats?: ArrayLike<number> | Iterable<BackendStats>,
    infos?: readonly BackendInfo[],
    signalNames?: readonly string[],
    signals?: ArrayLike<number> | null,
  );
  /** How many backends this request sees. */
  readonly length: number;
  /** Backend `index`'s numbers as one object; throws a RangeError when out of range. */
  at(index: number): BackendStats;
  [Symbol.iterator](): Iterator<BackendStats>;
  healthy(index: number): boolean;
  weight(index: number): number;
  inFlight(index: number): number;
  ewmaLatencyUs(index: number): number;
  recentFailures(index: number): number;
  /** Backend `index`'s identity, if the host gave it. */
  info(index: number): BackendInfo | undefined;
  /** Backend `index`'s labels (empty if unknown). */
  labels(index: number): Readonly<Record<string, string>>;
  /** Indexes of the healthy backends, in order. */
  healthyIndices(): number[];
  /** Healthy backends not yet tried; every healthy backend when all were tried. */
  candidates(retry?: RetryContext): number[];
  /** The index among `indices` with the fewest requests in flight (the first on a tie). */
  leastInFlight(indices: Iterable<number>): number | undefined;
  /** The names of the backend signals, in slot order. */
  readonly signalNames: readonly string[];
  /** Backend `index`'s latest value of signal `name`; undefined if missing or unknown. */
  signal(index: number, name: string): number | undefined;
  /** Age in ms of backend `index`'s last successful scrape; undefined if never. */
  signalAgeMs(index: number): number | undefined;
}

/** Headers as `[[name, value], ...]` or `{ name: value }`. */
export type Headers = ReadonlyArray<readonly [string, string]> | Record<string, string>;

/** What a pick may ask beyond its backend. */
export interface PickOptions {
  /** Headers added to the request sent to the backend. */
  upstreamHeaders?: Headers;
  /** Headers added to the response sent to the client (e.g. a sticky `set-cookie`). */
  downstreamHeaders?: Headers;
  /** Alternates in order of preference, taken by retries without calling `choose` again. */
  fallbacks?: Iterable<number>;
  /** Response statuses worth another attempt (e.g. 429, 503). */
  retryOn?: Iterable<number>;
  /** A new upstream path and query in origin form (`/v1/users?page=2`). */
  rewrite?: string;
  /** An opaque number (up to 2^53) handed back in the `Outcome` of this pick. */
  tag?: number;
}

/** Send the request to backend `backend`. */
export declare class Pick {
  constructor(backend: number, options?: PickOptions);
  readonly backend: number;
  readonly upstreamHeaders: ReadonlyArray<readonly [string, string]>;
  readonly downstreamHeaders: ReadonlyArray<readonly [string, string]>;
  readonly fallbacks: readonly number[];
  readonly retryOn: readonly number[];
  readonly rewrite: string | undefined;
  readonly tag: number;
  /** Whether anything beyond backend and headers is set. */
  readonly hasOptions: boolean;
}

/** Answer the client directly with `status` (4xx or 5xx) and these headers. */
export declare class Reject {
  constructor(status: number, headers?: Headers);
  readonly status: number;
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

/** No preference: the host's built-in fallback decides. */
export declare class NoOpinion {}

/** The plugin's answer for one request. */
export type Decision = Pick | Reject | NoOpinion;

/** Send the request to backend `backend`, with optional headers and pick options. */
export declare function pick(backend: number, options?: PickOptions): Pick;
/** Answer the client directly with `status` (e.g. 429 with `{ "retry-after": "2" }`). */
export declare function reject(status: number, headers?: Headers): Reject;
/** Leave the choice to the host's built-in fallback. */
export declare function noOpinion(): NoOpinion;

/** The incoming request; every reader asks the host only when called. */
export declare class Request {
  method(): string;
  path(): string;
  query(): string | undefined;
  authority(): string | undefined;
  /** The first header called `name` (case-insensitive), if present and valid text. */
  header(name: string): string | undefined;
  /** The value of the cookie `name` (case-sensitive), if present. */
  cookie(name: string): string | undefined;
  clientIp(): string;
  clientPort(): number;
  /** `ip:port` (`[ip]:port` for IPv6). */
  client(): string;
  /** The body's first bytes up to the configured `body_prefix`; undefined when not read ahead. */
  bodyPrefix(): Uint8Array | undefined;
  /** The body prefix parsed as JSON; undefined when absent, truncated or not JSON. */
  bodyJson(): unknown;
}

/** Whose fault a failed attempt was. */
export type FaultKind = "client" | "backend" | "lbx";
export declare const Fault: { readonly CLIENT: "client"; readonly BACKEND: "backend"; readonly LBX: "lbx" };

/** How one attempt went, reported after it is over. */
export declare class Outcome {
  constructor(fields: Partial<Outcome> & { backend: number });
  readonly backend: number;
  readonly status: number | undefined;
  readonly fault: FaultKind | undefined;
  readonly ttfbUs: number | undefined;
  readonly firstByteUs: number | undefined;
  readonly totalUs: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly attempt: number;
  readonly tag: number;
}

/** A configuration the plugin refuses; thrown from `init`. */
export declare class ConfigError extends Error {}

/** A routing plugin: extend it and define `choose`. */
export declare class Router {
  /** Whether the plugin wants `onOutcome` calls. */
  static OUTCOMES: boolean;
  /** Set up from the parsed configuration (`{}` when none); throwing refuses the plugin. */
  init(config: unknown): void;
  /** Whether this instance wants `onOutcome` calls, asked once right after `init`. */
  wantsOutcomes(): boolean;
  /** Called before the first `choose` and whenever the backend set changes. */
  backendsChanged(backends: readonly BackendInfo[]): void;
  /** Choose a backend for one request. */
  choose(request: Request, backends: Backends, retry: RetryContext): Decision;
  /** How one attempt went, if the plugin wants outcomes. */
  onOutcome(outcome: Outcome): void;
}

/** Severity of a log line. */
export type LogLevelName = "trace" | "debug" | "info" | "warn" | "error";
export declare const LogLevel: {
  readonly TRACE: "trace";
  readonly DEBUG: "debug";
  readonly INFO: "info";
  readonly WARN: "warn";
  readonly ERROR: "error";
};
/** Write a line to lbx's log, tagged with the plugin. */
export declare function log(level: LogLevelName, message: string): void;
/** Microseconds on a monotonic clock shared by every instance of the plugin. */
export declare function nowUs(): number;

/** A kv write the host refused. */
export declare class KvError extends Error {
  readonly reason: "key-too-long" | "store-full";
}

/** The host's small key-value store, shared by the plugin's instances and kept across swaps. */
export declare namespace kv {
  export function get(key: string): Uint8Array | undefined;
  export function getText(key: string): string | undefined;
  export function set(key: string, value: Uint8Array | string): void;
  export function insert(key: string, value: Uint8Array | string): boolean;
  export function remove(key: string): boolean;
  export { remove as delete };
  export function increment(key: string, delta?: number): number;
}
