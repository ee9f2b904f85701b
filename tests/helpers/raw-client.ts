/**
 * A raw tether.v1 client for tests: sends exact frames and waits for exact answers, no SDK logic.
 */
import WebSocket from 'ws';

export interface Frame {
  t: string;
  [key: string]: unknown;
}

export class RawClient {
  readonly frames: Frame[] = [];
  private cursor = 0;
  private waiters: (() => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      this.frames.push(isBinary ? { t: '<binary>' } : (JSON.parse(data.toString()) as Frame));
      this.wake();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      this.wake();
    }));
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, headers: res.headers })));
      ws.once('error', reject);
    });
    this.closed.catch(() => {});
    this.opened.catch(() => {});
  }

  static async connect(url: string, options: WebSocket.ClientOptions = {}): Promise<RawClient> {
    const client = new RawClient(new WebSocket(url, options));
    await client.opened;
    return client;
  }

  /** Connects and says hello; resolves with the welcome. */
  static async hello(url: string, hello: Record<string, unknown> = {}, options: WebSocket.ClientOptions = {}): Promise<{ client: RawClient; welcome: Frame }> {
    const client = await RawClient.connect(url, options);
    client.send({ t: 'hello', ...hello });
    const welcome = await client.next((f) => f.t === 'welcome');
    return { client, welcome };
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Sends a `req` and resolves with its `res`. */
  async request(id: string, route: string, data?: unknown): Promise<Frame> {
    this.send(data === undefined ? { t: 'req', id, route } : { t: 'req', id, route, data });
    return this.next((f) => f.t === 'res' && f.id === id);
  }

  /** The next frame (after those already taken) that matches; frames skipped stay readable in `frames`. */
  async next(match: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.frames.length) {
        const f = this.frames[this.cursor++]!;
        if (match(f)) return f;
      }
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting; frames: ${JSON.stringify(this.frames)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; frames: ${JSON.stringify(this.frames).slice(0, 2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Frames received so far that match, without consuming. */
  all(match: (f: Frame) => boolean): Frame[] {
    return this.frames.filter(match);
  }

  /** Waits until `count` frames match. */
  async until(match: (f: Frame) => boolean, count: number, timeoutMs = 5000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.all(match).length < count) {
      if (Date.now() > deadline) throw new Error(`only ${this.all(match).length} of ${count} frames within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.all(match);
  }

  close(): void {
    this.ws.close();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
