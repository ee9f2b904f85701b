/**
 * @module ports/messages
 * The records that flow between ports: stored direct and room messages and stored responses.
 */
import type { WireError } from '../errors.ts';

/** A direct message in a session's outbox. `seq` is 1, 2, 3, ... per session. */
export interface DirectMessage {
  to: string;
  seq: number;
  route: string;
  data: unknown;
}

/** A message in a room's history. `off` is opaque to clients and increases in commit order. */
export interface RoomMessage {
  room: string;
  off: string;
  route: string;
  data: unknown;
}

/** A `res` as recorded for exactly-once: the body without `t` and `id`. */
export type StoredResponse = { ok: true; data?: unknown } | { ok: false; error: WireError };

/** What replay found: the retained messages after a point, and whether history reached back to it. */
export interface Replay<M> {
  gap: boolean;
  messages: M[];
}
