/**
 * A join whose commit succeeded but that this instance could not take on (the room subscription or
 * the presence write failed: Redis went away between the two): the client is not left waiting for
 * a `res`, and is not left in a room it would not hear. It gets the true `res`, then close 1013, and
 * its resume puts it back in the room, listed and replayed. The instance runs in this process on the
 * memory store; the test makes presence writes fail while it wants them to.
 */
import { describe, expect, it } from 'vitest';
import { app } from '../../handlers/index.ts';
import { defineApp, join } from '../../runtime/index.ts';
import { loadConfig } from '../../runtime/config.ts';
import { memoryPorts } from '../../runtime/server/ports.ts';
import { createTether } from '../../runtime/server/tether.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { TEST_ENV } from '../helpers/server-process.ts';

/** Runs `body` against an in-process instance of `application` whose presence writes fail while `failing.on`. */
async function withInstance(application: typeof app, body: (url: string, failing: { on: boolean }) => Promise<void>) {
  const config = loadConfig({ ...TEST_ENV, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent' });
  const ports = memoryPorts(config);
  const failing = { on: false };
  const add = ports.presence.add.bind(ports.presence);
  ports.presence.add = (...args) => (failing.on ? Promise.reject(new Error('redis connection lost')) : add(...args));
  const tether = createTether(config, application, { ports });
  const { port } = await tether.start();
  try {
    await body(`ws://127.0.0.1:${port}/ws`, failing);
  } finally {
    await tether.stop();
  }
}

describe('a join committed but not taken on by this instance', () => {
  it('answers the join, closes with 1013, and the resume is back in the room, listed and replayed', async () => {
    await withInstance(app, async (url, failing) => {
      const { client, welcome } = await RawClient.hello(url);
      failing.on = true;
      client.send({ t: 'req', id: 'j', route: 'chat.join', data: { room: 'r' } });
      expect(await client.next((f) => f.t === 'res')).toEqual({ t: 'res', id: 'j', ok: true, data: { room: 'r' } });
      const closed = await client.closed;
      expect(closed.code).toBe(1013);
      expect(closed.reason).toMatch(/resume/);
      failing.on = false;

      // meanwhile someone else talks in the room
      const other = await RawClient.hello(url);
      await other.client.request('o1', 'chat.join', { room: 'r' });
      await other.client.request('o2', 'chat.send', { room: 'r', text: 'while you were away' });

      const back = await RawClient.hello(url, { session: welcome.session, token: welcome.token, seq: 0, rooms: {} });
      expect(back.welcome).toMatchObject({ resumed: true });
      const replayed = await back.client.next((f) => f.t === 'msg');
      expect(replayed).toMatchObject({ room: 'r', route: 'chat.message', data: { text: 'while you were away' } });
      const list = await back.client.request('p', 'presence.list', { room: 'r' });
      expect(list).toMatchObject({ ok: true });
      expect((list.data as { members: string[] }).members).toHaveLength(2); // the other client and this one
      back.client.close();
      other.client.close();
    });
  });

  it('closes with 1013 when a lifecycle hook joined a room it could not take on', { timeout: 10_000 }, async () => {
    const hookApp = defineApp<null>({ initialState: () => null, routes: {}, onConnect: () => ({ effects: [join('lobby')] }) });
    await withInstance(hookApp as unknown as typeof app, async (url, failing) => {
      failing.on = true;
      const { client } = await RawClient.hello(url);
      const closed = await client.closed;
      expect(closed.code).toBe(1013);
    });
  });
});
