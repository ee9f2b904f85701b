/**
 * @module protocol/frames
 * The frames of tether.v1 (SPEC section 3) as types.
 */
import type { WireError } from '../errors.ts';

export interface HelloFrame {
  t: 'hello';
  session?: string;
  token?: string;
  seq?: number;
  rooms?: Record<string, string>;
  /** null: present but not a string (refused when AUTH_SECRET is set, ignored otherwise) */
  auth?: string | null;
}
export interface ReqFrame {
  t: 'req';
  id: string;
  route: string;
  data?: unknown;
}
export interface AckFrame {
  t: 'ack';
  seq: number;
}
export interface PingFrame {
  t: 'ping';
}
export type ClientFrame = HelloFrame | ReqFrame | AckFrame | PingFrame;

export interface WelcomeFrame {
  t: 'welcome';
  session: string;
  token: string;
  resumed: boolean;
  seq: number;
  instance: string;
}
export type ResFrame = { t: 'res'; id: string; ok: true; data?: unknown } | { t: 'res'; id: string; ok: false; error: WireError };
export type MsgFrame =
  | { t: 'msg'; route: string; data: unknown; seq: number }
  | { t: 'msg'; route: string; data: unknown; room: string; off: string };
export interface GapFrame {
  t: 'gap';
  room?: string;
}
export interface ErrorFrame {
  t: 'error';
  error: WireError;
}
export interface PongFrame {
  t: 'pong';
}
export type ServerFrame = WelcomeFrame | ResFrame | MsgFrame | GapFrame | ErrorFrame | PongFrame;

/** Longest request id a client may choose. */
export const MAX_REQUEST_ID_LENGTH = 64;
/** Longest route name accepted on the wire (routes are declared, this only bounds garbage). */
export const MAX_ROUTE_LENGTH = 128;
