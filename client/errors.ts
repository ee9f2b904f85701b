/**
 * @module client/errors
 * The error type every failed request of the SDK rejects with.
 */
import type { ErrorCode, WireError } from '../runtime/errors.ts';

/**
 * Codes the SDK itself produces, besides the server's codes (`ErrorCode`):
 * - `timeout`: no answer within the request's `timeoutMs`. If it was sent, it may have run.
 * - `closed`: the client was closed (by `close()`, or for good by the server: 4001, 1008, ...) before
 *   an answer came. If it was sent, it may have run.
 * - `session_lost`: the request was sent in a session the server no longer has (resume gave a new
 *   session, or 4401); it may have run there, and re-sending it would run it again in the new one.
 * - `expired`: it was sent, the connection dropped, and it stayed unanswered longer than
 *   `dedupeTtlMs`, so the server may no longer remember it: re-sending could run it twice.
 * - `too_large`: the frame is larger than `maxFrameBytes`, or the server closed with 1009 and this
 *   was the largest unanswered request on that connection. It was not run.
 */
export type ClientErrorCode = 'timeout' | 'closed' | 'session_lost' | 'expired' | 'too_large';

/** Every `TetherError.code`: the server's codes and the SDK's own. */
export type TetherErrorCode = ErrorCode | ClientErrorCode;

/**
 * A failed request (or a server `error` frame). `code` is the server's `error.code` or one of the
 * SDK's {@link ClientErrorCode}s.
 * @example
 * try {
 *   await client.request('chat.send', { room: 'lobby', text: 'hi' });
 * } catch (err) {
 *   if (err instanceof TetherError && err.detail === 'not_member') await client.request('chat.join', { room: 'lobby' });
 * }
 */
export class TetherError extends Error {
  override readonly name = 'TetherError';
  readonly code: TetherErrorCode;
  /** For `rate_limited` and `unavailable`: when to try again. */
  readonly retryAfterMs?: number;
  /** For `handler_error`: the application's code, e.g. `not_member`. */
  readonly detail?: string;
  /** For `closed`: the WebSocket close code that ended the client, when there was one. */
  readonly closeCode?: number;

  constructor(code: TetherErrorCode, message: string, extra: { retryAfterMs?: number; detail?: string; closeCode?: number } = {}) {
    super(message);
    this.code = code;
    if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
    if (extra.detail !== undefined) this.detail = extra.detail;
    if (extra.closeCode !== undefined) this.closeCode = extra.closeCode;
  }

  /** Builds a TetherError from a wire `error` object. */
  static fromWire(error: WireError): TetherError {
    const extra: { retryAfterMs?: number; detail?: string } = {};
    if (typeof error.retryAfterMs === 'number') extra.retryAfterMs = error.retryAfterMs;
    if (typeof error.detail === 'string') extra.detail = error.detail;
    return new TetherError(error.code, error.message, extra);
  }
}
