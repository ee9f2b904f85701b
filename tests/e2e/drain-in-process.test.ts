/**
 * Drain, observed from outside while a slow request is still in flight. The instance runs in this
 * process on the real memory store, whose commits are slowed down so the drain takes a while.
 */
import { describe, expect, it } from 'vitest';
import { app } from '../../handlers/index.ts';
import { loadConfig } from '../../runtime/config.ts';
import type { CommitInput } from '../../runtime/ports/session-store.ts';
import { memoryPorts } from '../../runtime/server/ports.ts';
import { createTether } from '../../runtime/server/tether.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { TEST_ENV } from '../helpers/server-process.ts';

describe('drain while a request is in flight', () => {
  it('is unready and refuses upgrades at once, answers the request, then closes 1012', async () => {
    const config = loadConfig({ ...TEST_ENV, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', DRAIN_TIMEOUT_MS: '5000' });
    const ports = memoryPorts(config);
    const commit = ports.store.commit.bind(ports.store);
    let slow = false;
    ports.store.commit = async (input: CommitInput) => {
      if (slow) await new Promise((r) => setTimeout(r, 400));
      return commit(input);
    };
    const tether = createTether(config, app, { ports });
    const { port } = await tether.start();
    const base = `http://127.0.0.1:${port}`;
    const { client } = await RawClient.hello(`ws://127.0.0.1:${port}/ws`);
    slow = true;
    client.send({ t: 'req', id: 'slow', route: 'counter.inc', data: {} });
    await new Promise((r) => setTimeout(r, 50));
    const stopped = tether.stop();

    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'not_ready', checks: { store: 'ok', pubsub: 'ok', draining: 'draining' } });
    const refused = await RawClient.connect(`ws://127.0.0.1:${port}/ws`).catch((err: { status?: number }) => err);
    expect((refused as { status?: number }).status).toBe(503);
    // frames sent after the drain began are not read
    client.send({ t: 'req', id: 'late', route: 'counter.inc', data: {} });

    const closed = await client.closed;
    expect(closed.code).toBe(1012);
    expect(client.all((f) => f.t === 'res')).toEqual([{ t: 'res', id: 'slow', ok: true, data: { count: 1 } }]);
    await stopped;
  });
});
