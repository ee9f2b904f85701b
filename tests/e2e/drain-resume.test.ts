/**
 * Drain under traffic, across instances: an instance is told to stop (SIGTERM) while a client has
 * hundreds of requests in flight; the client resumes on another instance and re-sends what was not
 * answered. Every request runs exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { TetherClient } from '../../client/index.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { type ServerProcess, startServer } from '../helpers/server-process.ts';

let redis: TestRedis;
let a: ServerProcess;
let b: ServerProcess;
beforeAll(async () => {
  redis = await startRedis();
  [a, b] = await Promise.all([startServer({ REDIS_URL: redis.url, INSTANCE_ID: 'drain-a' }), startServer({ REDIS_URL: redis.url, INSTANCE_ID: 'drain-b' })]);
  for (const node of [a, b]) {
    for (let i = 0; i < 200 && (await fetch(`${node.url}/ready`).catch(() => null))?.status !== 200; i++) await new Promise((r) => setTimeout(r, 50));
  }
});
afterAll(async () => {
  await Promise.all([a?.kill(), b?.kill()]);
  await redis?.cleanup();
});

describe('drain under traffic', () => {
  it('answers what it received, closes 1012, and the client finishes the rest on another instance, each request once', async () => {
    const urls = [a.wsUrl, b.wsUrl];
    const connectedTo: string[] = [];
    // Like a load balancer: the first connection goes to A, every later one to B.
    class Balanced extends WebSocket {
      constructor(_url: string) {
        const url = urls[Math.min(connectedTo.length, 1)]!;
        connectedTo.push(url);
        super(url);
      }
    }
    const client = new TetherClient('ws://balancer/ws', { WebSocket: Balanced as never, minReconnectDelayMs: 10, maxReconnectDelayMs: 100 });
    await client.connect();
    let drained = false;
    client.on('close', (e) => {
      if (e.code === 1012) drained = true;
    });
    const answers: Promise<{ count: number }>[] = [];
    const fire = (n: number) => {
      for (let i = 0; i < n; i++) answers.push(client.request<{ count: number }>('counter.inc', {}, { timeoutMs: 20_000 }));
    };
    fire(100);
    await answers[0];
    a.child.kill('SIGTERM');
    // keep requests flowing until the drain closes the connection, and a little beyond
    const deadline = Date.now() + 10_000;
    while (!drained && Date.now() < deadline) {
      fire(20);
      await new Promise((r) => setTimeout(r, 2));
    }
    fire(50);
    const results = await Promise.all(answers);
    const total = answers.length;
    const counts = results.map((r) => r.count).sort((x, y) => x - y);
    expect(counts).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(await client.request('counter.get')).toEqual({ count: total });
    expect(drained).toBe(true);
    expect(client.instance).toBe('drain-b');
    expect(await a.stop()).toBe(0);
    client.close();
  });
});
