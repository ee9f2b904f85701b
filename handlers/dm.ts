/**
 * @module handlers/dm
 * `dm.send`: a direct message to another session.
 */
import { z } from 'zod';
import { HandlerError, read, route, send } from '../runtime/index.ts';
import { text } from './schemas.ts';
import type { AppState } from './state.ts';

/** Sends `dm.message` to another session; an unknown session is a handler error. */
export const dmSend = route({
  input: z.object({ to: z.string().min(1).max(256), text }),
  reads: ({ to }) => ({ exists: read.sessionExists(to) }),
  handle: (_state: AppState, { to, text }, ctx) => {
    if (!ctx.reads.exists) throw new HandlerError('no such session', 'unknown_session');
    return { reply: {}, effects: [send(to, 'dm.message', { from: ctx.sessionId, text })] };
  },
});
