// Types of @lbx/router/testkit (testkit.js): the native test kit for `node --test`.

import type {
  BackendInfo,
  Backends,
  BackendStats,
  Decision,
  FaultKind,
  Outcome,
  Pick,
  Request,
  RetryContext,
  Router,
} from "./index.js";

/** `init` refused the plugin; the message is what lbx reports. */
export declare class Refused extends Error {}

/** A request without a host; builder methods return `this`. */
export declare class FakeRequest extends Request {
  constructor(method?: string, target?: string);
  withHeader(name: string, value: string): this;
  withCookie(name: string, value: string): this;
  withClient(address: string): this;
  withAuthority(authority: string): this;
  withBody(prefix: Uint8Array | string | object): this;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  cookies?: Record<string, string>;
  client?: string;
  authority?: string;
  body?: Uint8Array | string | object;
}

export declare function request(method?: string, target?: string, options?: RequestOptions): FakeRequest;
export declare function get(target?: string, options?: RequestOptions): FakeRequest;
export declare function post(target?: string, options?: RequestOptions): FakeRequest;

export declare function backend(stats?: Partial<Omit<BackendStats, "flat">>): BackendStats;
export declare function allHealthy(n: number): BackendStats[];
export declare function loads(inFlight: number[]): BackendStats[];
export declare function weights(values: number[]): BackendStats[];
export declare function latencies(latenciesUs: number[]): BackendStats[];
export declare function backendInfo(id: string, address?: string, weight?: number): BackendInfo;
export declare function labeled(id: string, labels?: Record<string, string>): BackendInfo;
export declare function signals(
  names: string[],
  readings: Record<number, [number, number[]]>,
  count: number,
): number[];
export declare function backends(
  stats: BackendStats[],
  infos?: BackendInfo[],
  signalNames?: string[],
  signalValues?: number[] | null,
): Backends;

export declare function firstAttempt(): RetryContext;
export declare function retry(tried: number[], attempt?: number): RetryContext;

/** A router driven as lbx drives it. The constructor throws `Refused` on a refused config. */
export declare class Plugin<R extends Router = Router> {
  constructor(
    RouterClass: new () => R,
    config?: object | string,
    infos?: BackendInfo[],
    signalNames?: string[],
  );
  readonly router: R;
  readonly wantsOutcomes: boolean;
  backendsChanged(infos: BackendInfo[], signalNames?: string[]): void;
  choose(req: Request, stats: BackendStats[], retry?: RetryContext, signals?: number[]): Decision;
  deliver(outcome: Outcome): boolean;
}

export declare function refusal(RouterClass: new () => Router, config: object | string): string | undefined;

export declare function picked(decision: Decision): number | undefined;
export declare function expectPick(decision: Decision): Pick;
export declare function rejected(decision: Decision): number | undefined;
export declare function attemptOrder(decision: Decision): number[];
export declare function upstreamHeader(decision: Decision, name: string): string | undefined;
export declare function downstreamHeader(decision: Decision, name: string): string | undefined;

export declare function answered(index: number, status: number, ttfbUs: number, tag?: number): Outcome;
export declare function failed(index: number, fault?: FaultKind, tag?: number): Outcome;
export declare function outcomeOf(decision: Decision, status: number, ttfbUs: number): Outcome;

export interface MemoryServices {
  store: Map<string, Uint8Array>;
  lines: Array<[string, string]>;
  clockUs: number;
  maxBytes: number | undefined;
}
export declare function freshHost(maxBytes?: number): MemoryServices;
export declare function advanceClock(us: number): void;
export declare function logs(): Array<[string, string]>;
