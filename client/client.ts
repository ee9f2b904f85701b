/**
 * @module client/client
 * `TetherClient`: a tether.v1 client for Node and browsers. It keeps one session across connections:
 * reconnects with backoff, resumes with the last direct seq and room offsets it saw, re-sends
 * unanswered requests with the same id (so they run exactly once), drops duplicates, acks direct
 * messages and checks the link with app-level pings.
 */
import { CloseCodes, type WireError } from '../runtime/errors.ts';
import type { HelloFrame, ServerFrame } from '../runtime/protocol/frames.ts';
import { MAX_REQUEST_ID_LENGTH } from '../runtime/protocol/frames.ts';
import { Emitter } from './emitter.ts';
import { TetherError } from './errors.ts';

/**
 * Makes a handler type bivariant in its parameter, so that both the DOM `WebSocket` and the `ws`
 * package's `WebSocket` (whose event types differ) fit {@link WebSocketLike}.
 */
type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

/** The part of the browser WebSocket API the client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `WebSocket` from `ws` in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** What the client needs to resume a session, e.g. after a page reload. See {@link TetherClient.resumeState}. */
export interface ResumeState {
  session: string;
  token: string;
  /** Highest direct-message seq seen. */
  seq: number;
  /** The last offset seen per room. */
  rooms: Record<string, string>;
}

/** Options of {@link TetherClient}. Every duration is in milliseconds. */
export interface TetherClientOptions {
  /** The WebSocket implementation. Default: `globalThis.WebSocket` (pass `WebSocket` from `ws` on Node 20). */
  WebSocket?: WebSocketConstructor;
  /** A JWT for `hello.auth`, or a function returning one (called before every connection). */
  auth?: string | (() => string | Promise<string>);
  /** Resume this session on the first connection instead of starting a new one. */
  resume?: ResumeState;
  /** Smallest reconnect backoff ceiling. Default 250. */
  minReconnectDelayMs?: number;
  /** Largest reconnect delay. Default 30000. */
  maxReconnectDelayMs?: number;
  /** A connection that has not got its `welcome` this long after it was started is dropped and retried. Default 10000. */
  connectTimeoutMs?: number;
  /** Default timeout of a request, counted from `request()` (time spent queued included). 0: none. Default 30000. */
  requestTimeoutMs?: number;
  /** An unanswered request older than this (since first sent) is not re-sent after a reconnect. Match the server's `DEDUPE_TTL_S`. Default 300000. */
  dedupeTtlMs?: number;
  /** App-level `ping` period while open. 0: no pings. Default 20000. */
  pingIntervalMs?: number;
  /** No frame at all this long after a `ping`: the connection is dropped and the client reconnects. Default 10000. */
  pongTimeoutMs?: number;
  /** Acknowledge direct messages automatically. Default true. */
  autoAck?: boolean;
  /** Send an `ack` once this many direct messages are unacknowledged. Default 50. */
  ackEvery?: number;
  /** Otherwise send it this long after the first unacknowledged one. Default 1000. */
  ackDelayMs?: number;
  /** Requests whose frame is larger (UTF-8 bytes) are refused locally with `too_large`. Match `MAX_PAYLOAD_BYTES`. Default 65536. */
  maxFrameBytes?: number;
  /** Re-send a request answered `unavailable` (same id) after its `retryAfterMs`, as the protocol asks. Default true. */
  retryUnavailable?: boolean;
  /** Close codes that end the client for good, besides 1008 and 4001 (for example an app's "banned" code). */
  fatalCloseCodes?: number[];
}

/** Options of one request. */
export interface RequestOptions {
  /** Reject with `timeout` after this long. 0: never. Default: the client's `requestTimeoutMs`. */
  timeoutMs?: number;
  /** Use this request id (1 to 64 characters, unique within the session) instead of a generated one. */
  id?: string;
}

/** The connection state, as emitted by the `state` event. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** A pushed message: direct (with `seq`) or a room broadcast (with `room` and `off`). */
export type TetherMessage =
  | { route: string; data: unknown; seq: number }
  | { route: string; data: unknown; room: string; off: string };

/** Payload of the `welcome` event. */
export interface WelcomeEvent {
  session: string;
  resumed: boolean;
  /** The session's last direct-message seq, as the server says. */
  seq: number;
  instance: string;
  /**
   * True when the client asked to resume but got a new session (the old one expired, was lost, or
   * its token was refused): state derived from the old session is stale.
   */
  sessionLost: boolean;
}

/** Payload of the `gap` event: messages were lost; without `room` direct messages, else that room's. */
export interface GapEvent {
  room?: string;
}

/** Payload of the `close` event, emitted for every connection that ends. */
export interface CloseEvent {
  code: number;
  reason: string;
  /** Whether the client will reconnect on its own. */
  willReconnect: boolean;
}

/** Every event of {@link TetherClient} and its payload. */
export interface TetherEvents {
  msg: TetherMessage;
  gap: GapEvent;
  state: ConnectionState;
  welcome: WelcomeEvent;
  close: CloseEvent;
  error: Error;
}

interface Pending {
  id: string;
  route: string;
  frame: string;
  bytes: number;
  resolve: (data: unknown) => void;
  reject: (error: TetherError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** When it was first written to a socket; undefined while it never was. */
  firstSentAt: number | undefined;
  /** The session it was sent in. */
  sentInSession: string | undefined;
  /** The connection it was last sent on. */
  sentOn: Connection | undefined;
}

interface Connection {
  ws: WebSocketLike;
  welcomed: boolean;
  /** `welcome.seq` of this connection. */
  welcomeSeq: number;
  connectTimer: ReturnType<typeof setTimeout> | undefined;
  pingTimer: ReturnType<typeof setInterval> | undefined;
  pongTimer: ReturnType<typeof setTimeout> | undefined;
}

const DEFAULTS = {
  minReconnectDelayMs: 250,
  maxReconnectDelayMs: 30_000,
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  dedupeTtlMs: 300_000,
  pingIntervalMs: 20_000,
  pongTimeoutMs: 10_000,
  ackEvery: 50,
  ackDelayMs: 1000,
  maxFrameBytes: 65_536,
};

const OPEN = 1;
/** Close code the client reports for a connection it dropped itself (no close frame seen). */
const ABNORMAL = 1006;
const encoder = new TextEncoder();

function randomPrefix(): string {
  const bytes = new Uint8Array(8);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A tether.v1 client. Create it, listen to its events, `connect()`, then `request()`.
 *
 * Reconnects on its own after any close except `close()`, 1008 (policy: fix the client), 4001
 * (another connection took the session over) and `fatalCloseCodes`; after 4401 (token refused) it
 * drops the session and starts a fresh one, once. 1012 (draining) and 1013 reconnect promptly, the rest
 * with exponential backoff and full jitter.
 *
 * @example
 * import WebSocket from 'ws';
 * const client = new TetherClient('ws://localhost:8080/ws', { WebSocket });
 * client.on('msg', (m) => console.log(m.route, m.data));
 * await client.connect();
 * const { count } = await client.request<{ count: number }>('counter.inc', { by: 2 });
 */
export class TetherClient extends Emitter<TetherEvents> {
  readonly url: string;
  private readonly opts: typeof DEFAULTS & { autoAck: boolean; retryUnavailable: boolean; fatalCloseCodes: number[] };
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly auth: TetherClientOptions['auth'];

  private _state: ConnectionState = 'closed';
  private _session: string | undefined;
  private _token: string | undefined;
  private _resumed = false;
  private _instance: string | undefined;
  private lastSeq = 0;
  private ackedSeq = 0;
  private readonly offsets = new Map<string, string>();

  private readonly pending = new Map<string, Pending>();
  private readonly idPrefix = randomPrefix();
  private idCounter = 0;

  private conn: Connection | undefined;
  /** Counts connection attempts, so a late `auth()` of an old attempt is ignored. */
  private attemptId = 0;
  /** Failed attempts since the last welcome (the backoff exponent). */
  private failures = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** Stopped: by `close()` or a fatal close; `request()` fails fast until `connect()`. */
  private stopped = false;
  /** A connect() is in progress or done (not closed since). */
  private started = false;
  private everOpen = false;
  /** Set after a 4401 made us start fresh; a second 4401 before any welcome is fatal. */
  private freshAfterBadToken = false;
  /** The session was dropped after a 4401; the next welcome reports `sessionLost`. */
  private droppedSession = false;
  private lastWelcome: WelcomeEvent | undefined;
  private connectWaiters: { resolve: (w: WelcomeEvent) => void; reject: (e: Error) => void }[] = [];

  /**
   * @param url The server's WebSocket endpoint, e.g. `wss://example.com/ws`.
   * @example
   * const client = new TetherClient('wss://example.com/ws', { auth: () => getJwt() });
   */
  constructor(url: string, options: TetherClientOptions = {}) {
    super();
    this.url = url;
    this.WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.auth = options.auth;
    this.opts = {
      minReconnectDelayMs: options.minReconnectDelayMs ?? DEFAULTS.minReconnectDelayMs,
      maxReconnectDelayMs: options.maxReconnectDelayMs ?? DEFAULTS.maxReconnectDelayMs,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
      dedupeTtlMs: options.dedupeTtlMs ?? DEFAULTS.dedupeTtlMs,
      pingIntervalMs: options.pingIntervalMs ?? DEFAULTS.pingIntervalMs,
      pongTimeoutMs: options.pongTimeoutMs ?? DEFAULTS.pongTimeoutMs,
      ackEvery: Math.max(1, options.ackEvery ?? DEFAULTS.ackEvery),
      ackDelayMs: options.ackDelayMs ?? DEFAULTS.ackDelayMs,
      maxFrameBytes: options.maxFrameBytes ?? DEFAULTS.maxFrameBytes,
      autoAck: options.autoAck ?? true,
      retryUnavailable: options.retryUnavailable ?? true,
      fatalCloseCodes: options.fatalCloseCodes ?? [],
    };
    if (options.resume) {
      this._session = options.resume.session;
      this._token = options.resume.token;
      this.lastSeq = options.resume.seq;
      this.ackedSeq = options.resume.seq;
      for (const [room, off] of Object.entries(options.resume.rooms)) this.offsets.set(room, off);
    }
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this._state;
  }
  /** The session id (after the first `welcome`, or from `resume`). */
  get session(): string | undefined {
    return this._session;
  }
  /** The session's resume token. A secret. */
  get token(): string | undefined {
    return this._token;
  }
  /** Whether the last `welcome` resumed an existing session. */
  get resumed(): boolean {
    return this._resumed;
  }
  /** The server instance of the last `welcome`. */
  get instance(): string | undefined {
    return this._instance;
  }

  /**
   * What is needed to resume this session later (persist it, e.g. in `sessionStorage`, and pass it
   * as the `resume` option). Undefined before the first `welcome`.
   * @example
   * client.on('msg', () => sessionStorage.setItem('tether', JSON.stringify(client.resumeState)));
   */
  get resumeState(): ResumeState | undefined {
    if (this._session === undefined || this._token === undefined) return undefined;
    return { session: this._session, token: this._token, seq: this.lastSeq, rooms: Object.fromEntries(this.offsets) };
  }

  /**
   * Connects (resuming the session if the client has one) and resolves with the next `welcome`.
   * Keeps retrying until it gets one; rejects only if the client is closed meanwhile (by `close()` or
   * a fatal close code). Calling it while connected resolves at once.
   * @example
   * const welcome = await client.connect();
   * console.log(welcome.session, welcome.resumed);
   */
  connect(): Promise<WelcomeEvent> {
    if (this._state === 'open' && this.lastWelcome) return Promise.resolve(this.lastWelcome);
    const promise = new Promise<WelcomeEvent>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (!this.started) {
      this.started = true;
      this.stopped = false;
      this.everOpen = false;
      this.failures = 0;
      this.setState('connecting');
      this.openSocket();
    }
    return promise;
  }

  /**
   * Calls a route. Resolves with the reply's `data`; rejects with a {@link TetherError}. While the
   * client is not connected the request waits for the next `welcome`; if the connection drops before
   * the answer, it is re-sent with the same id after the resume, so it runs once.
   * @example
   * const reply = await client.request<{ room: string }>('chat.join', { room: 'lobby' }, { timeoutMs: 5000 });
   */
  request<T = unknown>(route: string, data?: unknown, options: RequestOptions = {}): Promise<T> {
    if (this.stopped) return Promise.reject(new TetherError('closed', 'the client is closed; call connect() first'));
    const id = options.id ?? `${this.idPrefix}-${++this.idCounter}`;
    if (id.length < 1 || id.length > MAX_REQUEST_ID_LENGTH) {
      return Promise.reject(new TypeError(`request id must be 1 to ${MAX_REQUEST_ID_LENGTH} characters`));
    }
    if (this.pending.has(id)) return Promise.reject(new TypeError(`request id ${id} is already pending`));
    const frame = JSON.stringify(data === undefined ? { t: 'req', id, route } : { t: 'req', id, route, data });
    const bytes = encoder.encode(frame).length;
    if (bytes > this.opts.maxFrameBytes) {
      return Promise.reject(new TetherError('too_large', `request frame is ${bytes} bytes, over maxFrameBytes (${this.opts.maxFrameBytes})`));
    }
    return new Promise<T>((resolve, reject) => {
      const p: Pending = {
        id,
        route,
        frame,
        bytes,
        resolve: resolve as (data: unknown) => void,
        reject,
        timer: undefined,
        retryTimer: undefined,
        firstSentAt: undefined,
        sentInSession: undefined,
        sentOn: undefined,
      };
      const timeoutMs = options.timeoutMs ?? this.opts.requestTimeoutMs;
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          const sent = p.firstSentAt !== undefined;
          this.settle(p, new TetherError('timeout', `request ${route} (${id}) got no answer within ${timeoutMs} ms${sent ? '; it may have run' : '; it was never sent'}`));
        }, timeoutMs);
      }
      this.pending.set(id, p);
      if (this.conn?.welcomed) this.sendPending(p);
    });
  }

  /**
   * Acknowledges direct messages up to the last one received (done automatically unless
   * `autoAck: false`; call it after storing messages durably when you turn that off).
   * @example
   * client.ack();
   */
  ack(): void {
    if (this.ackTimer !== undefined) {
      clearTimeout(this.ackTimer);
      this.ackTimer = undefined;
    }
    if (this.lastSeq <= this.ackedSeq || !this.conn?.welcomed) return;
    this.sendRaw(this.conn, JSON.stringify({ t: 'ack', seq: this.lastSeq }));
    this.ackedSeq = this.lastSeq;
  }

  /**
   * Closes the connection for good: no reconnect; pending requests reject with `closed`. The session
   * is kept: `connect()` resumes it.
   * @example
   * client.close();
   */
  close(): void {
    const conn = this.conn;
    this.stopped = true;
    this.started = false;
    this.clearReconnect();
    if (conn) this.abandon(conn, 1000, 'client closed');
    this.rejectAll((p) => new TetherError('closed', `the client was closed before ${p.route} (${p.id}) was answered`));
    this.rejectConnectWaiters(new TetherError('closed', 'the client was closed'));
    this.setState('closed');
    if (conn) this.emit('close', { code: 1000, reason: 'client closed', willReconnect: false });
  }

  /**
   * Drops the current connection as if the network failed (no deliberate close): the client
   * reconnects with backoff and resumes. Useful in tests and when the app knows the network changed.
   * @example
   * window.addEventListener('online', () => client.dropConnection());
   */
  dropConnection(reason = 'connection dropped'): void {
    const conn = this.conn;
    if (!conn) return;
    this.abandon(conn, 4000, reason);
    this.handleDisconnect(conn, ABNORMAL, reason);
  }

  protected override onListenerError(event: keyof TetherEvents, error: unknown): void {
    if (event !== 'error') this.emit('error', error instanceof Error ? error : new Error(String(error)));
  }

  // ---- connection lifecycle ----

  private setState(state: ConnectionState): void {
    if (this._state === state) return;
    this._state = state;
    this.emit('state', state);
  }

  private openSocket(): void {
    const attempt = ++this.attemptId;
    const auth = this.auth;
    if (typeof auth === 'function') {
      let result: string | Promise<string>;
      try {
        result = auth();
      } catch (err) {
        this.authFailed(err);
        return;
      }
      Promise.resolve(result).then(
        (token) => {
          if (attempt === this.attemptId && !this.stopped) this.createSocket(token);
        },
        (err: unknown) => {
          if (attempt === this.attemptId && !this.stopped) this.authFailed(err);
        },
      );
    } else {
      this.createSocket(auth);
    }
  }

  private authFailed(err: unknown): void {
    this.emit('error', new Error(`auth() failed: ${err instanceof Error ? err.message : String(err)}`));
    this.scheduleReconnect(this.backoffDelay());
  }

  private createSocket(auth: string | undefined): void {
    const Impl = this.WebSocketImpl;
    if (!Impl) {
      this.fail(new Error('no WebSocket implementation: pass options.WebSocket (e.g. from the ws package) on Node < 22'), 0, '');
      return;
    }
    let ws: WebSocketLike;
    try {
      ws = new Impl(this.url);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)), 0, '');
      return;
    }
    const conn: Connection = { ws, welcomed: false, welcomeSeq: 0, connectTimer: undefined, pingTimer: undefined, pongTimer: undefined };
    this.conn = conn;
    ws.onopen = () => {
      if (this.conn !== conn) return;
      const hello: HelloFrame = { t: 'hello' };
      if (this._session !== undefined && this._token !== undefined) {
        hello.session = this._session;
        hello.token = this._token;
        hello.seq = this.lastSeq;
        if (this.offsets.size > 0) hello.rooms = Object.fromEntries(this.offsets);
      }
      if (auth !== undefined) hello.auth = auth;
      this.sendRaw(conn, JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      if (this.conn === conn) this.onFrame(conn, event.data);
    };
    ws.onclose = (event) => {
      if (this.conn !== conn) return;
      this.detach(conn);
      this.handleDisconnect(conn, event.code, event.reason);
    };
    ws.onerror = () => {
      // A close event always follows; it carries what is known.
    };
    if (this.opts.connectTimeoutMs > 0) {
      conn.connectTimer = setTimeout(() => {
        if (this.conn !== conn || conn.welcomed) return;
        const reason = `no welcome within ${this.opts.connectTimeoutMs} ms`;
        this.abandon(conn, 4000, reason);
        this.handleDisconnect(conn, ABNORMAL, reason);
      }, this.opts.connectTimeoutMs);
    }
  }

  private sendRaw(conn: Connection, frame: string): boolean {
    if (conn.ws.readyState !== OPEN) return false;
    try {
      conn.ws.send(frame);
      return true;
    } catch (err) {
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
      return false;
    }
  }

  /** Stops listening to a socket and its timers; the socket itself stays as it is. */
  private detach(conn: Connection): void {
    const noop = () => {};
    conn.ws.onopen = noop;
    conn.ws.onmessage = noop;
    conn.ws.onclose = noop;
    conn.ws.onerror = noop; // a no-op rather than null: some implementations throw on an unheard error
    if (conn.connectTimer !== undefined) clearTimeout(conn.connectTimer);
    if (conn.pingTimer !== undefined) clearInterval(conn.pingTimer);
    if (conn.pongTimer !== undefined) clearTimeout(conn.pongTimer);
    conn.connectTimer = conn.pingTimer = conn.pongTimer = undefined;
    if (this.conn === conn) this.conn = undefined;
    if (this.ackTimer !== undefined) {
      clearTimeout(this.ackTimer);
      this.ackTimer = undefined;
    }
  }

  /** Detaches a socket and closes it without waiting for the closing handshake. */
  private abandon(conn: Connection, code: number, reason: string): void {
    this.detach(conn);
    try {
      conn.ws.close(code, reason.slice(0, 100));
    } catch {
      // already closing, or the implementation refuses the code: nothing more to do
    }
  }

  private handleDisconnect(conn: Connection, code: number, reason: string): void {
    if (this.stopped) return;
    const { takenOver, policy, badToken, tooLarge, draining, tryAgainLater, abuse } = CloseCodes;
    if (code === takenOver.code || code === policy.code || this.opts.fatalCloseCodes.includes(code)) {
      const why = code === takenOver.code ? 'the session was taken over by another connection' : `the server closed the connection for good (${code} ${reason})`;
      this.fail(new TetherError('closed', why, { closeCode: code }), code, reason);
      return;
    }
    if (code === badToken.code) {
      if (this.freshAfterBadToken || this._session === undefined) {
        this.fail(new TetherError('closed', `the server refused the session twice (${code} ${reason})`, { closeCode: code }), code, reason);
        return;
      }
      // The session cannot be resumed with these credentials: start a new one, once.
      this.freshAfterBadToken = true;
      this.droppedSession = true;
      this.forgetSession();
      this.rejectSent((p) => new TetherError('session_lost', `the session of ${p.route} (${p.id}) was refused (4401); it may have run there`));
      this.emit('close', { code, reason, willReconnect: true });
      this.setState(this.everOpen ? 'reconnecting' : 'connecting');
      this.scheduleReconnect(0);
      return;
    }
    if (code === tooLarge.code) {
      let culprit: Pending | undefined;
      for (const p of this.pending.values()) if (p.sentOn === conn && (!culprit || p.bytes > culprit.bytes)) culprit = p;
      if (culprit) this.settle(culprit, new TetherError('too_large', `the server closed with 1009 (frame too large); ${culprit.route} (${culprit.id}) was the largest unanswered request`));
    }
    if (code === abuse.code) this.emit('error', new TetherError('closed', `closed for abuse (${code} ${reason}); reconnecting after a backoff`, { closeCode: code }));
    this.emit('close', { code, reason, willReconnect: true });
    if (this.stopped) return; // a close listener called close()
    this.setState(this.everOpen ? 'reconnecting' : 'connecting');
    if (code === draining.code || code === tryAgainLater.code) {
      this.failures = 0;
      this.scheduleReconnect(Math.random() * this.opts.minReconnectDelayMs);
    } else {
      if (code === abuse.code) this.failures = Math.max(this.failures, 4);
      this.scheduleReconnect(this.backoffDelay());
    }
  }

  /** Exponential backoff with full jitter: uniform in [0, min(max, min * 2^failures)]. */
  private backoffDelay(): number {
    const ceiling = Math.min(this.opts.maxReconnectDelayMs, this.opts.minReconnectDelayMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    return Math.random() * ceiling;
  }

  private scheduleReconnect(delayMs: number): void {
    this.clearReconnect();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.stopped) this.openSocket();
    }, delayMs);
  }

  private clearReconnect(): void {
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.attemptId++; // an auth() in flight is for a cancelled attempt now
  }

  /** Ends the client for good (a fatal close, or no way to connect). */
  private fail(error: Error, code: number, reason: string): void {
    this.stopped = true;
    this.started = false;
    this.clearReconnect();
    if (this.conn) this.abandon(this.conn, 1000, 'client stopped');
    const closeCode = code || undefined;
    this.rejectAll((p) => new TetherError('closed', `${error.message}; ${p.route} (${p.id}) was not answered`, closeCode === undefined ? {} : { closeCode }));
    this.rejectConnectWaiters(error);
    this.setState('closed');
    if (code) this.emit('close', { code, reason, willReconnect: false });
    // Being taken over is an outcome, not a fault: the `close` event (4001) says it.
    if (code !== CloseCodes.takenOver.code) this.emit('error', error);
  }

  private forgetSession(): void {
    this._session = undefined;
    this._token = undefined;
    this.lastSeq = 0;
    this.ackedSeq = 0;
    this.offsets.clear();
  }

  // ---- frames ----

  private onFrame(conn: Connection, raw: unknown): void {
    if (conn.pongTimer !== undefined) {
      clearTimeout(conn.pongTimer);
      conn.pongTimer = undefined;
    }
    if (typeof raw !== 'string') return; // tether.v1 is text only
    let frame: ServerFrame;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (!isObject(parsed) || typeof parsed.t !== 'string') throw new Error('not a frame');
      frame = parsed as unknown as ServerFrame;
    } catch {
      this.emit('error', new Error(`malformed frame from the server: ${raw.slice(0, 200)}`));
      return;
    }
    switch (frame.t) {
      case 'welcome':
        this.onWelcome(conn, frame);
        return;
      case 'res': {
        const p = this.pending.get(frame.id);
        if (!p) return; // timed out, or answered already
        if (frame.ok) {
          this.settle(p, undefined, frame.data);
          return;
        }
        this.onFailedRes(p, frame.error);
        return;
      }
      case 'msg':
        this.onMsg(frame);
        return;
      case 'gap':
        if (typeof frame.room === 'string') {
          // Keep the stored offset until the next message of that room replaces it.
          this.emit('gap', { room: frame.room });
        } else {
          this.lastSeq = Math.min(this.lastSeq, conn.welcomeSeq);
          this.ackedSeq = Math.min(this.ackedSeq, this.lastSeq);
          this.emit('gap', {});
        }
        return;
      case 'error':
        this.emit('error', isObject(frame.error) ? TetherError.fromWire(frame.error) : new Error('error frame without an error'));
        return;
      case 'pong':
        return;
      default:
        return; // unknown frame types are ignored (forward compatible)
    }
  }

  private onWelcome(conn: Connection, frame: Extract<ServerFrame, { t: 'welcome' }>): void {
    if (conn.welcomed) return;
    conn.welcomed = true;
    conn.welcomeSeq = typeof frame.seq === 'number' ? frame.seq : 0;
    if (conn.connectTimer !== undefined) clearTimeout(conn.connectTimer);
    conn.connectTimer = undefined;

    const askedToResume = this._session !== undefined;
    const sessionLost = (askedToResume || this.droppedSession) && !frame.resumed;
    this.droppedSession = false;
    if (!frame.resumed) this.forgetSession();
    this._session = frame.session;
    this._token = frame.token;
    this._resumed = frame.resumed;
    this._instance = frame.instance;
    this.failures = 0;
    this.freshAfterBadToken = false;
    this.everOpen = true;

    // Pending requests first, in the order they were made, so that requests made by listeners of
    // the events below go out after them.
    const now = Date.now();
    for (const p of [...this.pending.values()]) {
      if (p.retryTimer !== undefined) clearTimeout(p.retryTimer);
      p.retryTimer = undefined;
      if (p.firstSentAt !== undefined) {
        if (p.sentInSession !== frame.session) {
          this.settle(p, new TetherError('session_lost', `the session of ${p.route} (${p.id}) is gone (the server started a new one); it may have run there`));
          continue;
        }
        if (now - p.firstSentAt > this.opts.dedupeTtlMs) {
          this.settle(p, new TetherError('expired', `${p.route} (${p.id}) was unanswered for longer than dedupeTtlMs (${this.opts.dedupeTtlMs} ms); it may have run, so it is not re-sent`));
          continue;
        }
      }
      this.sendPending(p);
    }
    if (this.opts.autoAck && this.lastSeq > this.ackedSeq) this.scheduleAck();
    if (this.opts.pingIntervalMs > 0) {
      conn.pingTimer = setInterval(() => this.ping(conn), this.opts.pingIntervalMs);
    }

    const welcome: WelcomeEvent = { session: frame.session, resumed: frame.resumed, seq: conn.welcomeSeq, instance: frame.instance, sessionLost };
    this.lastWelcome = welcome;
    this.setState('open');
    this.emit('welcome', welcome);
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.resolve(welcome);
  }

  private ping(conn: Connection): void {
    if (this.conn !== conn || conn.pongTimer !== undefined) return;
    if (!this.sendRaw(conn, '{"t":"ping"}')) return;
    conn.pongTimer = setTimeout(() => {
      if (this.conn !== conn) return;
      const reason = `no answer to ping within ${this.opts.pongTimeoutMs} ms`;
      this.abandon(conn, 4000, reason);
      this.handleDisconnect(conn, ABNORMAL, reason);
    }, this.opts.pongTimeoutMs);
  }

  private onMsg(frame: Extract<ServerFrame, { t: 'msg' }>): void {
    if ('seq' in frame && typeof frame.seq === 'number') {
      if (frame.seq <= this.lastSeq) return; // seen already
      this.lastSeq = frame.seq;
      this.emit('msg', { route: frame.route, data: frame.data, seq: frame.seq });
      if (this.opts.autoAck) {
        if (this.lastSeq - this.ackedSeq >= this.opts.ackEvery) this.ack();
        else this.scheduleAck();
      }
      return;
    }
    if ('room' in frame && typeof frame.room === 'string' && typeof frame.off === 'string') {
      if (this.offsets.get(frame.room) === frame.off) return; // seen already
      this.offsets.set(frame.room, frame.off);
      this.emit('msg', { route: frame.route, data: frame.data, room: frame.room, off: frame.off });
    }
  }

  private scheduleAck(): void {
    if (this.ackTimer !== undefined) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      this.ack();
    }, this.opts.ackDelayMs);
  }

  // ---- requests ----

  private sendPending(p: Pending): void {
    const conn = this.conn;
    if (!conn?.welcomed) return;
    if (!this.sendRaw(conn, p.frame)) return;
    p.firstSentAt ??= Date.now();
    p.sentInSession = this._session;
    p.sentOn = conn;
  }

  private onFailedRes(p: Pending, error: WireError): void {
    const err = isObject(error) ? TetherError.fromWire(error) : new TetherError('internal', 'res without an error object');
    const ageMs = p.firstSentAt === undefined ? 0 : Date.now() - p.firstSentAt;
    if (err.code === 'unavailable' && this.opts.retryUnavailable && ageMs < this.opts.dedupeTtlMs) {
      // The protocol asks for a retry with the same id: it may have committed, and runs at most once.
      p.retryTimer = setTimeout(() => {
        p.retryTimer = undefined;
        if (this.pending.get(p.id) === p) this.sendPending(p);
      }, err.retryAfterMs ?? 1000);
      return;
    }
    this.settle(p, err);
  }

  /** Resolves (no error) or rejects a pending request and forgets it. */
  private settle(p: Pending, error: TetherError | undefined, data?: unknown): void {
    if (this.pending.get(p.id) !== p) return;
    this.pending.delete(p.id);
    if (p.timer !== undefined) clearTimeout(p.timer);
    if (p.retryTimer !== undefined) clearTimeout(p.retryTimer);
    if (error) p.reject(error);
    else p.resolve(data);
  }

  private rejectAll(make: (p: Pending) => TetherError): void {
    for (const p of [...this.pending.values()]) this.settle(p, make(p));
  }

  private rejectSent(make: (p: Pending) => TetherError): void {
    for (const p of [...this.pending.values()]) if (p.firstSentAt !== undefined) this.settle(p, make(p));
  }

  private rejectConnectWaiters(error: Error): void {
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.reject(error);
  }
}
