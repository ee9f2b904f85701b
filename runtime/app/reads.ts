/**
 * @module app/reads
 * Declared reads: shared state a route needs before it decides. The route names them, the runtime
 * performs them (through its ports) and hands the results to the handler in `ctx.reads`, so the
 * handler itself stays pure.
 */

/** A read the runtime will perform; `T` is the type of its result. */
export type Read<T> =
  | { kind: 'presence'; room: string; readonly __result?: T }
  | { kind: 'sessionExists'; session: string; readonly __result?: T };

export type ReadResult<R> = R extends Read<infer T> ? T : never;
export type ReadResults<Reads extends Record<string, Read<unknown>>> = { [K in keyof Reads]: ReadResult<Reads[K]> };

export const read = {
  /** The user ids with a live connection in `room`, on any instance, each once. */
  presence: (room: string): Read<string[]> => ({ kind: 'presence', room }),
  /** Whether a session with this id exists (live or within its TTL). */
  sessionExists: (session: string): Read<boolean> => ({ kind: 'sessionExists', session }),
};
