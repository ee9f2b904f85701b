/**
 * The client SDK (client/) against real server processes: requests, resume, exactly-once re-sends,
 * replay and dedupe, takeover, timeouts, tokens, auth, acks and pings.
 *
 * Faults are injected by a WebSocket wrapper (browser API over `ws`) that records every frame the
 * client sends, can hold new connections back (a "network outage"), swallow or duplicate incoming
 * frames, and kill the real socket from underneath the client.
 */
import { createHmac } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type ConnectionState, type TetherClientOptions, type TetherEvents, TetherClient, TetherError, type WebSocketConstructor, type WebSocketLike } from '../../client/index.ts';
import { type ServerProcess, startServer } from '../helpers/server-process.ts';

/** Compile-time check: the browser's own WebSocket fits the SDK's constructor type. */
export const browserWebSocketFits: WebSocketConstructor | undefined = (globalThis as { WebSocket?: typeof globalThis.WebSocket }).WebSocket;

interface Frame {
  t: string;
  [key: string]: unknown;
}

let server: ServerProcess;
let authServer: ServerProcess;
let smallFrames: ServerProcess;
const AUTH_SECRET = 'client-sdk-test-secret';

beforeAll(async () => {
  [server, authServer, smallFrames] = await Promise.all([startServer(), startServer({ AUTH_SECRET }), startServer({ MAX_PAYLOAD_BYTES: '1024' })]);
});
afterAll(async () => {
  await Promise.all([server?.stop(), authServer?.stop(), smallFrames?.stop()]);
});

const clients: TetherClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

let roomCounter = 0;
const uniqueRoom = () => `sdk-${process.pid}-${++roomCounter}`;

/** A controllable WebSocket implementation for one or more clients. */
function faultyNetwork() {
  const sentListeners = new Set<() => void>();
  const net = {
    /** Every frame any socket of this network sent, parsed. */
    sent: [] as Frame[],
    sockets: [] as FaultySocket[],
    /** While set, new sockets do not connect until it resolves. */
    gate: undefined as Promise<void> | undefined,
    /** Return false to swallow an incoming frame. */
    filter: undefined as ((frame: Frame, socket: FaultySocket) => boolean) | undefined,
    /** Deliver every `msg` frame twice. */
    duplicateMsgs: false,
    /** Connect here instead of the client's URL (the "DNS" now points elsewhere). */
    url: undefined as string | undefined,
    /** Holds new connections back until the returned function is called. */
    cut(): () => void {
      let open!: () => void;
      net.gate = new Promise<void>((resolve) => (open = resolve));
      return () => {
        net.gate = undefined;
        open();
      };
    },
    /** Resolves with the first sent frame (now or later) that matches. */
    async waitSent(match: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = net.sent.find(match);
        if (found) return found;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no matching frame sent within ${timeoutMs} ms; sent: ${JSON.stringify(net.sent).slice(0, 1500)}`);
        await new Promise<void>((resolve) => {
          const wake = () => {
            clearTimeout(timer);
            sentListeners.delete(wake);
            resolve();
          };
          const timer = setTimeout(wake, left);
          sentListeners.add(wake);
        });
      }
    },
    WebSocket: undefined as unknown as new (url: string) => FaultySocket,
  };

  class FaultySocket implements WebSocketLike {
    onopen: ((event: unknown) => void) | null = null;
    onmessage: ((event: { data: unknown }) => void) | null = null;
    onclose: ((event: { code: number; reason: string }) => void) | null = null;
    onerror: ((event: unknown) => void) | null = null;
    private inner: WebSocket | undefined;
    private closedEarly = false;

    constructor(url: string) {
      net.sockets.push(this);
      const start = () => {
        if (this.closedEarly) return;
        const ws = new WebSocket(net.url ?? url);
        this.inner = ws;
        ws.on('open', () => this.onopen?.({}));
        ws.on('message', (data) => {
          const text = String(data);
          const frame = JSON.parse(text) as Frame;
          if (net.filter && !net.filter(frame, this)) return;
          this.onmessage?.({ data: text });
          if (net.duplicateMsgs && frame.t === 'msg') this.onmessage?.({ data: text });
        });
        ws.on('close', (code, reason) => this.onclose?.({ code, reason: reason.toString() }));
        ws.on('error', (err) => this.onerror?.(err));
      };
      if (net.gate) void net.gate.then(start);
      else start();
    }

    get readyState(): number {
      if (this.inner) return this.inner.readyState;
      return this.closedEarly ? WebSocket.CLOSED : WebSocket.CONNECTING;
    }

    send(data: string): void {
      net.sent.push(JSON.parse(data) as Frame);
      for (const wake of [...sentListeners]) wake();
      this.inner!.send(data);
    }

    close(code?: number, reason?: string): void {
      if (!this.inner) {
        this.closedEarly = true;
        return;
      }
      this.inner.close(code, reason);
    }

    /** The network fails under the client: the real socket dies, the client sees close 1006. */
    kill(): void {
      this.inner?.terminate();
    }
  }
  net.WebSocket = FaultySocket;
  return net;
}

function client(options: TetherClientOptions = {}, url = server.wsUrl): TetherClient {
  const c = new TetherClient(url, { WebSocket, minReconnectDelayMs: 20, maxReconnectDelayMs: 200, ...options });
  clients.push(c);
  return c;
}

/** Resolves with the next payload of `event` that matches. */
function next<K extends keyof TetherEvents>(c: TetherClient, event: K, match: (payload: TetherEvents[K]) => boolean = () => true, timeoutMs = 5000): Promise<TetherEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching '${String(event)}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = c.on(event, (payload) => {
      if (!match(payload)) return;
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}

/** Every payload of `event` from now on. */
function record<K extends keyof TetherEvents>(c: TetherClient, event: K): TetherEvents[K][] {
  const seen: TetherEvents[K][] = [];
  c.on(event, (payload) => seen.push(payload));
  return seen;
}

async function rejection(promise: Promise<unknown>): Promise<TetherError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(TetherError);
    return err as TetherError;
  }
  throw new Error('expected the promise to reject');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function jwt(sub: string): string {
  const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub })}`;
  return `${body}.${createHmac('sha256', AUTH_SECRET).update(body).digest('base64url')}`;
}

describe('requests', () => {
  it('resolves with the reply data and rejects with TetherError codes', async () => {
    const c = client();
    const states = record(c, 'state');
    const welcome = await c.connect();
    expect(welcome).toMatchObject({ resumed: false, sessionLost: false, seq: 0 });
    expect(c.session).toBe(welcome.session);
    expect(c.token).toEqual(expect.any(String));
    expect(c.instance).toBe(server.instanceId);
    expect(states).toEqual(['connecting', 'open']);

    expect(await c.request('echo', { a: [1, 'two'] })).toEqual({ a: [1, 'two'] });
    expect(await c.request('counter.inc', { by: 2 })).toEqual({ count: 2 });
    const [unknown, bad, refused] = await Promise.all([
      rejection(c.request('no.such.route')),
      rejection(c.request('counter.inc', { by: 'x' })),
      rejection(c.request('chat.send', { room: uniqueRoom(), text: 'hi' })),
    ]);
    expect(unknown.code).toBe('unknown_route');
    expect(bad.code).toBe('bad_request');
    expect(refused).toMatchObject({ code: 'handler_error', detail: 'not_member' });
  });

  it('uses ids of at most 64 characters, unique within the session', async () => {
    const net = faultyNetwork();
    const c = client({ WebSocket: net.WebSocket });
    await c.connect();
    await Promise.all(Array.from({ length: 20 }, (_, i) => c.request('echo', i)));
    const ids = net.sent.filter((f) => f.t === 'req').map((f) => f.id as string);
    expect(ids).toHaveLength(20);
    expect(new Set(ids).size).toBe(20);
    for (const id of ids) expect(id.length).toBeLessThanOrEqual(64);
  });

  it('rejects with timeout when no answer comes, and keeps working', async () => {
    const net = faultyNetwork();
    net.filter = (f) => !(f.t === 'res' && net.sent.some((s) => s.t === 'req' && s.id === f.id && s.data === 'black hole'));
    const c = client({ WebSocket: net.WebSocket });
    await c.connect();
    const started = Date.now();
    const err = await rejection(c.request('echo', 'black hole', { timeoutMs: 300 }));
    expect(err.code).toBe('timeout');
    expect(err.message).toMatch(/300 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(await c.request('echo', 'fine')).toBe('fine');
  });

  it('queues requests made before the welcome and sends them after it', async () => {
    const net = faultyNetwork();
    const c = client({ WebSocket: net.WebSocket });
    const early = c.request('counter.inc', { by: 3 });
    expect(net.sent).toHaveLength(0);
    await c.connect();
    expect(await early).toEqual({ count: 3 });
    expect(net.sent.map((f) => f.t)).toEqual(['hello', 'req']);
  });
});

describe('resume', () => {
  it('keeps the session and its state across a dropped connection', async () => {
    const c = client();
    const first = await c.connect();
    await c.request('counter.inc', { by: 3 });
    await c.request('counter.inc', { by: 4 });
    const states = record(c, 'state');
    const closed = next(c, 'close');
    const resumed = next(c, 'welcome');
    c.dropConnection();
    expect(await closed).toMatchObject({ code: 1006, willReconnect: true });
    const again = await resumed;
    expect(again).toMatchObject({ session: first.session, resumed: true, sessionLost: false });
    expect(c.resumed).toBe(true);
    expect(states).toEqual(['reconnecting', 'open']);
    expect(await c.request('counter.get')).toEqual({ count: 7 });
  });

  it('re-sends a request whose answer was lost with the same id, and it runs once', async () => {
    const net = faultyNetwork();
    let swallowed: Frame | undefined;
    net.filter = (f, socket) => {
      const isInc = f.t === 'res' && net.sent.some((s) => s.t === 'req' && s.id === f.id && s.route === 'counter.inc');
      if (!isInc || swallowed) return true;
      swallowed = f; // committed on the server, but the answer never arrives: the network dies
      socket.kill();
      return false;
    };
    const c = client({ WebSocket: net.WebSocket });
    await c.connect();
    expect(await c.request('counter.get')).toEqual({ count: 0 });
    const resumed = next(c, 'welcome');
    expect(await c.request('counter.inc', { by: 5 })).toEqual({ count: 5 });
    expect(swallowed).toMatchObject({ ok: true, data: { count: 5 } });
    expect((await resumed).resumed).toBe(true);
    const sends = net.sent.filter((f) => f.t === 'req' && f.route === 'counter.inc');
    expect(sends).toHaveLength(2);
    expect(sends[1]!.id).toBe(sends[0]!.id);
    expect(await c.request('counter.get')).toEqual({ count: 5 });
  });

  it('runs a request sent right before the connection drops exactly once', async () => {
    const c = client();
    await c.connect();
    await c.request('counter.inc', { by: 10 });
    const p = c.request<{ count: number }>('counter.inc', { by: 1 });
    c.dropConnection();
    expect(c.state).toBe('reconnecting');
    expect(await p).toEqual({ count: 11 });
    expect(await c.request('counter.get')).toEqual({ count: 11 });
  });

  it('queues requests made while disconnected until the next welcome', async () => {
    const net = faultyNetwork();
    const c = client({ WebSocket: net.WebSocket });
    await c.connect();
    const restore = net.cut();
    c.dropConnection();
    const p = c.request('counter.inc', { by: 2 });
    await sleep(100); // the client retries meanwhile; nothing may go out
    expect(net.sent.filter((f) => f.t === 'req')).toHaveLength(0);
    expect(c.state).toBe('reconnecting');
    restore();
    expect(await p).toEqual({ count: 2 });
    expect(net.sent.filter((f) => f.t === 'req')).toHaveLength(1);
  });

  it('rejects an unanswered request older than dedupeTtlMs instead of re-sending it', async () => {
    const net = faultyNetwork();
    let restore: (() => void) | undefined;
    net.filter = (f, socket) => {
      if (restore || f.t !== 'res' || !net.sent.some((s) => s.t === 'req' && s.id === f.id && s.route === 'counter.inc')) return true;
      restore = net.cut();
      socket.kill();
      return false;
    };
    const c = client({ WebSocket: net.WebSocket, dedupeTtlMs: 100 });
    await c.connect();
    const p = rejection(c.request('counter.inc')); // handled at once: it rejects while the welcome is processed
    const resumed = next(c, 'welcome');
    await next(c, 'close');
    await sleep(150);
    restore!();
    expect((await resumed).resumed).toBe(true);
    const err = await p;
    expect(err.code).toBe('expired');
    expect(net.sent.filter((f) => f.t === 'req' && f.route === 'counter.inc')).toHaveLength(1);
    expect(await c.request('counter.get')).toEqual({ count: 1 }); // it had run: its outcome was unknown
  });

  it('replays room and direct messages missed while disconnected, once each', async () => {
    const room = uniqueRoom();
    const net = faultyNetwork();
    const alice = client();
    const bob = client({ WebSocket: net.WebSocket });
    await Promise.all([alice.connect(), bob.connect()]);
    const bobMsgs = record(bob, 'msg');
    const gaps = record(bob, 'gap');
    await alice.request('chat.join', { room });
    await bob.request('chat.join', { room });
    const first = next(bob, 'msg', (m) => 'room' in m);
    const { off: off1 } = await alice.request<{ off: string }>('chat.send', { room, text: 'm1' });
    expect(await first).toMatchObject({ route: 'chat.message', room, off: off1, data: { text: 'm1' } });

    const restore = net.cut();
    bob.dropConnection();
    await alice.request('chat.send', { room, text: 'm2' });
    await alice.request('dm.send', { to: bob.session, text: 'd1' });
    await alice.request('chat.send', { room, text: 'm3' });
    await alice.request('dm.send', { to: bob.session, text: 'd2' });
    const helloCount = net.sent.filter((f) => f.t === 'hello').length;
    const resumed = next(bob, 'welcome');
    restore();
    expect(await resumed).toMatchObject({ resumed: true, session: bob.session });
    const hello = net.sent.filter((f) => f.t === 'hello')[helloCount];
    expect(hello).toMatchObject({ session: bob.session, token: bob.token, seq: 0, rooms: { [room]: off1 } });

    await bob.request('echo', 'barrier'); // the replay comes before this answer
    const roomTexts = bobMsgs.filter((m) => 'room' in m).map((m) => (m.data as { text: string }).text);
    const direct = bobMsgs.filter((m) => 'seq' in m);
    expect(roomTexts).toEqual(['m1', 'm2', 'm3']);
    expect(direct.map((m) => ('seq' in m ? m.seq : 0))).toEqual([1, 2]);
    expect(direct.map((m) => (m.data as { text: string }).text)).toEqual(['d1', 'd2']);
    expect(gaps).toEqual([]);
    expect(bob.resumeState).toMatchObject({ seq: 2, rooms: { [room]: expect.any(String) } });
  });

  it('drops duplicate messages (direct seq seen, room offset equal to the last)', async () => {
    const room = uniqueRoom();
    const net = faultyNetwork();
    net.duplicateMsgs = true;
    const c = client({ WebSocket: net.WebSocket });
    await c.connect();
    const msgs = record(c, 'msg');
    await c.request('chat.join', { room });
    await c.request('chat.send', { room, text: 'one' });
    await c.request('chat.send', { room, text: 'two' });
    await c.request('dm.send', { to: c.session, text: 'self 1' });
    await c.request('dm.send', { to: c.session, text: 'self 2' });
    await c.request('echo', 'barrier');
    expect(msgs.map((m) => (m.data as { text: string }).text)).toEqual(['one', 'two', 'self 1', 'self 2']);
  });

  it('starts a fresh session after 4401 (wrong token) and says the old one is lost', async () => {
    const victim = client();
    const real = await victim.connect();
    const net = faultyNetwork();
    const c = client({ WebSocket: net.WebSocket, resume: { session: real.session, token: 'not-the-token', seq: 0, rooms: {} } });
    const closes = record(c, 'close');
    const queued = c.request('counter.inc', { by: 4 });
    const welcome = await c.connect();
    expect(closes).toEqual([expect.objectContaining({ code: 4401, willReconnect: true })]);
    expect(welcome).toMatchObject({ resumed: false, sessionLost: true });
    expect(welcome.session).not.toBe(real.session);
    expect(net.sent.filter((f) => f.t === 'hello').map((f) => f.session)).toEqual([real.session, undefined]);
    expect(await queued).toEqual({ count: 4 }); // never sent before: safe to run in the new session
    expect(victim.state).toBe('open');
    expect(await victim.request('counter.get')).toEqual({ count: 0 });
  });
});

describe('takeover', () => {
  it('a second client resuming the session takes it over; the first gets 4001 and stays closed', async () => {
    const first = client();
    const w = await first.connect();
    await first.request('counter.inc', { by: 9 });
    const firstStates = record(first, 'state');
    const firstClose = next(first, 'close');
    const second = client({ resume: first.resumeState! });
    const secondCloses = record(second, 'close');
    const w2 = await second.connect();
    expect(w2).toMatchObject({ session: w.session, resumed: true });
    expect(await firstClose).toMatchObject({ code: 4001, willReconnect: false });
    expect(first.state).toBe('closed');
    expect(firstStates).toEqual(['closed']);
    expect((await rejection(first.request('counter.get'))).code).toBe('closed');

    await sleep(400); // many reconnect delays (max 200 ms): a reconnect would have taken the session back
    expect(firstStates).toEqual(['closed']);
    expect(secondCloses).toEqual([]);
    expect(await second.request('counter.get')).toEqual({ count: 9 });
  });
});

describe('auth', () => {
  it('sends auth from a function on every connection', async () => {
    let calls = 0;
    const net = faultyNetwork();
    const c = client({ WebSocket: net.WebSocket, auth: async () => jwt(`user-${++calls}`) }, authServer.wsUrl);
    await c.connect();
    const room = uniqueRoom();
    await c.request('chat.join', { room });
    const own = next(c, 'msg', (m) => 'room' in m);
    await c.request('chat.send', { room, text: 'hi' });
    expect((await own).data).toMatchObject({ from: 'user-1' });
    expect(net.sent[0]).toMatchObject({ t: 'hello', auth: jwt('user-1') });
  });

  it('stops on 1008 (no valid auth) without reconnecting', async () => {
    const c = client({}, authServer.wsUrl);
    const errors = record(c, 'error');
    const states = record(c, 'state');
    const closed = next(c, 'close');
    const err = await c.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TetherError);
    expect(await closed).toMatchObject({ code: 1008, willReconnect: false });
    expect(c.state).toBe('closed');
    expect(errors).toHaveLength(1);
    await sleep(300);
    expect(states).toEqual<ConnectionState[]>(['connecting', 'closed']);
  });
});

describe('acks and pings', () => {
  it('acks direct messages every ackEvery messages and after ackDelayMs', async () => {
    const net = faultyNetwork();
    const alice = client();
    const bob = client({ WebSocket: net.WebSocket, ackEvery: 2, ackDelayMs: 200 });
    await Promise.all([alice.connect(), bob.connect()]);
    const third = next(bob, 'msg', (m) => 'seq' in m && m.seq === 3);
    for (const text of ['a', 'b', 'c']) await alice.request('dm.send', { to: bob.session, text });
    await third;
    expect(await net.waitSent((f) => f.t === 'ack' && f.seq === 2)).toBeTruthy();
    expect(await net.waitSent((f) => f.t === 'ack' && f.seq === 3)).toBeTruthy();
    expect(net.sent.filter((f) => f.t === 'ack').map((f) => f.seq)).toEqual([2, 3]);
  });

  it('pings, and drops and resumes a connection that stops answering', async () => {
    const net = faultyNetwork();
    let deaf: unknown;
    net.filter = (_f, socket) => socket !== deaf;
    const c = client({ WebSocket: net.WebSocket, pingIntervalMs: 100, pongTimeoutMs: 200 });
    const w = await c.connect();
    await net.waitSent((f) => f.t === 'ping');
    deaf = net.sockets.at(-1); // the link goes silent, the socket stays "open"
    const closed = next(c, 'close');
    const resumed = next(c, 'welcome');
    expect(await closed).toMatchObject({ code: 1006, willReconnect: true, reason: expect.stringMatching(/ping/) });
    expect(await resumed).toMatchObject({ session: w.session, resumed: true });
    expect(await c.request('echo', 'alive')).toBe('alive');
  });
});

describe('server closes', () => {
  it('after 1009 rejects the oversized request with too_large and resumes; refuses frames over maxFrameBytes locally', async () => {
    const c = client({}, smallFrames.wsUrl);
    const w = await c.connect();
    await c.request('counter.inc', { by: 6 });
    const closed = next(c, 'close');
    const resumed = next(c, 'welcome');
    const err = await rejection(c.request('echo', 'x'.repeat(2000)));
    expect(err.code).toBe('too_large');
    expect(await closed).toMatchObject({ code: 1009, willReconnect: true });
    expect(await resumed).toMatchObject({ session: w.session, resumed: true });
    expect(await c.request('counter.get')).toEqual({ count: 6 });

    const local = await rejection(c.request('echo', 'y'.repeat(70_000)));
    expect(local.code).toBe('too_large');
    expect(c.state).toBe('open');
  });

  it('after a drain (1012) reconnects at once; on a server without the session starts fresh, rejects what was in flight and runs what was queued', async () => {
    const [draining, other] = await Promise.all([startServer(), startServer()]);
    try {
      const net = faultyNetwork();
      const c = client({ WebSocket: net.WebSocket }, draining.wsUrl);
      const w = await c.connect();
      await c.request('counter.inc', { by: 2 });
      net.filter = (f) => !(f.t === 'res' && net.sent.some((s) => s.t === 'req' && s.id === f.id && s.data === 'in flight'));
      const inFlight = rejection(c.request('echo', 'in flight'));
      await net.waitSent((f) => f.t === 'req' && f.data === 'in flight');
      let queued: Promise<unknown> | undefined;
      c.once('close', () => {
        queued = c.request('counter.get');
      });
      const closed = next(c, 'close');
      const welcomed = next(c, 'welcome');
      net.url = other.wsUrl; // the next connection lands on another instance (which has no shared store here)
      await draining.stop();
      expect(await closed).toMatchObject({ code: 1012, willReconnect: true });
      const fresh = await welcomed;
      expect(fresh).toMatchObject({ resumed: false, sessionLost: true, instance: other.instanceId });
      expect(fresh.session).not.toBe(w.session);
      expect((await inFlight).code).toBe('session_lost');
      expect(await queued).toEqual({ count: 0 });
    } finally {
      await Promise.all([draining.stop(), other.stop()]);
    }
  });
});
