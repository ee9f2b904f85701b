/**
 * @module app/define-app
 * The handler API: routes with an input schema, an optional rate limit, declared reads and a pure
 * `handle`; lifecycle hooks of the same pure shape; and the app that bundles them.
 */
import type { Limit } from '../config.ts';
import type { Effect } from './effects.ts';
import type { Read, ReadResults } from './reads.ts';
import type { InferOutput, StandardSchemaV1 } from './standard-schema.ts';

/** What a handler knows besides its state and input. Everything impure comes in through here. */
export interface HandlerContext<R = Record<string, unknown>> {
  sessionId: string;
  /** JWT `sub` when AUTH_SECRET is set, else the session id. */
  userId: string;
  instanceId: string;
  /** The request id (empty for lifecycle hooks). */
  requestId: string;
  /** The rooms this session is a member of, as of before this request. */
  rooms: readonly string[];
  /** Results of the route's declared reads. */
  reads: R;
  /** Milliseconds since the epoch, fixed for the request. */
  now: number;
  /** A fresh unique id. */
  id(): string;
}

/** What the commit assigned, for replies that name what they caused (such as a broadcast's offset). */
export interface Committed {
  /** The room offset of each `broadcast` effect, in the order the handler returned them. */
  offsets: string[];
  /** The seq of each `send` effect, in the order the handler returned them. */
  seqs: number[];
}

const AFTER_COMMIT = Symbol('tether.afterCommit');
/** A reply computed from what the commit assigned; see {@link afterCommit}. */
export interface AfterCommitReply {
  readonly [AFTER_COMMIT]: (committed: Committed) => unknown;
}

/**
 * Marks a reply that needs what the commit assigns, such as the offset of the message it broadcast.
 * @example
 * return { effects: [broadcast(room, 'chat.message', msg)], reply: afterCommit((c) => ({ off: c.offsets[0] })) };
 */
export const afterCommit = (build: (committed: Committed) => unknown): AfterCommitReply => ({ [AFTER_COMMIT]: build });

export function isAfterCommit(reply: unknown): reply is AfterCommitReply {
  return typeof reply === 'object' && reply !== null && AFTER_COMMIT in reply;
}

/** Resolves a reply that may depend on the commit. */
export function resolveReply(reply: unknown, committed: Committed): unknown {
  if (typeof reply === 'object' && reply !== null && AFTER_COMMIT in reply) return (reply as AfterCommitReply)[AFTER_COMMIT](committed);
  return reply;
}

/** What a handler returns. Omitted `state` keeps the state as it was. */
export interface HandlerResult<S> {
  state?: S;
  reply?: unknown;
  effects?: Effect[];
}

/** What a lifecycle hook returns. */
export interface HookResult<S> {
  state?: S;
  effects?: Effect[];
}

/**
 * Rejects a request on purpose. On the wire: `error.code` `handler_error`, `error.message` = message,
 * `error.detail` = the application code when given. Recorded for exactly-once like a success.
 */
export class HandlerError extends Error {
  constructor(message: string, readonly detail?: string) {
    super(message);
    this.name = 'HandlerError';
  }
}

/** Refuses a request for this user: `error.code` `unauthorized`. */
export class UnauthorizedError extends Error {
  constructor(message = 'not allowed') {
    super(message);
    this.name = 'UnauthorizedError';
  }
}

export interface ReadsContext {
  sessionId: string;
  userId: string;
  rooms: readonly string[];
}

/** One route. `handle` must be pure: no I/O, no clock, no randomness. */
export interface RouteDef<S, Schema extends StandardSchemaV1 = StandardSchemaV1, Reads extends Record<string, Read<unknown>> = Record<string, Read<unknown>>> {
  /** Input schema (any Standard Schema validator). Absent: the input is passed through unchecked. */
  input?: Schema;
  /** This route's own limit per user; `RL_ROUTE_<NAME>` overrides it. */
  rate?: Limit;
  /** A read-only route commits nothing and is not recorded for exactly-once. */
  readOnly?: boolean;
  /** Shared state the handler needs; performed by the runtime before `handle`. */
  reads?(input: InferOutput<Schema>, ctx: ReadsContext): Reads;
  handle(state: S, input: InferOutput<Schema>, ctx: HandlerContext<ReadResults<Reads>>): HandlerResult<S>;
}

/**
 * Declares a route; a typed identity function so that `input` and `reads` types flow into `handle`.
 * @example
 * route({ input: z.object({ by: z.number().int().optional() }), handle: (s: State, i) => ({ state: { count: s.count + (i.by ?? 1) } }) })
 */
export function route<S, Schema extends StandardSchemaV1 = StandardSchemaV1, Reads extends Record<string, Read<unknown>> = Record<string, never>>(
  def: RouteDef<S, Schema, Reads>,
): RouteDef<S, Schema, Reads> {
  return def;
}

export type Hook<S> = (state: S, ctx: HandlerContext<Record<string, never>>) => HookResult<S>;

export interface AppDef<S> {
  /** The state of a new session. */
  initialState: () => S;
  routes: Record<string, RouteDef<S, StandardSchemaV1, Record<string, Read<unknown>>>>;
  /** A new session's first connection. */
  onConnect?: Hook<S>;
  /** A resumed session's new connection. */
  onResume?: Hook<S>;
  /** A connection ended (the session lives on for SESSION_TTL_S). */
  onDisconnect?: Hook<S>;
}

export type App<S = unknown> = Readonly<AppDef<S>>;

/**
 * Bundles routes and hooks into an app for `createTether`.
 * @example
 * export const app = defineApp<State>({ initialState: () => ({ count: 0 }), routes: { echo } });
 */
export function defineApp<S>(def: AppDef<S>): App<S> {
  for (const name of Object.keys(def.routes)) {
    if (name.length < 1 || name.length > 128) throw new Error(`route name "${name}" must be 1 to 128 characters`);
  }
  return Object.freeze({ ...def, routes: Object.freeze({ ...def.routes }) });
}
