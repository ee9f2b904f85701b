/**
 * @module handlers/counter
 * `counter.inc` and `counter.get`: a per-session counter.
 */
import { z } from 'zod';
import { HandlerError, route } from '../runtime/index.ts';
import type { AppState } from './state.ts';

/** Adds `by` (default 1) to the session's counter. */
export const counterInc = route({
  input: z.object({ by: z.number().int().refine(Number.isSafeInteger, 'must be a safe integer').optional() }).strict().optional(),
  handle: (state: AppState, input) => {
    const next = state.count + (input?.by ?? 1);
    // past the safe range a count would silently lose precision: refuse, change nothing
    if (!Number.isSafeInteger(next)) throw new HandlerError(`the counter would leave the safe integer range (it is ${state.count})`, 'out_of_range');
    return { state: { ...state, count: next }, reply: { count: next } };
  },
});

/** The session's counter (0 for a new session). */
export const counterGet = route({
  handle: (state: AppState) => ({ reply: { count: state.count } }),
});
