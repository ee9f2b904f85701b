/**
 * @module pipeline/stages/result-check
 * What a handler or hook returned, checked before anything is taken on. Handlers are synchronous:
 * a returned promise is a bug (answered `internal`), and its rejection must not bring the process
 * down. What is stored or sent travels as JSON on every store, so a state, reply or message that
 * JSON cannot carry (a BigInt, a cycle, a bare function) is a bug too, answered `internal` for that
 * request alone instead of failing in the store, where it would take the requests committed with
 * it down as well.
 */
import { type HandlerResult, isAfterCommit } from '../../app/define-app.ts';
import { type Partitioned, partitionEffects } from './effects.ts';

/**
 * The JSON texts of a result's state and plain reply, where checking them took a JSON.stringify
 * anyway (not for strings, numbers, booleans or null): the stores write these instead of
 * serializing the same values again. Taken when the handler returned, so a later in-place change
 * of the objects does not reach the commit.
 */
export interface ResultJson {
  state?: string;
  reply?: string;
}

/** What a handler or hook returned, taken apart and checked; or the problem with it. */
export type Checked = { result: HandlerResult<unknown>; effects: Partitioned; json: ResultJson } | { problem: string };

const NO_EFFECTS: Partitioned = Object.freeze({ joins: [], leaves: [], sends: [], broadcasts: [] }) as unknown as Partitioned;

/**
 * Checks what a handler or hook returned, the one way for both: not a promise, effects well
 * formed, state, plain reply and message data JSON. A read-only route's state and effects are
 * ignored (and not checked); anything that is not an object counts as `{}`.
 */
export function checkReturned(returned: unknown, readOnly: boolean): Checked {
  if (isThenable(returned)) {
    ignoreRejection(returned);
    return { problem: 'it returned a promise: handlers and hooks are synchronous (declare reads for what a route needs)' };
  }
  const result = (typeof returned === 'object' && returned !== null ? returned : {}) as HandlerResult<unknown>;
  const plainReply = !isAfterCommit(result.reply);
  const json: ResultJson = {};
  if (readOnly) {
    const problem = resultNotJson(undefined, result.reply, plainReply, undefined, json);
    return problem ? { problem } : { result, effects: NO_EFFECTS, json };
  }
  const effects = partitionEffects(result.effects);
  if ('invalid' in effects) return { problem: effects.invalid };
  const problem = resultNotJson(result.state, result.reply, plainReply, effects, json);
  return problem ? { problem } : { result, effects, json };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** The runtime has answered already; a later rejection of what the user code returned is logged by nobody. */
function ignoreRejection(value: PromiseLike<unknown>): void {
  Promise.resolve(value).catch(() => {});
}

/**
 * Why `value` cannot travel as JSON, or undefined when it can (`undefined` inside objects is dropped,
 * as JSON does). `mayVanish`: a value JSON leaves out altogether (a function) is fine, as for a reply.
 * `keep` receives the JSON text when one was made.
 */
function notJson(value: unknown, what: string, mayVanish = false, keep?: ResultJson, as?: keyof ResultJson): string | undefined {
  // what JSON always carries needs no trial (the common reply: a string, a number)
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return undefined;
  if (value === undefined) return mayVanish ? undefined : `${what} is not JSON (undefined)`;
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    return `${what} is not JSON: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (json === undefined) return mayVanish ? undefined : `${what} is not JSON (a function or a symbol)`;
  // kept only where it is the text the stores would make: a toJSON may answer by its key, and
  // nested under `data` its key differs from the '' it was given here
  if (keep && as && typeof (value as { toJSON?: unknown }).toJSON !== 'function') keep[as] = json;
  return undefined;
}

/** The first part of a result that JSON cannot carry: the new state, a plain reply, a message's data. */
function resultNotJson(state: unknown, reply: unknown, plainReply: boolean, effects: Partitioned | undefined, json: ResultJson): string | undefined {
  if (state !== undefined) {
    const problem = notJson(state, 'state', false, json, 'state');
    if (problem) return problem;
  }
  if (plainReply) {
    const problem = notJson(reply, 'reply', true, json, 'reply');
    if (problem) return problem;
  }
  for (const m of effects?.sends ?? []) {
    const problem = notJson(m.data, `data sent to ${m.to}`, true);
    if (problem) return problem;
  }
  for (const b of effects?.broadcasts ?? []) {
    const problem = notJson(b.data, `data broadcast to ${b.room}`, true);
    if (problem) return problem;
  }
  return undefined;
}
