/**
 * @module store/offsets
 * Room offsets: `<epoch>:<n>`. The epoch names one life of a room's history (a new one starts when
 * the history expired), `n` counts the room's messages 1, 2, 3, ... within it. So two offsets of the
 * same epoch tell whether anything lies between them, and an offset from another epoch is unusable.
 * Both store adapters use this format, so offsets are the same on every instance.
 */

export interface ParsedOffset {
  epoch: string;
  n: number;
}

export function formatOffset(epoch: string, n: number): string {
  return `${epoch}:${n}`;
}

/** `n` as the server writes it: decimal digits, no sign, no leading zero, no exponent. */
const COUNT = /^(?:0|[1-9][0-9]*)$/;

/** An offset exactly as the server issues it, or null (anything else is unusable: `gap`). */
export function parseOffset(off: string): ParsedOffset | null {
  const colon = off.lastIndexOf(':');
  if (colon <= 0) return null;
  const digits = off.slice(colon + 1);
  if (!COUNT.test(digits)) return null;
  const n = Number(digits);
  if (!Number.isSafeInteger(n)) return null;
  return { epoch: off.slice(0, colon), n };
}

/** Whether `b` is the message right after `a` in the same history. */
export function offsetFollows(a: string, b: string): boolean {
  const pa = parseOffset(a);
  const pb = parseOffset(b);
  return pa !== null && pb !== null && pa.epoch === pb.epoch && pb.n === pa.n + 1;
}

/** Negative when `a` is older than `b`; null when they belong to different histories. */
export function compareOffsets(a: string, b: string): number | null {
  const pa = parseOffset(a);
  const pb = parseOffset(b);
  if (pa === null || pb === null || pa.epoch !== pb.epoch) return null;
  return pa.n - pb.n;
}

/** A new history epoch: unique across instances and restarts. */
export function newRoomEpoch(nowMs: number, random: string): string {
  return `${nowMs.toString(36)}${random}`;
}
