/**
 * A Redis older than 7.0 (no sharded pub/sub) is refused up front: the instance stays not ready,
 * `/ready` names the version, upgrades get 503, and the log says what to do. The old server is a
 * real redis-server behind a proxy that makes `INFO server` report 6.x (same length, so the RESP
 * framing is untouched); the same instance straight on that redis-server becomes ready.
 */
import { once } from 'node:events';
import { createServer, type Server, connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { redisVersionProblem } from '../../runtime/store/redis/redis-version.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { type ServerProcess, startServer } from '../helpers/server-process.ts';

const started: { redis: TestRedis[]; nodes: ServerProcess[]; proxies: Server[] } = { redis: [], nodes: [], proxies: [] };
afterEach(async () => {
  await Promise.all(started.nodes.splice(0).map((n) => n.kill()));
  for (const p of started.proxies.splice(0)) p.close();
  await Promise.all(started.redis.splice(0).map((r) => r.cleanup()));
});

/** Forwards to `port`, rewriting `redis_version:<7-9>.` to `redis_version:6.` in what Redis sends back. */
async function olderRedisProxy(port: number): Promise<string> {
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => client.write(Buffer.from(chunk.toString('latin1').replace(/redis_version:\d\./g, 'redis_version:6.'), 'latin1')));
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', closeBoth).on('close', closeBoth);
    upstream.on('error', closeBoth).on('close', closeBoth);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  started.proxies.push(server);
  return `redis://127.0.0.1:${(server.address() as { port: number }).port}`;
}

interface ReadyBody {
  status: string;
  checks: { store: string; pubsub: string; draining: string };
}

async function readyReport(node: ServerProcess): Promise<{ status: number; body: ReadyBody }> {
  const res = await fetch(`${node.url}/ready`);
  return { status: res.status, body: (await res.json()) as ReadyBody };
}

async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() > until) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('Redis version', () => {
  it('reads the version from INFO server', () => {
    expect(redisVersionProblem('# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:0\r\n')).toBeUndefined();
    expect(redisVersionProblem('redis_version:8.2.1\r\n')).toBeUndefined();
    expect(redisVersionProblem('redis_version:6.2.14\r\n')).toBe('redis 6.2.14 is older than 7.0');
    expect(redisVersionProblem('redis_version:5.0\r\n')).toBe('redis 5.0 is older than 7.0');
    expect(redisVersionProblem('# a server that does not say\r\n')).toBeUndefined();
  });

  it('an instance on Redis 6 stays not ready, says why, and refuses upgrades; on Redis 7 it is ready', async () => {
    const redis = await startRedis();
    started.redis.push(redis);
    const old = await startServer({ REDIS_URL: await olderRedisProxy(redis.port) });
    started.nodes.push(old);
    const report = await eventually(() => readyReport(old), (r) => r.body.checks.store !== 'ok' && r.body.checks.store !== 'unreachable' && !r.body.checks.store.startsWith('checking'), 10_000);
    expect(report.status).toBe(503);
    expect(report.body.status).toBe('not_ready');
    expect(report.body.checks.store).toMatch(/^redis 6\.\d+(\.\d+)? is older than 7\.0$/);
    const upgrade = new WebSocket(old.wsUrl);
    upgrade.on('error', () => {}); // aborting the refused handshake below reports one
    const refused = await new Promise<number>((resolve) => {
      upgrade.on('unexpected-response', (req, res) => {
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      upgrade.on('open', () => {
        resolve(101);
        upgrade.close();
      });
    });
    expect(refused).toBe(503);
    expect(old.output()).toMatch(/is older than 7\.0: Tether needs Redis 7\.0 or later/);
    // still refused a while later: not a startup blip
    expect((await readyReport(old)).status).toBe(503);

    const current = await startServer({ REDIS_URL: redis.url });
    started.nodes.push(current);
    const ok = await eventually(() => readyReport(current), (r) => r.status === 200, 10_000);
    expect(ok.body.checks.store).toBe('ok');
  });
});
