/**
 * @module pipeline/stages/effects
 * Sorts a handler's effects by kind and checks their shape (handlers are user code).
 */
import type { Effect } from '../../app/effects.ts';

export interface Partitioned {
  joins: string[];
  leaves: string[];
  sends: { to: string; route: string; data: unknown }[];
  broadcasts: { room: string; route: string; data: unknown }[];
  close?: { code: number; reason: string };
}

const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256;

/** RFC 6455 codes an endpoint may put in a close frame (1004-1006 and 1015 are reserved). */
export function isSendableCloseCode(code: unknown): code is number {
  return Number.isInteger(code) && (((code as number) >= 1000 && (code as number) <= 1014 && ![1004, 1005, 1006].includes(code as number)) || ((code as number) >= 3000 && (code as number) <= 4999));
}

/** A close reason may hold at most 123 bytes of UTF-8. */
export function truncateUtf8(text: string, maxBytes: number): string {
  let out = text;
  while (Buffer.byteLength(out) > maxBytes) out = out.slice(0, -1);
  return out;
}

export function partitionEffects(effects: Effect[] | undefined): Partitioned | { invalid: string } {
  const out: Partitioned = { joins: [], leaves: [], sends: [], broadcasts: [] };
  if (effects === undefined) return out;
  if (!Array.isArray(effects)) return { invalid: 'effects must be an array' };
  for (const e of effects) {
    switch (e?.type) {
      case 'join':
        if (!isName(e.room)) return { invalid: 'join needs a room' };
        out.joins.push(e.room);
        break;
      case 'leave':
        if (!isName(e.room)) return { invalid: 'leave needs a room' };
        out.leaves.push(e.room);
        break;
      case 'send':
        if (!isName(e.to) || !isName(e.route)) return { invalid: 'send needs a session and a route' };
        out.sends.push({ to: e.to, route: e.route, data: e.data });
        break;
      case 'broadcast':
        if (!isName(e.room) || !isName(e.route)) return { invalid: 'broadcast needs a room and a route' };
        out.broadcasts.push({ room: e.room, route: e.route, data: e.data });
        break;
      case 'close':
        if (!isSendableCloseCode(e.code)) return { invalid: 'close needs a code a server may send: 1000-1003, 1007-1014 or 3000-4999' };
        out.close = { code: e.code, reason: truncateUtf8(String(e.reason ?? ''), 123) };
        break;
      default:
        return { invalid: `unknown effect ${JSON.stringify((e as { type?: unknown })?.type)}` };
    }
  }
  return out;
}
