/**
 * The handler API as an application developer meets it: hooks, effects, errors, declared limits.
 * Instances run in this process with a custom app on the embedded store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { close, defineApp, HandlerError, join, route, send, UnauthorizedError } from '../../runtime/index.ts';
import { loadConfig } from '../../runtime/config.ts';
import { createTether, type Tether } from '../../runtime/server/tether.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { TEST_ENV } from '../helpers/server-process.ts';

interface State {
  connects: number;
  resumes: number;
  disconnects: number;
}

const testApp = defineApp<State>({
  initialState: () => ({ connects: 0, resumes: 0, disconnects: 0 }),
  routes: {
    stats: route({ handle: (s: State) => ({ reply: s }) }),
    bye: route({ handle: (_s: State) => ({ reply: 'bye', effects: [close(4000, 'app said bye')] }) }),
    count: route({ handle: (s: State) => ({ state: { ...s, connects: s.connects + 10 }, reply: 'counted' }) }),
    badClose: route({ handle: (_s: State) => ({ reply: 'never', effects: [close(2000, 'not a code a server may send')] }) }),
    badCloseAndCount: route({ handle: (s: State) => ({ state: { ...s, connects: 1000 }, reply: 'never', effects: [close(2000, 'not a code a server may send')] }) }),
    admin: route({
      handle: (_s: State, _i, ctx) => {
        if (ctx.userId !== 'root') throw new UnauthorizedError('admins only');
        return { reply: 'ok' };
      },
    }),
    boom: route({
      handle: () => {
        throw new Error('secret internal detail');
      },
    }),
    refuse: route({
      handle: () => {
        throw new HandlerError('no thanks');
      },
    }),
    limited: route({ rate: { rate: 2, burst: 2 }, handle: () => ({ reply: 'ok' }) }),
    typed: route({ input: z.object({ n: z.number() }), handle: (_s: State, { n }) => ({ reply: n * 2 }) }),
  },
  onConnect: (s, ctx) => ({ state: { ...s, connects: s.connects + 1 }, effects: [join(`lobby`), send(ctx.sessionId, 'hello.from.hook', { now: ctx.now > 0 })] }),
  onResume: (s) => ({ state: { ...s, resumes: s.resumes + 1 } }),
  onDisconnect: (s) => ({ state: { ...s, disconnects: s.disconnects + 1 } }),
});

let tether: Tether;
let url: string;
beforeAll(async () => {
  const config = loadConfig({ ...TEST_ENV, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', RL_USER_RATE: '0' });
  tether = createTether(config, testApp);
  const { port } = await tether.start();
  url = `ws://127.0.0.1:${port}/ws`;
});
afterAll(async () => {
  await tether?.stop();
});

describe('lifecycle hooks', () => {
  it('runs onConnect for a new session (with effects), onDisconnect at close and onResume on resume', async () => {
    const { client, welcome } = await RawClient.hello(url);
    const hookMsg = await client.next((f) => f.t === 'msg');
    expect(hookMsg).toMatchObject({ route: 'hello.from.hook', seq: 1, data: { now: true } });
    expect((await client.request('s', 'stats')).data).toEqual({ connects: 1, resumes: 0, disconnects: 0 });
    client.close();
    await client.closed;
    await new Promise((r) => setTimeout(r, 50));
    const again = await RawClient.hello(url, { session: welcome.session, token: welcome.token, seq: 1 });
    expect((await again.client.request('s2', 'stats')).data).toEqual({ connects: 1, resumes: 1, disconnects: 1 });
    again.client.close();
  });
});

describe('effects and errors', () => {
  it('closes the connection with the code of a close effect, after the reply', async () => {
    const { client } = await RawClient.hello(url);
    expect((await client.request('b', 'bye')).data).toBe('bye');
    expect(await client.closed).toEqual({ code: 4000, reason: 'app said bye' });
  });

  it('drops unanswered the requests that came after a close effect; the client re-sends them after resuming', async () => {
    const { client, welcome } = await RawClient.hello(url);
    client.send({ t: 'req', id: 'b', route: 'bye' });
    client.send({ t: 'req', id: 'c', route: 'count' });
    expect(await client.closed).toEqual({ code: 4000, reason: 'app said bye' });
    expect(client.all((f) => f.t === 'res').map((f) => f.id)).toEqual(['b']);
    const again = await RawClient.hello(url, { session: welcome.session, token: welcome.token });
    expect((await again.client.request('s', 'stats')).data).toMatchObject({ connects: 1 }); // c did not run
    expect((await again.client.request('c', 'count')).data).toBe('counted');
    expect((await again.client.request('s2', 'stats')).data).toMatchObject({ connects: 11 });
    again.client.close();
  });

  it('answers a close effect with a code no server may send as internal, and stays open', async () => {
    const { client } = await RawClient.hello(url);
    expect((await client.request('bc', 'badClose')).error).toEqual({ code: 'internal', message: 'internal error' });
    expect((await client.request('after', 'stats')).ok).toBe(true);
    client.close();
  });

  it('takes on nothing of a request answered internal for an invalid effect, not even its new state', async () => {
    const { client } = await RawClient.hello(url);
    expect((await client.request('bcc', 'badCloseAndCount')).error).toEqual({ code: 'internal', message: 'internal error' });
    expect((await client.request('after', 'stats')).data).toEqual({ connects: 1, resumes: 0, disconnects: 0 });
    client.close();
  });

  it('answers UnauthorizedError with unauthorized', async () => {
    const { client } = await RawClient.hello(url);
    expect((await client.request('a', 'admin')).error).toEqual({ code: 'unauthorized', message: 'admins only' });
    client.close();
  });

  it('answers a handler bug with internal, without its details, and does not record it', async () => {
    const { client } = await RawClient.hello(url);
    const res = await client.request('x', 'boom');
    expect(res.error).toEqual({ code: 'internal', message: 'internal error' });
    expect(JSON.stringify(client.frames)).not.toContain('secret');
    expect((await client.request('x', 'typed', { n: 2 })).data).toBe(4);
    client.close();
  });

  it('answers HandlerError without a code as handler_error with no detail', async () => {
    const { client } = await RawClient.hello(url);
    expect((await client.request('r', 'refuse')).error).toEqual({ code: 'handler_error', message: 'no thanks' });
    client.close();
  });

  it('limits a route by its own declaration, answering rate_limited with retryAfterMs, then admits after it', async () => {
    const { client } = await RawClient.hello(url);
    expect((await client.request('l1', 'limited')).ok).toBe(true);
    expect((await client.request('l2', 'limited')).ok).toBe(true);
    const refused = await client.request('l3', 'limited');
    expect(refused.error).toMatchObject({ code: 'rate_limited' });
    const retryAfterMs = (refused.error as { retryAfterMs: number }).retryAfterMs;
    expect(retryAfterMs).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, retryAfterMs + 10));
    expect((await client.request('l3', 'limited')).ok).toBe(true);
    client.close();
  });
});
