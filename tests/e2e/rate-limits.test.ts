/**
 * Rate limits as clients meet them: exact across three instances on one Redis under a hard burst,
 * per user, per IP, per route and per upgrade.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signJwt } from '../../runtime/auth/jwt.ts';
import { type Frame, RawClient } from '../helpers/raw-client.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { type ServerProcess, startServer } from '../helpers/server-process.ts';

const SECRET = 'rate-limit-secret';

async function ready(node: ServerProcess) {
  for (let i = 0; i < 200; i++) {
    if ((await fetch(`${node.url}/ready`).catch(() => null))?.status === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('not ready');
}

/** Fires requests as fast as the socket takes them (up to `inFlight` outstanding) for `ms`. */
async function hammer(client: RawClient, ms: number, inFlight = 32): Promise<{ admitted: number; refused: Frame[]; firstSent: number; lastSent: number }> {
  let admitted = 0;
  const refused: Frame[] = [];
  let outstanding = 0;
  let next = 0;
  const firstSent = Date.now();
  let lastSent = firstSent;
  const stopAt = firstSent + ms;
  await new Promise<void>((resolve) => {
    const send = () => {
      while (outstanding < inFlight && Date.now() < stopAt) {
        outstanding++;
        lastSent = Date.now();
        client.send({ t: 'req', id: `h${next++}`, route: 'echo', data: 1 });
      }
      if (outstanding === 0 && Date.now() >= stopAt) resolve();
    };
    client.ws.on('message', (raw) => {
      const f = JSON.parse(raw.toString()) as Frame;
      if (f.t !== 'res') return;
      outstanding--;
      if (f.ok) admitted++;
      else refused.push(f);
      send();
    });
    send();
  });
  return { admitted, refused, firstSent, lastSent };
}

describe('distributed exactness under a hard burst (three instances, one Redis)', () => {
  let redis: TestRedis;
  let nodes: ServerProcess[];
  const rate = 50;
  const burst = 100;
  beforeAll(async () => {
    redis = await startRedis();
    nodes = await Promise.all(
      [1, 2, 3].map((i) =>
        startServer({ REDIS_URL: redis.url, INSTANCE_ID: `rl-${i}`, AUTH_SECRET: SECRET, RL_USER_RATE: String(rate), RL_USER_BURST: String(burst), RL_IP_RATE: String(rate), RL_IP_BURST: String(burst), ABUSE_MAX_STRIKES: '0' }),
      ),
    );
    await Promise.all(nodes.map(ready));
  });
  afterAll(async () => {
    await Promise.all((nodes ?? []).map((n) => n.stop()));
    await redis?.cleanup();
  });

  const check = (results: Awaited<ReturnType<typeof hammer>>[]) => {
    const admitted = results.reduce((sum, r) => sum + r.admitted, 0);
    const start = Math.min(...results.map((r) => r.firstSent));
    const end = Math.max(...results.map((r) => r.lastSent));
    const seconds = (end - start) / 1000;
    const allowed = burst + rate * seconds;
    // The server sees the requests over (about) the same interval the clients sent them in; 50 ms of slack.
    expect(admitted).toBeLessThanOrEqual(Math.floor(burst + rate * (seconds + 0.05)));
    expect(admitted).toBeGreaterThanOrEqual(Math.floor(0.9 * allowed));
    for (const r of results) for (const f of r.refused) expect(f.error).toMatchObject({ code: 'rate_limited' });
    return { admitted, allowed };
  };

  it('admits one user at most burst + rate*T across three instances, and at least 90% of it', async () => {
    const token = signJwt({ sub: 'burst-user' }, SECRET);
    const clients = await Promise.all(nodes.map((n) => RawClient.hello(n.wsUrl, { auth: token }, { localAddress: '127.0.0.1' })));
    // spread the IP load so only the user scope binds: IP limit keys differ per address
    const results = await Promise.all(clients.map((c) => hammer(c.client, 2500)));
    check(results);
    for (const c of clients) c.client.close();
  });

  it('admits one client IP (127.0.0.2) at most burst + rate*T across three instances, and at least 90% of it', async () => {
    const clients = await Promise.all(nodes.map((n, i) => RawClient.hello(n.wsUrl, { auth: signJwt({ sub: `ip-user-${i}` }, SECRET) }, { localAddress: '127.0.0.2' })));
    const results = await Promise.all(clients.map((c) => hammer(c.client, 2500)));
    check(results);
    for (const c of clients) c.client.close();
  });
});

describe('limits on one instance', () => {
  let node: ServerProcess;
  beforeAll(async () => {
    node = await startServer({ RL_USER_RATE: '5', RL_USER_BURST: '5', RL_ROUTE_ECHO: '1:2', RL_IP_RATE: '0', RL_CONN_RATE: '2', RL_CONN_BURST: '3', ABUSE_MAX_STRIKES: '4' });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('refuses over the route limit with rate_limited and retryAfterMs, changing nothing, then admits after waiting', async () => {
    const { client } = await RawClient.hello(node.wsUrl, {}, { localAddress: '127.0.0.5' });
    expect((await client.request('e1', 'echo', 1)).ok).toBe(true);
    expect((await client.request('e2', 'echo', 2)).ok).toBe(true);
    const refused = await client.request('e3', 'echo', 3);
    expect(refused.error).toMatchObject({ code: 'rate_limited', message: expect.stringContaining('route') });
    const wait = (refused.error as { retryAfterMs: number }).retryAfterMs;
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(1000);
    await new Promise((r) => setTimeout(r, wait + 10));
    expect((await client.request('e3', 'echo', 3)).data).toBe(3);
    client.close();
  });

  it('applies the stricter of the user and route limits, and a refused request changes no state', async () => {
    const { client } = await RawClient.hello(node.wsUrl, {}, { localAddress: '127.0.0.6' });
    const answers: Frame[] = [];
    for (let i = 1; i <= 7; i++) answers.push(await client.request(`c${i}`, 'counter.inc', {}));
    const admitted = answers.filter((a) => a.ok);
    expect(admitted.length).toBeGreaterThanOrEqual(5);
    expect(admitted.length).toBeLessThanOrEqual(6);
    expect(answers.filter((a) => !a.ok).every((a) => (a.error as { code: string }).code === 'rate_limited')).toBe(true);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await client.request('get', 'counter.get')).data).toEqual({ count: admitted.length });
    client.close();
  });

  it('answers a re-sent, already processed id from its record even while limited, spending nothing', async () => {
    const { client } = await RawClient.hello(node.wsUrl, {}, { localAddress: '127.0.0.7' });
    const first = await client.request('once', 'echo', 'x');
    await client.request('e2', 'echo', 'y');
    expect((await client.request('e3', 'echo', 'z')).ok).toBe(false);
    expect(await client.request('once', 'echo', 'x')).toEqual(first);
    client.close();
  });

  it('closes with 4429 after ABUSE_MAX_STRIKES rate-limited answers in a row, sending the last one first', async () => {
    const { client } = await RawClient.hello(node.wsUrl, {}, { localAddress: '127.0.0.8' });
    for (let i = 0; i < 10; i++) client.send({ t: 'req', id: `x${i}`, route: 'echo', data: i });
    const closed = await client.closed;
    expect(closed.code).toBe(4429);
    const limited = client.all((f) => f.t === 'res' && f.ok === false);
    expect(limited).toHaveLength(4);
  });

  it('spends no tokens on requests answered unknown_route or bad_request (they come before the limiter)', async () => {
    const { client } = await RawClient.hello(node.wsUrl, {}, { localAddress: '127.0.0.11' });
    // sent back to back, as a burst: more than the user burst (5) of each kind
    for (let i = 0; i < 8; i++) client.send({ t: 'req', id: `u${i}`, route: 'no.such.route', data: i });
    for (let i = 0; i < 8; i++) client.send({ t: 'req', id: `b${i}`, route: 'counter.inc', data: { by: 'one' } });
    const codes = (await client.until((f) => f.t === 'res', 16)).map((f) => (f.error as { code: string }).code);
    expect(codes).toEqual([...Array(8).fill('unknown_route'), ...Array(8).fill('bad_request')]);
    // the whole user burst is still there
    for (let i = 0; i < 5; i++) expect(await client.request(`ok${i}`, 'counter.inc', {})).toMatchObject({ ok: true, data: { count: i + 1 } });
    client.close();
  });

  it('counts strikes in the order the frames came: a request admitted between bad frames resets the count and gets its res', async () => {
    const { client } = await RawClient.hello(node.wsUrl, {}, { localAddress: '127.0.0.12' });
    // ABUSE_MAX_STRIKES is 4: three bad frames, an admitted request, three more is never four in a row
    for (let i = 0; i < 3; i++) client.send('not json');
    client.send({ t: 'req', id: 'between', route: 'counter.inc', data: {} });
    for (let i = 0; i < 3; i++) client.send('not json');
    const answers = await client.until((f) => f.t === 'res' || f.t === 'error', 7);
    expect(answers.map((f) => (f.t === 'res' ? `res:${String(f.id)}` : 'bad'))).toEqual(['bad', 'bad', 'bad', 'res:between', 'bad', 'bad', 'bad']);
    expect((await client.request('still-open', 'counter.get')).data).toEqual({ count: 1 });
    client.close();
  });

  it('answers a bad frame sent right behind hello after the welcome, and counts it there', async () => {
    const client = await RawClient.connect(node.wsUrl, { localAddress: '127.0.0.13' });
    // one TCP write, so the server reads them all while the first hello is still opening
    const socket = (client.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.cork();
    for (let i = 0; i < 7; i++) client.send({ t: 'hello' });
    socket.uncork();
    const closed = await client.closed;
    expect(closed.code).toBe(4429);
    expect(client.frames.map((f) => f.t)).toEqual(['welcome', 'error', 'error', 'error', 'error']);
  });

  it('answers upgrades over RL_CONN with 429 and Retry-After, without affecting other IPs', async () => {
    const opened: RawClient[] = [];
    let refused: { status?: number; headers?: Record<string, string> } | undefined;
    for (let i = 0; i < 6 && !refused; i++) {
      try {
        opened.push(await RawClient.connect(node.wsUrl, { localAddress: '127.0.0.9' }));
      } catch (err) {
        refused = err as typeof refused;
      }
    }
    expect(refused?.status).toBe(429);
    expect(Number(refused?.headers?.['retry-after'])).toBeGreaterThanOrEqual(1);
    const other = await RawClient.connect(node.wsUrl, { localAddress: '127.0.0.10' });
    other.close();
    for (const c of opened) c.close();
    const metrics = await (await fetch(`${node.url}/metrics`)).text();
    expect(metrics).toMatch(/tether_rate_limited_total\{scope="conn"\} [1-9]/);
    expect(metrics).toMatch(/tether_rate_limited_total\{scope="route"\} [1-9]/);
    expect(metrics).toMatch(/tether_http_requests_total\{path="\/ws",status="429"\} [1-9]/);
  });
});

describe('TRUST_PROXY', () => {
  let node: ServerProcess;
  beforeAll(async () => {
    node = await startServer({ TRUST_PROXY: '1', RL_CONN_RATE: '1', RL_CONN_BURST: '1' });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('limits by the right-most X-Forwarded-For entry, the one the proxy appended', async () => {
    const as = (xff: string) => RawClient.connect(node.wsUrl, { headers: { 'x-forwarded-for': xff } });
    (await as('1.1.1.1, 10.0.0.1')).close();
    // a different spoofed left-most entry does not help: the right-most is the same client
    await expect(as('9.9.9.9, 10.0.0.1')).rejects.toMatchObject({ status: 429 });
    // another client behind the proxy is a different IP
    (await as('1.1.1.1, 10.0.0.2')).close();
  });
});
