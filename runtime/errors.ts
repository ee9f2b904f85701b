/**
 * @module errors
 * Every error code and close code of the tether.v1 protocol, declared once. The server, the client
 * SDK, the tests and docs/PROTOCOL.md all read from here.
 */

/** Error codes carried in `error.code` of `res` and `error` frames. */
export const ErrorCodes = {
  bad_frame: {
    meaning: 'The frame itself is malformed (bad JSON, not an object, missing or unknown `t`, a `req` without a valid `id` or `route`, a `req` before `hello`, a second `hello`, a binary frame).',
    recorded: false,
  },
  bad_request: { meaning: "The request's input failed the route's schema.", recorded: false },
  unknown_route: { meaning: 'No route of that name is declared.', recorded: false },
  rate_limited: { meaning: 'Over a rate limit; always carries `retryAfterMs`. Costs no tokens, changes nothing.', recorded: false },
  unauthorized: { meaning: 'The route refused this user.', recorded: false },
  handler_error: { meaning: 'The handler rejected the request on purpose; `message` is its own, `detail` its application code.', recorded: true },
  unavailable: { meaning: 'The store is unreachable right now; retry after `retryAfterMs` with the same `id` (runs at most once).', recorded: false },
  internal: { meaning: 'A bug; details are in the server log, never in the frame.', recorded: false },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** The wire shape of an error object. */
export interface WireError {
  code: ErrorCode;
  message: string;
  retryAfterMs?: number;
  detail?: string;
}

/** Builds a wire error; the one place error objects are made. */
export function wireError(code: ErrorCode, message: string, extra?: { retryAfterMs?: number; detail?: string }): WireError {
  const error: WireError = { code, message };
  if (extra?.retryAfterMs !== undefined) error.retryAfterMs = extra.retryAfterMs;
  if (extra?.detail !== undefined) error.detail = extra.detail;
  return error;
}

/** WebSocket close codes Tether sends, with the reason text that goes with them. */
export const CloseCodes = {
  policy: { code: 1008, reason: 'policy violation', meaning: 'No `hello` within HELLO_TIMEOUT_MS, or bad `auth`.' },
  tooLarge: { code: 1009, reason: 'frame too large', meaning: 'A frame over MAX_PAYLOAD_BYTES.' },
  draining: { code: 1012, reason: 'instance draining, reconnect', meaning: 'This instance is shutting down; reconnect, any instance resumes the session.' },
  tryAgainLater: { code: 1013, reason: 'store unavailable, try again later', meaning: 'The store failed during `hello`, or a join was committed but this instance could not subscribe to the room (its `res` is sent first); resume to catch up. Also when the store lost a connected session (flushed, or restarted without persistence): the request that found it gone gets no `res`, and the resume starts a new session (`resumed: false`).' },
  takenOver: { code: 4001, reason: 'session taken over', meaning: 'A newer connection resumed this session (or this instance lost ownership).' },
  badToken: { code: 4401, reason: 'bad resume token', meaning: 'Wrong resume token, or the JWT `sub` differs from the session user.' },
  abuse: { code: 4429, reason: 'too many bad or rate-limited frames', meaning: 'ABUSE_MAX_STRIKES frames in a row answered `bad_frame` or `rate_limited`.' },
} as const;

export type CloseName = keyof typeof CloseCodes;
