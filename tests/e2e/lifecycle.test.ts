/**
 * Auth, heartbeat, drain, configuration and the HTTP endpoints, against real server processes.
 */
import { spawn } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { signJwt } from '../../runtime/auth/jwt.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { type ServerProcess, startServer } from '../helpers/server-process.ts';

const SECRET = 'test-secret-for-hs256';
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

describe('auth (AUTH_SECRET set)', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServer({ AUTH_SECRET: SECRET });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('takes the user id from the JWT sub', async () => {
    const room = 'auth-room';
    const { client } = await RawClient.hello(server.wsUrl, { auth: signJwt({ sub: 'alice', exp: inAnHour() }, SECRET) });
    await client.request('j', 'chat.join', { room });
    await client.request('s', 'chat.send', { room, text: 'hi' });
    expect((await client.next((f) => f.t === 'msg')).data).toMatchObject({ from: 'alice' });
    client.close();
  });

  it.each([
    ['no auth', {}],
    ['a bad signature', { auth: signJwt({ sub: 'alice' }, 'another-secret') }],
    ['an expired token', { auth: signJwt({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 10 }, SECRET) }],
    ['no sub', { auth: signJwt({ exp: inAnHour() }, SECRET) }],
    ['garbage', { auth: 'not.a.jwt' }],
    ['an auth that is not a string', { auth: 5 }],
  ])('closes a hello with %s with 1008', async (_name, hello) => {
    const client = await RawClient.connect(server.wsUrl);
    client.send({ t: 'hello', ...hello });
    const closed = await client.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).not.toBe('');
    expect(closed.reason).not.toMatch(/no hello in time/); // refused for its auth, not left to time out
  });

  it('closes a resume whose sub differs from the session user with 4401', async () => {
    const { client, welcome } = await RawClient.hello(server.wsUrl, { auth: signJwt({ sub: 'alice' }, SECRET) });
    await client.request('i', 'counter.inc', {});
    client.close();
    await client.closed;
    const mallory = await RawClient.connect(server.wsUrl);
    mallory.send({ t: 'hello', session: welcome.session, token: welcome.token, auth: signJwt({ sub: 'mallory' }, SECRET) });
    expect((await mallory.closed).code).toBe(4401);
    const back = await RawClient.hello(server.wsUrl, { session: welcome.session, token: welcome.token, auth: signJwt({ sub: 'alice' }, SECRET) });
    expect(back.welcome.resumed).toBe(true);
    expect((await back.client.request('g', 'counter.get')).data).toEqual({ count: 1 });
    back.client.close();
  });
});

describe('heartbeat', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServer({ HEARTBEAT_MS: '200' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('terminates a peer that stops answering protocol pings, and frees its presence', async () => {
    const room = 'heartbeat-room';
    const silent = new RawClient(new WebSocket(server.wsUrl, { autoPong: false }));
    await silent.opened;
    silent.send({ t: 'hello' });
    await silent.next((f) => f.t === 'welcome');
    await silent.request('j', 'chat.join', { room });
    const { client: watcher } = await RawClient.hello(server.wsUrl);
    const started = Date.now();
    const closed = await silent.closed;
    expect(closed.code).toBe(1006);
    expect(Date.now() - started).toBeLessThan(2000);
    const members = await watcher.request('p', 'presence.list', { room });
    expect(members.data).toEqual({ members: [] });
    watcher.close();
  });

  it('keeps a peer that answers pings, even when it sends nothing', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    await new Promise((r) => setTimeout(r, 900));
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    expect((await client.request('e', 'echo', 'alive')).data).toBe('alive');
    client.close();
  });
});

describe('drain on SIGTERM', () => {
  it('turns unready, refuses upgrades with 503, answers what it received, closes 1012 and exits 0', async () => {
    const server = await startServer({ DRAIN_TIMEOUT_MS: '3000' });
    const { client } = await RawClient.hello(server.wsUrl);
    for (let i = 1; i <= 50; i++) client.send({ t: 'req', id: `r${i}`, route: 'counter.inc', data: {} });
    await client.next((f) => f.t === 'res');
    server.child.kill('SIGTERM');
    const closed = await client.closed;
    expect(closed.code).toBe(1012);
    const answered = client.all((f) => f.t === 'res');
    expect(answered.length).toBeGreaterThan(0);
    // everything answered was answered in order, nothing twice
    expect(answered.map((r) => (r.data as { count: number }).count)).toEqual(answered.map((_, i) => i + 1));
    expect(await server.stop()).toBe(0);
  });

});

describe('HTTP endpoints', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('exposes every counter and histogram series from the start, at zero, before any traffic', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    for (const series of [
      'tether_connections 0',
      'tether_ready 1',
      'tether_messages_received_total{route="echo"} 0',
      'tether_messages_received_total{route="unknown"} 0',
      'tether_messages_sent_total{kind="res"} 0',
      'tether_messages_sent_total{kind="msg"} 0',
      'tether_rate_limited_total{scope="conn"} 0',
      'tether_sessions_total{outcome="rejected"} 0',
      'tether_handler_duration_seconds_count{route="echo"} 0',
      'tether_handler_duration_seconds_bucket{route="unknown",le="+Inf"} 0',
      'tether_delivery_latency_seconds_count 0',
    ]) {
      expect(text).toContain(series);
    }
  });

  it('answers /health and /ready with JSON', async () => {
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${server.url}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { store: 'ok', pubsub: 'ok', draining: 'ok' } });
  });

  it('exposes the SPEC metric names on /metrics', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    await client.request('e', 'echo', 1);
    await client.request('u', 'nope', 1);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    for (const name of ['tether_connections', 'tether_ready 1', 'tether_messages_received_total{route="echo"}', 'tether_messages_received_total{route="unknown"}', 'tether_messages_sent_total{kind="res"}', 'tether_sessions_total{outcome="new"}', 'tether_http_requests_total', 'tether_handler_duration_seconds_bucket', 'service_instance_id']) {
      expect(text).toContain(name);
    }
    client.close();
  });

  it('answers a plain GET /ws with 426 and unknown paths with 404', async () => {
    expect((await fetch(`${server.url}/ws`)).status).toBe(426);
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
  });

  it('answers another method on a known path with 405 and Allow, and HEAD like GET without a body', async () => {
    for (const path of ['/health', '/ready', '/metrics', '/ws']) {
      const res = await fetch(`${server.url}${path}`, { method: 'POST' });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
    }
    const head = await fetch(`${server.url}/health`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });
});

describe('configuration', () => {
  it.each([
    ['PORT', 'eighty'],
    ['HEARTBEAT_MS', '-5'],
    ['RL_ROUTE_CHAT_SEND', 'fast'],
    ['TRUST_PROXY', 'yes'],
    ['REDIS_URL', 'localhost:6379'],
    ['REDIS_COMMIT', 'twice'],
    // past what a timer can wait: Node would fire it after 1 ms
    ['HELLO_TIMEOUT_MS', '3000000000'],
    ['HEARTBEAT_MS', '3000000000'],
    ['DRAIN_TIMEOUT_MS', '3000000000'],
    // past what Redis can expire in ms
    ['SESSION_TTL_S', '9007199254740991'],
    ['REDIS_URL', 'redis://127.0.0.1:notaport'],
    ['HOST', 'not a host'],
    // hex, exponents and limits beyond any use are mistakes, not numbers
    ['RL_USER_RATE', '0x10'],
    ['RL_USER_RATE', '1e-400'],
    ['RL_IP_BURST', '99999999999999999999'],
    ['RL_ROUTE_CHAT_SEND', '5:99999999999999999999'],
  ])('stops at start with a message naming %s when it is bad (%s)', async (name, value) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'runtime/main.ts'], { env: { ...process.env, [name]: value }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(err).toContain(name);
  });

  it('stops with a message naming PORT when the port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', 'runtime/main.ts'], { env: { ...process.env, HOST: '127.0.0.1', PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      const code = await new Promise((resolve) => child.once('exit', resolve));
      expect(code).toBe(1);
      expect(err).toContain(`PORT=${port}`);
      expect(err).toContain('check PORT');
    } finally {
      taken.close();
    }
  });

  it('warns at start about an RL_ROUTE_ variable that names no route, and runs', async () => {
    const node = await startServer({ RL_ROUTE_CHAT_SND: '5:10', LOG_LEVEL: 'warn' });
    try {
      expect((await fetch(`${node.url}/health`)).status).toBe(200);
      expect(node.output()).toContain('RL_ROUTE_CHAT_SND names no route');
    } finally {
      await node.stop();
    }
  });
});
