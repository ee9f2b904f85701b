/**
 * @module app/effects
 * Effects are plain data a handler returns; the runtime applies them after the commit succeeds.
 */

export type Effect =
  | { type: 'send'; to: string; route: string; data: unknown }
  | { type: 'broadcast'; room: string; route: string; data: unknown }
  | { type: 'join'; room: string }
  | { type: 'leave'; room: string }
  | { type: 'close'; code: number; reason: string };

/** Push `route`/`data` to session `to` as a direct message (with its own `seq`). */
export const send = (to: string, route: string, data: unknown): Effect => ({ type: 'send', to, route, data });

/** Push `route`/`data` to every member of `room` (the sender included, if a member). */
export const broadcast = (room: string, route: string, data: unknown): Effect => ({ type: 'broadcast', room, route, data });

/** Make this session a member of `room` (idempotent). */
export const join = (room: string): Effect => ({ type: 'join', room });

/** End this session's membership of `room` (idempotent). */
export const leave = (room: string): Effect => ({ type: 'leave', room });

/** Close this connection after the reply is sent. Use 4000-4999 for application codes. */
export const close = (code: number, reason: string): Effect => ({ type: 'close', code, reason });
