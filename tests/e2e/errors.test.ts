/**
 * Every error path of SPEC section 3, frame by frame, against a real server process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/raw-client.ts';
import { type ServerProcess, startServer } from '../helpers/server-process.ts';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServer({ MAX_PAYLOAD_BYTES: '8192', ABUSE_MAX_STRIKES: '5', HELLO_TIMEOUT_MS: '400' });
});
afterAll(async () => {
  await server?.stop();
});

const badFrame = (f: { t: string; error?: unknown }) => f.t === 'error';

describe('malformed frames are answered, never fatal on their own', () => {
  it('answers bad JSON with bad_frame and keeps the connection usable', async () => {
    const client = await RawClient.connect(server.wsUrl);
    client.send('{"t":"hello"');
    expect(await client.next()).toEqual({ t: 'error', error: { code: 'bad_frame', message: 'frame is not valid JSON' } });
    client.send({ t: 'hello' });
    expect((await client.next()).t).toBe('welcome');
    client.close();
  });

  it('answers a frame that is not an object, has no t, or an unknown t', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    client.send('[1,2,3]');
    client.send('{"id":"1"}');
    client.send('{"t":"nope"}');
    const errors = await client.until(badFrame, 3);
    expect(errors.map((f) => (f.error as { code: string }).code)).toEqual(['bad_frame', 'bad_frame', 'bad_frame']);
    expect((await client.request('ok', 'echo', 1)).ok).toBe(true);
    client.close();
  });

  it('answers a req before hello with bad_frame, and a ping before hello with pong', async () => {
    const client = await RawClient.connect(server.wsUrl);
    client.send({ t: 'req', id: '1', route: 'echo', data: 1 });
    expect(await client.next()).toEqual({ t: 'error', error: { code: 'bad_frame', message: 'req before hello' } });
    client.send({ t: 'ping' });
    expect(await client.next()).toEqual({ t: 'pong' });
    client.close();
  });

  it('answers a second hello with bad_frame and keeps the session', async () => {
    const { client, welcome } = await RawClient.hello(server.wsUrl);
    client.send({ t: 'hello' });
    expect(await client.next()).toEqual({ t: 'error', error: { code: 'bad_frame', message: 'hello was already sent' } });
    await client.request('inc', 'counter.inc', {});
    expect((await client.request('get', 'counter.get')).data).toEqual({ count: 1 });
    expect(client.all((f) => f.t === 'welcome')).toHaveLength(1);
    expect(welcome.resumed).toBe(false);
    client.close();
  });

  it('answers a req without a valid id or route with bad_frame', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    client.send({ t: 'req', route: 'echo' });
    client.send({ t: 'req', id: 'x'.repeat(65), route: 'echo' });
    client.send({ t: 'req', id: '1' });
    const errors = await client.until(badFrame, 3);
    expect(errors.map((f) => (f.error as { message: string }).message)).toEqual([
      'req.id must be a string of 1 to 64 characters',
      'req.id must be a string of 1 to 64 characters',
      'req.route must be a string of 1 to 128 characters',
    ]);
    client.close();
  });

  it('answers a binary frame with bad_frame', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    client.ws.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]), { binary: true });
    expect(await client.next()).toEqual({ t: 'error', error: { code: 'bad_frame', message: 'binary frames are not accepted; send JSON text frames' } });
    expect((await client.request('after', 'echo', 'still here')).data).toBe('still here');
    client.close();
  });

  it('answers an unknown route with unknown_route, and the same id may be used again', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    const res = await client.request('r1', 'no.such.route', {});
    expect(res).toEqual({ t: 'res', id: 'r1', ok: false, error: { code: 'unknown_route', message: 'no route named "no.such.route"' } });
    expect((await client.request('r1', 'echo', 'now it runs')).data).toBe('now it runs');
    client.close();
  });

  it('answers input that fails the schema with bad_request, changing nothing', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    const cases: [string, unknown][] = [
      ['counter.inc', { by: 'x' }],
      ['counter.inc', { by: 1.5 }],
      ['counter.inc', { by: Number.MAX_SAFE_INTEGER + 2 }],
      ['chat.join', { room: '' }],
      ['chat.join', { room: 'r'.repeat(129) }],
      ['chat.join', {}],
      ['chat.send', { room: 'a', text: '' }],
      ['chat.send', { room: 'a', text: 't'.repeat(4097) }],
      ['dm.send', { to: 'x' }],
      ['presence.list', { room: 5 }],
    ];
    for (const [i, [route, data]] of cases.entries()) {
      const res = await client.request(`b${i}`, route, data);
      expect(res.ok, `${route} ${JSON.stringify(data)}`).toBe(false);
      expect((res.error as { code: string }).code).toBe('bad_request');
    }
    expect((await client.request('get', 'counter.get')).data).toEqual({ count: 0 });
    client.close();
  });

  it('accepts the largest inputs the example app allows', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    const room = 'r'.repeat(128);
    expect((await client.request('j', 'chat.join', { room })).ok).toBe(true);
    expect((await client.request('big', 'counter.inc', { by: Number.MAX_SAFE_INTEGER })).data).toEqual({ count: Number.MAX_SAFE_INTEGER });
    // one more would lose precision: refused on purpose, and the count stays
    const over = await client.request('over', 'counter.inc');
    expect(over.error).toMatchObject({ code: 'handler_error', detail: 'out_of_range' });
    expect((await client.request('get', 'counter.get')).data).toEqual({ count: Number.MAX_SAFE_INTEGER });
    client.close();
  });

  it('answers a handler rejection with handler_error, its message and its application code', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    const notMember = await client.request('s1', 'chat.send', { room: 'elsewhere', text: 'hi' });
    expect(notMember.error).toEqual({ code: 'handler_error', message: 'not a member of elsewhere', detail: 'not_member' });
    const nobody = await client.request('d1', 'dm.send', { to: 'no-such-session', text: 'hi' });
    expect(nobody.error).toEqual({ code: 'handler_error', message: 'no such session', detail: 'unknown_session' });
    client.close();
  });

  it('closes a frame over MAX_PAYLOAD_BYTES with 1009', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    client.send({ t: 'req', id: 'big', route: 'echo', data: 'x'.repeat(9000) });
    const closed = await client.closed;
    expect(closed.code).toBe(1009);
    expect(closed.reason).not.toBe('');
  });

  it('closes with 1008 when no hello arrives within HELLO_TIMEOUT_MS', async () => {
    const client = await RawClient.connect(server.wsUrl);
    const closed = await client.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/no hello/);
  });

  it('closes with 4429 after ABUSE_MAX_STRIKES bad frames in a row, sending the last answer first', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    for (let i = 0; i < 5; i++) client.send('garbage');
    const closed = await client.closed;
    expect(closed.code).toBe(4429);
    expect(client.all(badFrame)).toHaveLength(5);
  });

  it('resets the strike count on an admitted request', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++) client.send('garbage');
      await client.request(`ok${round}`, 'echo', round);
    }
    expect(client.ws.readyState).toBe(client.ws.OPEN);
    client.close();
  });
});

describe('resume tokens', () => {
  it('closes a resume with the wrong token with 4401 and does not disturb the live connection', async () => {
    const { client: live, welcome } = await RawClient.hello(server.wsUrl);
    await live.request('i1', 'counter.inc', { by: 2 });
    const intruder = await RawClient.connect(server.wsUrl);
    intruder.send({ t: 'hello', session: welcome.session, token: 'not-the-token' });
    const closed = await intruder.closed;
    expect(closed.code).toBe(4401);
    expect(closed.reason).toMatch(/token/);
    expect((await live.request('g', 'counter.get')).data).toEqual({ count: 2 });
    expect(live.ws.readyState).toBe(live.ws.OPEN);
    live.close();
  });

  it('starts a fresh session under a new id for an unknown session', async () => {
    const { client, welcome } = await RawClient.hello(server.wsUrl, { session: 'unknown-session-id', token: 'whatever' });
    expect(welcome.resumed).toBe(false);
    expect(welcome.session).not.toBe('unknown-session-id');
    expect(welcome.seq).toBe(0);
    client.close();
  });
});
