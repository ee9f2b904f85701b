import { describe, expect, it } from 'vitest';
import { decodeFrame } from '../../runtime/protocol/decode.ts';

const bad = (text: string) => {
  const r = decodeFrame(text);
  if (r.ok) throw new Error(`expected ${text} to be refused`);
  return r.message;
};

describe('decodeFrame accepts every client frame of tether.v1', () => {
  it('decodes a bare hello as a new session', () => {
    expect(decodeFrame('{"t":"hello"}')).toEqual({ ok: true, frame: { t: 'hello' } });
  });

  it('keeps an auth that is not a string as null, for the hello to be refused when auth is required', () => {
    expect(decodeFrame('{"t":"hello","auth":5}')).toEqual({ ok: true, frame: { t: 'hello', auth: null } });
  });

  it('decodes a resuming hello with session, token, seq, rooms and auth', () => {
    const r = decodeFrame(JSON.stringify({ t: 'hello', session: 's', token: 'k', seq: 3, rooms: { a: 'e:1' }, auth: 'x.y.z' }));
    expect(r).toEqual({ ok: true, frame: { t: 'hello', session: 's', token: 'k', seq: 3, rooms: { a: 'e:1' }, auth: 'x.y.z' } });
  });

  it('keeps a non-string room offset as text so that room gets a gap instead of a refused hello', () => {
    expect(decodeFrame(JSON.stringify({ t: 'hello', rooms: { a: 7 } }))).toEqual({ ok: true, frame: { t: 'hello', rooms: { a: '' } } });
    expect(decodeFrame(JSON.stringify({ t: 'hello', rooms: { a: ['e:1'] } }))).toEqual({ ok: true, frame: { t: 'hello', rooms: { a: '' } } });
  });

  it('keeps rooms named like inherited properties (__proto__, constructor) as rooms of their own', () => {
    const r = decodeFrame('{"t":"hello","rooms":{"__proto__":"e:1","constructor":"e:2"}}');
    if (!r.ok || r.frame.t !== 'hello') throw new Error('expected a hello');
    const rooms = r.frame.rooms!;
    expect(Object.keys(rooms)).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(rooms)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(rooms, '__proto__')?.value).toBe('e:1');
    expect(rooms.constructor).toBe('e:2');
  });

  it('decodes a req with and without data', () => {
    expect(decodeFrame('{"t":"req","id":"1","route":"echo","data":{"x":[1]}}')).toEqual({ ok: true, frame: { t: 'req', id: '1', route: 'echo', data: { x: [1] } } });
    expect(decodeFrame('{"t":"req","id":"1","route":"counter.get"}')).toEqual({ ok: true, frame: { t: 'req', id: '1', route: 'counter.get', data: undefined } });
  });

  it('accepts request ids of 1 and of 64 characters', () => {
    expect(decodeFrame(JSON.stringify({ t: 'req', id: 'a', route: 'echo' })).ok).toBe(true);
    expect(decodeFrame(JSON.stringify({ t: 'req', id: 'a'.repeat(64), route: 'echo' })).ok).toBe(true);
  });

  it('accepts ids with surrogate pairs and refuses an id with a lone surrogate', () => {
    expect(decodeFrame('{"t":"req","id":"\\ud83d\\ude00","route":"echo"}')).toMatchObject({ ok: true, frame: { id: '\u{1F600}' } });
    expect(bad('{"t":"req","id":"a\\ud800","route":"echo"}')).toContain('well-formed');
  });

  it('decodes ack and ping', () => {
    expect(decodeFrame('{"t":"ack","seq":12}')).toEqual({ ok: true, frame: { t: 'ack', seq: 12 } });
    expect(decodeFrame('{"t":"ping"}')).toEqual({ ok: true, frame: { t: 'ping' } });
  });
});

describe('decodeFrame refuses malformed frames with a message naming the problem', () => {
  it.each([
    ['not JSON', '{"t":', 'frame is not valid JSON'],
    ['empty text', '', 'frame is not valid JSON'],
    ['a JSON array', '[1,2]', 'frame must be a JSON object'],
    ['a JSON string', '"hello"', 'frame must be a JSON object'],
    ['null', 'null', 'frame must be a JSON object'],
    ['no t', '{"id":"1"}', 'frame has no "t" field'],
    ['a numeric t', '{"t":5}', '"t" must be a string'],
    ['an unknown t', '{"t":"subscribe"}', 'unknown frame type "subscribe"'],
  ])('%s', (_name, text, message) => {
    expect(bad(text)).toBe(message);
  });

  it.each([
    ['no id', { t: 'req', route: 'echo' }],
    ['an empty id', { t: 'req', id: '', route: 'echo' }],
    ['a numeric id', { t: 'req', id: 1, route: 'echo' }],
    ['an id of 65 characters', { t: 'req', id: 'a'.repeat(65), route: 'echo' }],
  ])('a req with %s', (_name, frame) => {
    expect(bad(JSON.stringify(frame))).toBe('req.id must be a string of 1 to 64 characters');
  });

  it.each([
    ['no route', { t: 'req', id: '1' }],
    ['an empty route', { t: 'req', id: '1', route: '' }],
    ['a numeric route', { t: 'req', id: '1', route: 7 }],
  ])('a req with %s', (_name, frame) => {
    expect(bad(JSON.stringify(frame))).toBe('req.route must be a string of 1 to 128 characters');
  });

  it.each([
    ['a negative seq', { t: 'hello', seq: -1 }, 'hello.seq must be a non-negative integer'],
    ['a fractional seq', { t: 'hello', seq: 1.5 }, 'hello.seq must be a non-negative integer'],
    ['a string seq', { t: 'hello', seq: '3' }, 'hello.seq must be a non-negative integer'],
    ['rooms as an array', { t: 'hello', rooms: ['a'] }, 'hello.rooms must be an object of room to offset'],
    ['a numeric session', { t: 'hello', session: 5 }, 'hello.session must be a non-empty string'],
    ['a numeric token', { t: 'hello', session: 's', token: 5 }, 'hello.token must be a string'],
  ])('a hello with %s', (_name, frame, message) => {
    expect(bad(JSON.stringify(frame))).toBe(message);
  });

  it('an ack without a valid seq', () => {
    expect(bad('{"t":"ack"}')).toBe('ack.seq must be a non-negative integer');
    expect(bad('{"t":"ack","seq":"x"}')).toBe('ack.seq must be a non-negative integer');
  });

  it('cuts a long unknown type in its message so errors stay short', () => {
    expect(bad(JSON.stringify({ t: 'x'.repeat(1000) })).length).toBeLessThan(80);
  });
});
