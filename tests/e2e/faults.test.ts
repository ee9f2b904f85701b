/**
 * Faults: an instance killed with SIGKILL under load, and Redis stopped and restarted. Each test
 * starts its own redis-server (append-only, fsync always) and its own instances.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Frame, RawClient } from '../helpers/raw-client.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { type ServerProcess, startServer } from '../helpers/server-process.ts';

const started: { redis: TestRedis[]; nodes: ServerProcess[] } = { redis: [], nodes: [] };
afterEach(async () => {
  await Promise.all(started.nodes.splice(0).map((n) => n.kill()));
  await Promise.all(started.redis.splice(0).map((r) => r.cleanup()));
});

async function cluster(count: number, env: Record<string, string> = {}) {
  const redis = await startRedis({ own: true });
  started.redis.push(redis);
  const nodes = await Promise.all(Array.from({ length: count }, (_, i) => startServer({ REDIS_URL: redis.url, INSTANCE_ID: `f-${i + 1}`, HEARTBEAT_MS: '500', ...env })));
  started.nodes.push(...nodes);
  await Promise.all(nodes.map((n) => until(async () => (await fetch(`${n.url}/ready`)).status === 200, 10_000, `${n.instanceId} ready`)));
  return { redis, nodes };
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check().catch(() => false)) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A receiver that resumes on another instance whenever its connection dies, keeping every msg. */
class ResumingReceiver {
  readonly received: Frame[] = [];
  session = '';
  token = '';
  lastSeq = 0;
  readonly rooms: Record<string, string> = {};
  resumes = 0;
  private client!: RawClient;

  constructor(private readonly urls: string[]) {}

  async start(room: string): Promise<void> {
    const { client, welcome } = await RawClient.hello(this.urls[0]!);
    this.session = welcome.session as string;
    this.token = welcome.token as string;
    await client.request('join', 'chat.join', { room });
    this.watch(client);
  }

  private watch(client: RawClient) {
    this.client = client;
    client.ws.on('message', (data) => {
      const f = JSON.parse(data.toString()) as Frame;
      if (f.t !== 'msg') return;
      this.received.push(f);
      if (typeof f.seq === 'number') this.lastSeq = f.seq;
      if (typeof f.room === 'string') this.rooms[f.room] = f.off as string;
    });
    void client.closed.then(({ code }) => {
      if (code === 1000 || code === 1005) return;
      void this.resume();
    });
  }

  private async resume(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const url = this.urls[1 + (attempt % (this.urls.length - 1))]!;
      try {
        const client = await RawClient.connect(url);
        this.watch(client);
        client.send({ t: 'hello', session: this.session, token: this.token, seq: this.lastSeq, rooms: this.rooms });
        const welcome = await client.next((f) => f.t === 'welcome');
        if (welcome.resumed !== true) throw new Error('not resumed');
        this.resumes++;
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  close() {
    this.client.close();
  }
}

describe('an instance killed with SIGKILL', () => {
  it('loses nothing and repeats nothing for clients that were receiving a stream and resume elsewhere', async () => {
    const { nodes } = await cluster(3);
    const room = 'stream-room';
    const receivers = Array.from({ length: 8 }, () => new ResumingReceiver([nodes[0]!.wsUrl, nodes[1]!.wsUrl, nodes[2]!.wsUrl]));
    await Promise.all(receivers.map((r) => r.start(room)));
    const { client: publisher } = await RawClient.hello(nodes[1]!.wsUrl);
    await publisher.request('j', 'chat.join', { room });
    const total = 300;
    const acked: string[] = [];
    for (let i = 1; i <= total; i++) {
      const res = await publisher.request(`m${i}`, 'chat.send', { room, text: `${i}` });
      expect(res.ok).toBe(true);
      acked.push((res.data as { off: string }).off);
      if (i === 100) await nodes[0]!.kill();
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    for (const r of receivers) {
      await until(async () => r.received.filter((f) => f.room === room).length >= total, 15_000, 'all messages');
    }
    await publisher.request('barrier', 'echo', 0);
    for (const r of receivers) {
      const texts = r.received.filter((f) => f.room === room).map((f) => Number((f.data as { text: string }).text));
      expect(texts).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(r.resumes).toBe(1);
      r.close();
    }
    publisher.close();
  });

  it('keeps every acknowledged change, and its members leave presence within two heartbeats', async () => {
    const { nodes } = await cluster(2);
    const room = 'presence-after-kill';
    const { client: victim, welcome } = await RawClient.hello(nodes[0]!.wsUrl);
    for (let i = 1; i <= 20; i++) expect((await victim.request(`i${i}`, 'counter.inc', {})).ok).toBe(true);
    await victim.request('j', 'chat.join', { room });
    const { client: watcher, welcome: ww } = await RawClient.hello(nodes[1]!.wsUrl);
    await watcher.request('j', 'chat.join', { room });
    await nodes[0]!.kill();
    const killedAt = Date.now();
    let k = 0;
    await until(async () => {
      const res = await watcher.request(`p${++k}`, 'presence.list', { room });
      return JSON.stringify((res.data as { members: string[] }).members) === JSON.stringify([ww.session]);
    }, 5000, 'presence to drop the killed member');
    expect(Date.now() - killedAt).toBeLessThan(2 * 500 + 3000);
    const back = await RawClient.hello(nodes[1]!.wsUrl, { session: welcome.session, token: welcome.token, seq: 0 });
    expect(back.welcome.resumed).toBe(true);
    expect((await back.client.request('g', 'counter.get')).data).toEqual({ count: 20 });
    back.client.close();
    watcher.close();
  });
});

describe('Redis stopped and restarted', () => {
  it('turns unready, answers unavailable quickly, refuses upgrades, then recovers by itself losing no acknowledged change', async () => {
    const { redis, nodes } = await cluster(1);
    const node = nodes[0]!;
    const { client, welcome } = await RawClient.hello(node.wsUrl);
    for (let i = 1; i <= 10; i++) expect((await client.request(`i${i}`, 'counter.inc', {})).ok).toBe(true);

    await redis.stop(true);
    const unreadyAfter = await until(async () => (await fetch(`${node.url}/ready`)).status === 503, 5000, '/ready 503');
    expect(unreadyAfter).toBeLessThan(3000);
    const storeDownAfter = await until(async () => {
      const ready = await (await fetch(`${node.url}/ready`)).json();
      return ready.status === 'not_ready' && ready.checks.store === 'unreachable' && ready.checks.pubsub === 'connecting';
    }, 5000, '/ready to name the store and pub/sub');
    expect(storeDownAfter).toBeLessThan(3000);
    expect((await fetch(`${node.url}/health`)).status).toBe(200);

    const asked = Date.now();
    const res = await client.request('during', 'counter.inc', {});
    expect(Date.now() - asked).toBeLessThan(3000);
    expect(res.error).toMatchObject({ code: 'unavailable' });
    expect((res.error as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
    const refused = await RawClient.connect(node.wsUrl).catch((err: { status?: number }) => err);
    expect((refused as { status?: number }).status).toBe(503);

    await redis.restart();
    await until(async () => (await fetch(`${node.url}/ready`)).status === 200, 10_000, '/ready 200 again');
    await until(async () => (await client.request(`retry-${Date.now()}`, 'counter.get')).ok === true, 5000, 'requests to work again');
    expect((await client.request('during', 'counter.inc', {})).data).toEqual({ count: 11 });
    expect((await client.request('during', 'counter.inc', {})).data).toEqual({ count: 11 });
    client.close();
    await client.closed;
    const fresh = await RawClient.hello(node.wsUrl, { session: welcome.session, token: welcome.token, seq: 0 });
    expect((await fresh.client.request('g2', 'counter.get')).data).toEqual({ count: 11 });
    fresh.client.close();
  });

  it('closes a hello the store cannot serve with 1013', async () => {
    const { redis, nodes } = await cluster(1);
    const node = nodes[0]!;
    const client = await RawClient.connect(node.wsUrl);
    await redis.stop(true);
    client.send({ t: 'hello' });
    const closed = await client.closed;
    expect(closed.code).toBe(1013);
  });
});
