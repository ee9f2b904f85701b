/**
 * @module pipeline/stages/answers
 * Shorthands for stages that end a request with an error.
 */
import { type ErrorCode, wireError } from '../../errors.ts';
import type { Answer } from '../types.ts';

export const failWith = (code: ErrorCode, message: string, extra?: { retryAfterMs?: number; detail?: string }): Answer => ({
  kind: 'res',
  response: { ok: false, error: wireError(code, message, extra) },
});

/** The store could not be reached: the client retries with the same id after this long. */
export const UNAVAILABLE_RETRY_MS = 1000;
export const unavailable = (): Answer => failWith('unavailable', 'the store is unreachable, retry later', { retryAfterMs: UNAVAILABLE_RETRY_MS });
