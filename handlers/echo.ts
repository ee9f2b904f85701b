/**
 * @module handlers/echo
 * `echo`: replies with its input.
 */
import { route } from '../runtime/index.ts';
import type { AppState } from './state.ts';

/** Replies with its input, unchanged. */
export const echo = route({
  handle: (_state: AppState, input) => ({ reply: input }),
});
