/**
 * The virtual-user harness of the Artillery profiles: one `Vu` per Artillery virtual user, each with
 * one or more `Peer`s (a TetherClient from client/, the SDK, on its own socket). Everything a profile
 * checks is emitted as Artillery custom metrics:
 *
 * | metric | kind | what |
 * |---|---|---|
 * | `tether.requests` | counter | requests made (`request()` calls) |
 * | `tether.rtt` | histogram (ms) | `request()` to its `res`, for requests made and answered on one open connection |
 * | `tether.rtt_resumed` | histogram (ms) | the same for requests that spanned a reconnect (re-sent after a resume); not gated |
 * | `tether.admitted` | counter | requests answered anything but `rate_limited` |
 * | `tether.rate_limited` | counter | `rate_limited` answers the profile expects (`expectRateLimited`), not errors |
 * | `tether.errors` | counter | everything that should not happen (kinds below, one `tether.error_kind.<kind>` counter each) |
 * | `tether.resumes` | counter | connections lost and resumed (planned drops and, in chaos, the kill) |
 * | `tether.resume_ms` | histogram (ms) | connection lost (close seen by the client) to `welcome` with `resumed: true` |
 * | `tether.failover_ms` | histogram (ms) | the same, for connections lost without `drop()` (chaos: the kill) |
 * | `tether.resume_handshake_ms` | histogram (ms) | the successful reconnect: socket created to `welcome` |
 * | `tether.connect_ms` | histogram (ms) | first `connect()` to its `welcome` |
 * | `tether.broadcast_ms` | histogram (ms) | `chat.send` made to the sender's own copy of the message |
 * | `tether.msgs` | counter | pushed messages received (room and direct) |
 * | `tether.chaos_closes` | counter | sockets on the killed instance that closed, or failed to connect, after the kill (expected) |
 *
 * Error kinds: `req_<code>` (a request rejected with anything unexpected: timeout, closed,
 * session_lost, internal, unavailable past its timeout, rate_limited when not expected, ...),
 * `close_<code>` (a socket closed that nobody closed on purpose), `fatal_close` (the client stopped),
 * `session_lost` (a resume that started a new session), `gap`, `lost_msg`, `dup_msg`, `order`,
 * `wrong_reply`, `counter_mismatch`, `presence`, `server_error_frame`, `exception`.
 *
 * Environment (set by run.ts): `TETHER_TARGETS` (comma-separated ws:// URLs), `TETHER_ROOT` (the
 * repository, to load `ws`), `TETHER_LOAD_DIR` (where burst profiles write per-request records),
 * `TETHER_CHAOS_VICTIM` (the URL run.ts kills) and `TETHER_CHAOS_KILLED_FILE` (created just before the
 * kill).
 */
import { appendFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import type { WebSocket as WsSocket } from 'ws';
import { TetherClient, TetherError, type TetherClientOptions, type TetherMessage, type WebSocketConstructor } from '../../../client/index.ts';

/** The part of Artillery's event emitter a processor uses. */
export interface ArtilleryEvents {
  emit(type: 'counter' | 'histogram', name: string, value: number): void;
}

/** The part of Artillery's virtual-user context a processor uses. */
export interface ArtilleryContext {
  vars: Record<string, unknown>;
}

const ROOT = process.env.TETHER_ROOT ?? process.cwd();
/** `ws` from the repository's own dependencies (the one the server and the tests use). */
const WS = createRequire(join(ROOT, 'package.json'))('ws') as typeof WsSocket;

const TARGETS = (process.env.TETHER_TARGETS ?? '').split(',').filter((u) => u.length > 0);
if (TARGETS.length === 0) throw new Error('TETHER_TARGETS is not set: run the profiles through load/artillery/run.ts');
const VICTIM = process.env.TETHER_CHAOS_VICTIM;
const KILLED_FILE = process.env.TETHER_CHAOS_KILLED_FILE;
const LOAD_DIR = process.env.TETHER_LOAD_DIR;

/** A request that got no answer this long is an error (`req_timeout`). */
export const REQUEST_TIMEOUT_MS = 10_000;
/** How long a virtual user waits, at its end, for messages it expects. */
export const SETTLE_TIMEOUT_MS = 8_000;
/** A target that refused a connection is skipped for this long (what a load balancer's health check does). */
const TARGET_DOWN_MS = 3_000;
/** At most this many error details are printed per worker (the counters count them all). */
const MAX_ERROR_LOGS = 30;

const targetDownUntil = new Map<string, number>();
let vuCounter = 0;
let errorLogs = 0;

function killed(): boolean {
  return KILLED_FILE !== undefined && existsSync(KILLED_FILE);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** `ms` ± `jitter` (a fraction), at least 0. */
export function jittered(ms: number, jitter = 0.5): number {
  return Math.max(0, ms * (1 + jitter * (2 * Math.random() - 1)));
}

export function num(vars: Record<string, unknown>, name: string, fallback: number): number {
  const v = vars[name];
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : fallback;
}

export type Outcome<T> = { ok: true; data: T; id: string } | { ok: false; code: string; id: string };

interface RoomLog {
  offs: Set<string>;
  texts: string[];
}

interface Expectation {
  describe: string;
  test: (m: TetherMessage) => boolean;
  startedAt: number;
  resolve: () => void;
  done: boolean;
  /** Time from `startedAt` to the match goes to this histogram, unless a reconnect came between. */
  histogram: string | undefined;
  epoch: number;
  promise: Promise<void>;
}

/** One virtual user: its metrics, its peers, its records. */
export class Vu {
  readonly id: string;
  readonly expectRateLimited: boolean;
  /** Index of the first target of this user; peers take the next ones. */
  readonly firstTarget: number;
  private readonly peers: Peer[] = [];
  /** Burst profiles: per request `send recv admitted`, epoch ms, written to TETHER_LOAD_DIR. */
  private records: string[] = [];

  constructor(
    readonly context: ArtilleryContext,
    readonly events: ArtilleryEvents,
  ) {
    const n = vuCounter++;
    this.id = `${threadId}x${n}`;
    this.firstTarget = n % TARGETS.length;
    this.expectRateLimited = context.vars.expectRateLimited === true || context.vars.expectRateLimited === 'true';
    // Present in every report, so that ensure expressions never see a missing counter.
    this.count('tether.errors', 0);
    this.count('tether.requests', 0);
  }

  count(name: string, by = 1): void {
    this.events.emit('counter', name, by);
  }

  histogram(name: string, value: number): void {
    this.events.emit('histogram', name, value);
  }

  error(kind: string, detail: string): void {
    this.count('tether.errors');
    this.count(`tether.error_kind.${kind}`);
    if (errorLogs < MAX_ERROR_LOGS) {
      errorLogs++;
      console.error(`[tether-load] vu ${this.id} error ${kind}: ${detail}${errorLogs === MAX_ERROR_LOGS ? ' (further details not printed)' : ''}`);
    }
  }

  peerCount(): number {
    return this.peers.length;
  }

  /** A new peer on the user's `offset`-th target (0: its first). */
  peer(offset = 0, options: Partial<TetherClientOptions> = {}): Peer {
    const p = new Peer(this, (this.firstTarget + offset) % TARGETS.length, options);
    this.peers.push(p);
    return p;
  }

  record(sendMs: number, recvMs: number, admitted: boolean): void {
    if (LOAD_DIR !== undefined) this.records.push(`${sendMs} ${recvMs} ${admitted ? 1 : 0}`);
  }

  /** Closes every peer and writes the records. Call once, at the end. */
  finish(): void {
    for (const p of this.peers) p.close();
    if (LOAD_DIR !== undefined && this.records.length > 0) {
      appendFileSync(join(LOAD_DIR, `requests-${process.pid}-${threadId}.txt`), `${this.records.join('\n')}\n`);
      this.records = [];
    }
  }

  /** Runs a scenario body with the bookkeeping every scenario needs. */
  static async run(context: ArtilleryContext, events: ArtilleryEvents, body: (vu: Vu) => Promise<void>): Promise<void> {
    const vu = new Vu(context, events);
    try {
      await body(vu);
    } catch (err) {
      vu.error('exception', err instanceof Error ? (err.stack ?? err.message) : String(err));
    } finally {
      vu.finish();
    }
  }
}

/** One TetherClient with the bookkeeping of what it received and how its connections went. */
export class Peer {
  readonly client: TetherClient;
  /** Increments on every connection that ends: a request whose epoch changed spanned a reconnect. */
  private epoch = 0;
  private target: number;
  private attempts = 0;
  private currentUrl = '';
  private currentSocket: unknown;
  private tcpOpen = false;
  private welcomedOnSocket = false;
  private socketCreatedAt = 0;
  /** When the last welcomed connection was lost, until the resume. */
  private lostAt: number | undefined;
  private plannedDrop = false;
  /** The connection being resumed was lost unplanned (not by `drop()`). */
  private lostUnplanned = false;
  private closing = false;
  private readonly rooms = new Map<string, RoomLog>();
  /** Every pushed message, with when it came and on which connection (for expectations made later). */
  private readonly history: { m: TetherMessage; at: number; epoch: number }[] = [];
  private expectations: Expectation[] = [];
  private requestIds = 0;
  private readonly idPrefix: string;
  /** Frames as they came off the socket: `res` id, or room + offset, to their (connection, position). */
  private frameNo = 0;
  private readonly resFrames = new Map<string, { epoch: number; n: number }>();
  private readonly msgFrames = new Map<string, { epoch: number; n: number }>();
  private welcomeWaiters: (() => void)[] = [];

  constructor(
    readonly vu: Vu,
    target: number,
    options: Partial<TetherClientOptions>,
  ) {
    this.target = target;
    this.idPrefix = `${vu.id}-${vu.peerCount()}`;
    const peer = this;
    // The SDK takes one URL; this constructor ignores it and picks a live target, like a load
    // balancer: the first connection goes to the assigned instance, every reconnect to the next one
    // (so a resume always lands on another instance), skipping targets that just refused a connection.
    class FailoverSocket extends WS {
      constructor(_url: string) {
        super(peer.pickTarget());
        peer.socketCreated(this);
        this.once('open', () => {
          if (peer.currentSocket === this) peer.tcpOpen = true;
        });
        // Registered before the SDK's onmessage, so it sees each frame first (see rawFrame).
        this.on('message', (data: unknown) => {
          if (peer.currentSocket === this) peer.rawFrame(data);
        });
      }
    }
    this.client = new TetherClient(TARGETS[target]!, {
      WebSocket: FailoverSocket as unknown as WebSocketConstructor,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      ...options,
    });
    this.client.on('msg', (m) => this.onMsg(m));
    this.client.on('welcome', (w) => {
      this.welcomedOnSocket = true;
      const now = performance.now();
      if (this.lostAt !== undefined) {
        if (!w.resumed || w.sessionLost) {
          this.vu.error('session_lost', `resume on ${w.instance} started a new session`);
        } else {
          this.vu.count('tether.resumes');
          this.vu.histogram('tether.resume_ms', now - this.lostAt);
          if (this.lostUnplanned) this.vu.histogram('tether.failover_ms', now - this.lostAt);
          this.vu.histogram('tether.resume_handshake_ms', now - this.socketCreatedAt);
        }
        this.lostAt = undefined;
      }
      const waiters = this.welcomeWaiters;
      this.welcomeWaiters = [];
      for (const w of waiters) w();
    });
    this.client.on('close', (e) => {
      this.epoch++;
      const url = this.currentUrl;
      const welcomed = this.welcomedOnSocket;
      if (!this.tcpOpen) targetDownUntil.set(url, Date.now() + TARGET_DOWN_MS);
      if (welcomed && this.lostAt === undefined && !this.closing) {
        this.lostAt = performance.now();
        this.lostUnplanned = !this.plannedDrop;
      }
      if (this.closing) return;
      if (this.plannedDrop) {
        this.plannedDrop = false;
        return;
      }
      if (url === VICTIM && killed() && e.code === 1006) {
        this.vu.count('tether.chaos_closes');
        return;
      }
      if (!e.willReconnect) this.vu.error('fatal_close', `${url} closed ${e.code} ${e.reason}, the client stopped`);
      else this.vu.error(`close_${e.code}`, `${url} closed ${e.code} ${e.reason}${welcomed ? '' : ' before welcome'}`);
    });
    this.client.on('gap', (g) => this.vu.error('gap', `gap ${g.room ?? '(direct)'}`));
    this.client.on('error', (err) => {
      // Fatal and abuse closes also come as `close` events, counted there.
      if (this.closing || (err instanceof TetherError && err.code === 'closed')) return;
      this.vu.error(err instanceof TetherError ? 'server_error_frame' : 'client_error', err.message);
    });
  }

  /**
   * Sees every frame before the SDK does. The SDK settles a request in the `res` frame's event, but
   * the code after `await request()` runs later, after any other frame that came in the same TCP
   * read: positions recorded here tell what the server sent first.
   */
  rawFrame(data: unknown): void {
    let f: { t?: unknown; id?: unknown; room?: unknown; off?: unknown };
    try {
      f = JSON.parse(String(data)) as typeof f;
    } catch {
      return;
    }
    const at = { epoch: this.epoch, n: ++this.frameNo };
    if (f.t === 'res' && typeof f.id === 'string') this.resFrames.set(f.id, at);
    else if (f.t === 'msg' && typeof f.room === 'string' && typeof f.off === 'string') {
      const key = `${f.room}\n${f.off}`;
      if (!this.msgFrames.has(key)) this.msgFrames.set(key, at);
    }
  }

  /** True when the room message came before the `res` of request `id` on the same connection. */
  msgBeforeRes(room: string, off: string, id: string): boolean {
    const msg = this.msgFrames.get(`${room}\n${off}`);
    const res = this.resFrames.get(id);
    return msg !== undefined && res !== undefined && msg.epoch === res.epoch && msg.n < res.n;
  }

  get session(): string {
    return this.client.session ?? '';
  }

  private pickTarget(): string {
    const n = TARGETS.length;
    const first = this.attempts === 0 ? this.target : this.target + 1;
    this.attempts++;
    const now = Date.now();
    for (let i = 0; i < n; i++) {
      const idx = (first + i) % n;
      if ((targetDownUntil.get(TARGETS[idx]!) ?? 0) <= now) {
        this.target = idx;
        return TARGETS[idx]!;
      }
    }
    this.target = first % n;
    return TARGETS[this.target]!;
  }

  private socketCreated(socket: WsSocket): void {
    this.currentSocket = socket;
    this.currentUrl = socket.url;
    this.tcpOpen = false;
    this.welcomedOnSocket = false;
    this.socketCreatedAt = performance.now();
  }

  async connect(): Promise<void> {
    const t0 = performance.now();
    await this.client.connect();
    this.vu.histogram('tether.connect_ms', performance.now() - t0);
  }

  /** Resolves at the next `welcome` (at once when open). */
  welcomed(): Promise<void> {
    if (this.client.state === 'open') return Promise.resolve();
    return new Promise((resolve) => this.welcomeWaiters.push(resolve));
  }

  /** Drops the connection as a network failure would; the client resumes on the next target. */
  drop(): void {
    this.plannedDrop = true;
    this.client.dropConnection('load test: planned drop');
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    for (const e of this.expectations) e.resolve();
    this.client.close();
  }

  /**
   * Calls a route and classifies the outcome. Every answer's round trip goes to `tether.rtt` (or
   * `tether.rtt_resumed`); `rate_limited` is counted as an expected refusal when the profile says so;
   * anything else that is not `ok` is an error, unless `allow` lists its code.
   */
  async request<T>(route: string, data?: unknown, allow: string[] = []): Promise<Outcome<T>> {
    const vu = this.vu;
    vu.count('tether.requests');
    const epoch = this.epoch;
    const wasOpen = this.client.state === 'open';
    const t0 = performance.now();
    const sendMs = Date.now();
    const id = `${this.idPrefix}-${++this.requestIds}`;
    const answered = (): void => {
      const ms = performance.now() - t0;
      vu.histogram(wasOpen && this.epoch === epoch ? 'tether.rtt' : 'tether.rtt_resumed', ms);
    };
    try {
      const reply = await this.client.request<T>(route, data, { id });
      answered();
      vu.count('tether.admitted');
      vu.record(sendMs, Date.now(), true);
      return { ok: true, data: reply, id };
    } catch (err) {
      if (!(err instanceof TetherError)) throw err;
      const serverAnswer = !['timeout', 'closed', 'session_lost', 'expired', 'too_large'].includes(err.code);
      if (serverAnswer) answered();
      if (err.code === 'rate_limited') {
        vu.record(sendMs, Date.now(), false);
        if (vu.expectRateLimited) vu.count('tether.rate_limited');
        else vu.error('req_rate_limited', `${route}: ${err.message}`);
        return { ok: false, code: err.code, id };
      }
      if (serverAnswer) {
        vu.count('tether.admitted');
        vu.record(sendMs, Date.now(), true);
      }
      if (!allow.includes(err.code)) vu.error(`req_${err.code}`, `${route} on ${this.client.instance ?? '?'}: ${err.message}`);
      return { ok: false, code: err.code, id };
    }
  }

  // ---- pushed messages ----

  private onMsg(m: TetherMessage): void {
    this.vu.count('tether.msgs');
    if ('room' in m) {
      let log = this.rooms.get(m.room);
      if (!log) this.rooms.set(m.room, (log = { offs: new Set(), texts: [] }));
      if (log.offs.has(m.off)) {
        this.vu.error('dup_msg', `room ${m.room} offset ${m.off} delivered twice`);
        return;
      }
      log.offs.add(m.off);
      const text = (m.data as { text?: unknown } | null)?.text;
      if (typeof text === 'string') log.texts.push(text);
    }
    const now = performance.now();
    this.history.push({ m, at: now, epoch: this.epoch });
    if (this.expectations.length === 0) return;
    for (const e of this.expectations) {
      if (e.done || !e.test(m)) continue;
      e.done = true;
      if (e.histogram !== undefined && e.epoch === this.epoch) this.vu.histogram(e.histogram, now - e.startedAt);
      e.resolve();
    }
    this.expectations = this.expectations.filter((e) => !e.done);
  }

  /** Texts of the room messages received so far, in arrival order. */
  roomTexts(room: string): string[] {
    return this.rooms.get(room)?.texts ?? [];
  }

  /**
   * Registers a message this peer must receive (it may have come already); `settle()` waits for all
   * of them. `startedAt` and `histogram` time it.
   */
  expect(describe: string, test: (m: TetherMessage) => boolean, startedAt = performance.now(), histogram?: string): void {
    const seen = this.history.find((h) => test(h.m));
    if (seen) {
      if (histogram !== undefined && seen.epoch === this.epoch) this.vu.histogram(histogram, seen.at - startedAt);
      return;
    }
    let resolve: () => void = () => {};
    const promise = new Promise<void>((r) => (resolve = r));
    this.expectations.push({ describe, test, startedAt, resolve, done: false, histogram, epoch: this.epoch, promise });
  }

  /** Waits until every expectation is met or `timeoutMs` passes; the unmet ones are `lost_msg` errors. */
  async settle(timeoutMs = SETTLE_TIMEOUT_MS): Promise<void> {
    const pending = this.expectations.filter((e) => !e.done);
    if (pending.length === 0) return;
    const all = Promise.all(pending.map((e) => e.promise));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    for (const e of pending) {
      if (!e.done && !this.closing) this.vu.error('lost_msg', `${e.describe} not received within ${timeoutMs} ms (peer on ${this.client.instance ?? '?'}, state ${this.client.state})`);
    }
    this.expectations = this.expectations.filter((e) => !e.done);
  }
}
