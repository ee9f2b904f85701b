/**
 * @module pipeline/types
 * What flows through the request pipeline, and the signature every stage shares.
 */
import type { App, HandlerResult, RouteDef } from '../app/define-app.ts';
import type { Read } from '../app/reads.ts';
import type { StandardSchemaV1 } from '../app/standard-schema.ts';
import type { TetherConfig } from '../config.ts';
import type { WireError } from '../errors.ts';
import type { Clock } from '../ports/clock.ts';
import type { StoredResponse } from '../ports/messages.ts';
import type { Presence } from '../ports/presence.ts';
import type { RateLimiter, RateScope } from '../ports/rate-limiter.ts';
import type { CommitResult, SessionStore } from '../ports/session-store.ts';
import type { Partitioned } from './stages/effects.ts';
import type { ResultJson } from './stages/result-check.ts';
import type { ReqFrame } from '../protocol/frames.ts';
import type { Logger } from '../telemetry/logger.ts';

/** The session a connection owns, as the pipeline sees it. The actor keeps it current. */
export interface SessionView {
  id: string;
  userId: string;
  epoch: number;
  state: unknown;
  rooms: Record<string, string>;
  /** Request ids the store may have recorded; an id not in here was never processed. */
  recorded: { has(id: string): boolean; add(id: string): void };
}

export type AnyRoute = RouteDef<unknown, StandardSchemaV1, Record<string, Read<unknown>>>;

export interface PipelineRequest {
  frame: ReqFrame;
  session: SessionView;
  ip: string;
  /** The declared route, once the route stage found it. */
  route?: AnyRoute;
  /** The input as the schema returned it, once the validate stage accepted it (`validated`). */
  input?: unknown;
  validated?: boolean;
  reads?: Record<string, unknown>;
  /** The session's owner has never seen this id, checked just before the deciding stages ran. */
  unseenId?: boolean;
  result?: HandlerResult<unknown>;
  /** JSON of the result's state and reply, where the handle stage made it while checking them. */
  resultJson?: ResultJson;
  /** The result's effects, sorted by kind and checked (routes that commit only). */
  effects?: Partitioned;
  /** Set when the handler rejected the request on purpose: recorded like a success. */
  rejected?: WireError;
  /** Set when the commit failed without saying whether it happened (timeout, lost connection). */
  outcomeUnknown?: boolean;
  /** The rate-limit decision, started as soon as the frame arrived (it does not depend on state). */
  prefetchedLimit?: { answer: Answer | undefined | Promise<Answer | undefined> };
}

export type CommittedResult = Extract<CommitResult, { ok: true }>;

/** How a request ended. */
export type Answer =
  | {
      kind: 'res';
      response: StoredResponse;
      /** Present when the request committed: what it wrote, to deliver. */
      commit?: CommittedResult;
      /** A `rate_limited` answer counts towards ABUSE_MAX_STRIKES. */
      strike?: boolean;
      /** The scopes that refused, for metrics. */
      refusedBy?: RateScope[];
      /** From a `close` effect: close the connection after delivering. */
      close?: { code: number; reason: string };
    }
  /** The commit lost the owner epoch: this connection was taken over; no `res`. */
  | { kind: 'stale' }
  /** The store no longer has the session (it lost the data): no `res`; the client must start over. */
  | { kind: 'lost' };

export interface PipelineDeps {
  app: App<unknown>;
  config: TetherConfig;
  store: SessionStore;
  limiter: RateLimiter;
  presence: Presence;
  clock: Clock;
  log: Logger;
  /** The rate limit of a route per user, after `RL_ROUTE_<NAME>` overrides. */
  routeLimit(route: string): { rate: number; burst: number } | undefined;
  /** False when every request limit (user, IP and every route's) is off. */
  requestsLimited: boolean;
}

/** A stage either lets the request go on (returns nothing) or ends it with an answer. */
export type Stage = (req: PipelineRequest, deps: PipelineDeps) => Answer | undefined | Promise<Answer | undefined>;
