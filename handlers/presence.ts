/**
 * @module handlers/presence
 * `presence.list`: who is connected in a room, on any instance.
 */
import { z } from 'zod';
import { read, route } from '../runtime/index.ts';
import { roomName } from './schemas.ts';
import type { AppState } from './state.ts';

/** The user ids with a live connection in a room, on any instance, each once. */
export const presenceList = route({
  input: z.object({ room: roomName }),
  readOnly: true,
  reads: ({ room }) => ({ members: read.presence(room) }),
  handle: (_state: AppState, _input, ctx) => ({ reply: { members: ctx.reads.members } }),
});
