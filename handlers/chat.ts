/**
 * @module handlers/chat
 * `chat.join`, `chat.leave`, `chat.send`: rooms with replayable history.
 */
import { z } from 'zod';
import { afterCommit, broadcast, HandlerError, join, leave, route } from '../runtime/index.ts';
import { roomName, text } from './schemas.ts';
import type { AppState } from './state.ts';

const roomInput = z.object({ room: roomName });

/** Joins a room (idempotent); its messages reach this session from then on, also across resumes. */
export const chatJoin = route({
  input: roomInput,
  handle: (_state: AppState, { room }) => ({ reply: { room }, effects: [join(room)] }),
});

/** Leaves a room (idempotent). */
export const chatLeave = route({
  input: roomInput,
  handle: (_state: AppState, { room }) => ({ reply: { room }, effects: [leave(room)] }),
});

/** Broadcasts `chat.message` to every member, the sender included; replies with its offset. */
export const chatSend = route({
  input: z.object({ room: roomName, text }),
  handle: (_state: AppState, { room, text }, ctx) => {
    if (!ctx.rooms.includes(room)) throw new HandlerError(`not a member of ${room}`, 'not_member');
    return {
      effects: [broadcast(room, 'chat.message', { room, from: ctx.userId, text })],
      reply: afterCommit((committed) => ({ off: committed.offsets[0] })),
    };
  },
});
