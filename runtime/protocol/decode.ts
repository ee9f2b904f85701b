/**
 * @module protocol/decode
 * Turns one incoming WebSocket frame into a checked client frame, or says exactly why not. Pure.
 */
import type { ClientFrame, HelloFrame } from './frames.ts';
import { MAX_REQUEST_ID_LENGTH, MAX_ROUTE_LENGTH } from './frames.ts';
import { setRoom } from './room-record.ts';

/** Why a frame was refused; every case is answered with `error` `bad_frame` and this message. */
export type DecodeResult =
  | { ok: true; frame: ClientFrame }
  | { ok: false; message: string; /** the `req` id when one could be read, for logging only */ id?: string };

const fail = (message: string): DecodeResult => ({ ok: false, message });

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isSeq(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function decodeHello(raw: Record<string, unknown>): DecodeResult {
  const hello: HelloFrame = { t: 'hello' };
  if (raw.session !== undefined) {
    if (typeof raw.session !== 'string' || raw.session.length === 0 || raw.session.length > 256) return fail('hello.session must be a non-empty string');
    hello.session = raw.session;
  }
  if (raw.token !== undefined) {
    if (typeof raw.token !== 'string' || raw.token.length > 256) return fail('hello.token must be a string');
    hello.token = raw.token;
  }
  if (raw.seq !== undefined) {
    if (!isSeq(raw.seq)) return fail('hello.seq must be a non-negative integer');
    hello.seq = raw.seq;
  }
  if (raw.rooms !== undefined) {
    if (!isPlainObject(raw.rooms)) return fail('hello.rooms must be an object of room to offset');
    const rooms: Record<string, string> = {};
    for (const [room, off] of Object.entries(raw.rooms)) {
      // A non-string offset is still answered (with `gap` for that room): keep it as an unusable one.
      setRoom(rooms, room, typeof off === 'string' ? off : '');
    }
    hello.rooms = rooms;
  }
  // Not a string: kept as null, so that with AUTH_SECRET set the hello is refused (1008) at once,
  // as SPEC asks of a bad `auth`, instead of waiting for the hello timeout.
  if (raw.auth !== undefined) hello.auth = typeof raw.auth === 'string' ? raw.auth : null;
  return { ok: true, frame: hello };
}

function decodeReq(raw: Record<string, unknown>): DecodeResult {
  const { id, route } = raw;
  if (typeof id !== 'string' || id.length < 1 || id.length > MAX_REQUEST_ID_LENGTH) {
    return fail(`req.id must be a string of 1 to ${MAX_REQUEST_ID_LENGTH} characters`);
  }
  // A lone surrogate (a `\ud800` escape without its pair) is not text: the id could not be stored
  // and compared as the same string everywhere.
  if (hasLoneSurrogate(id)) return fail('req.id must be well-formed Unicode (no lone surrogate)');
  if (typeof route !== 'string' || route.length < 1 || route.length > MAX_ROUTE_LENGTH) {
    return { ok: false, message: `req.route must be a string of 1 to ${MAX_ROUTE_LENGTH} characters`, id };
  }
  return { ok: true, frame: { t: 'req', id, route, data: raw.data } };
}

/**
 * Decodes a text frame.
 * @param text - the frame's UTF-8 text
 * @returns the frame, or the reason it is a `bad_frame`
 * @example
 * decodeFrame('{"t":"ping"}') // { ok: true, frame: { t: 'ping' } }
 */
export function decodeFrame(text: string): DecodeResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail('frame is not valid JSON');
  }
  if (!isPlainObject(raw)) return fail('frame must be a JSON object');
  switch (raw.t) {
    case 'req':
      return decodeReq(raw);
    case 'hello':
      return decodeHello(raw);
    case 'ack':
      if (!isSeq(raw.seq)) return fail('ack.seq must be a non-negative integer');
      return { ok: true, frame: { t: 'ack', seq: raw.seq } };
    case 'ping':
      return { ok: true, frame: { t: 'ping' } };
    case undefined:
      return fail('frame has no "t" field');
    default:
      return fail(typeof raw.t === 'string' ? `unknown frame type "${raw.t.slice(0, 32)}"` : '"t" must be a string');
  }
}

const SURROGATE = /[\ud800-\udfff]/;
const LONE_SURROGATE = /\p{Surrogate}/u;

/** True when the string holds a surrogate code unit that is not half of a pair. */
export function hasLoneSurrogate(s: string): boolean {
  return SURROGATE.test(s) && LONE_SURROGATE.test(s);
}
