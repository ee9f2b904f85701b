/**
 * A store that lost a connected session (Redis flushed, or restarted without persistence): the
 * client is told, instead of getting `internal` for every request from then on. The request that
 * finds the session gone gets no `res` (nothing of it was written), the connection closes with 1013,
 * and the client's resume starts a new session (`resumed: false`), from the initial state.
 */
import { createClient } from 'redis';
import { afterEach, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/raw-client.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { type ServerProcess, startServer } from '../helpers/server-process.ts';

let redis: TestRedis | undefined;
let node: ServerProcess | undefined;
afterEach(async () => {
  await node?.kill();
  await redis?.cleanup();
  node = redis = undefined;
});

async function untilReady(url: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await fetch(`${url}/ready`).catch(() => undefined))?.status !== 200) {
    if (Date.now() > deadline) throw new Error(`${url} not ready within 10 s`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('a session the store lost while it was connected', () => {
  it('closes the connection with 1013 and no res; the resume starts over with resumed: false', async () => {
    redis = await startRedis({ own: true }); // its own: the test flushes it
    node = await startServer({ REDIS_URL: redis.url, INSTANCE_ID: 'lost-1' });
    await untilReady(node.url);
    const { client, welcome } = await RawClient.hello(node.wsUrl);
    expect(await client.request('a', 'counter.inc', { by: 5 })).toMatchObject({ ok: true, data: { count: 5 } });

    const admin = createClient({ url: redis.url });
    await admin.connect();
    await admin.flushAll();
    await admin.quit();

    client.send({ t: 'req', id: 'b', route: 'counter.inc', data: { by: 1 } });
    const closed = await client.closed;
    expect(closed.code).toBe(1013);
    expect(closed.reason).toMatch(/lost this session/);
    expect(client.all((f) => f.t === 'res' && f.id === 'b')).toEqual([]);

    const back = await RawClient.hello(node.wsUrl, { session: welcome.session, token: welcome.token });
    expect(back.welcome).toMatchObject({ resumed: false, seq: 0 });
    expect(back.welcome.session).not.toBe(welcome.session);
    expect(await back.client.request('c', 'counter.get')).toMatchObject({ ok: true, data: { count: 0 } });
    back.client.close();
  });
});

describe('a session the store lost while a commit of it had an unknown outcome', () => {
  it('closes with 1013 once the store is back without it, instead of answering unavailable for ever', async () => {
    redis = await startRedis({ own: true });
    node = await startServer({ REDIS_URL: redis.url, INSTANCE_ID: 'lost-2' });
    await untilReady(node.url);
    const { client } = await RawClient.hello(node.wsUrl);
    expect(await client.request('a', 'counter.inc', { by: 5 })).toMatchObject({ ok: true, data: { count: 5 } });

    // the commit of 'b' cannot tell whether it happened: the actor must reload before going on
    await redis.stop(true);
    expect(await client.request('b', 'counter.inc', { by: 1 })).toMatchObject({ ok: false, error: { code: 'unavailable' } });
    // Redis comes back, but without the session (as after a restart without persistence)
    await redis.restart();
    const admin = createClient({ url: redis.url });
    await admin.connect();
    await admin.flushAll();
    await admin.quit();
    await untilReady(node.url);

    // As a client would: `unavailable` (the instance's own connection may still be coming back,
    // whatever /ready said a moment ago) is retried; then the instance finds the session gone.
    let closed: { code: number; reason: string } | undefined;
    void client.closed.then((c) => (closed = c));
    for (let i = 0; closed === undefined && i < 100; i++) {
      const answer = await client.request(`c${i}`, 'counter.inc', { by: 1 }).catch(() => undefined);
      if (answer) expect(answer).toMatchObject({ ok: false, error: { code: 'unavailable' } });
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(closed?.code).toBe(1013);
    expect(closed?.reason).toMatch(/lost this session/);
    expect(client.all((f) => f.t === 'res' && f.ok === true)).toHaveLength(1); // only 'a'
  });
});
