/**
 * Subscribers of bench-fanout, one child process holding `count` connections (IPC with the orchestrator).
 *
 * Subscriber k (global index `first + k`) connects to `urls[(first + k) % urls.length]`, so the
 * subscribers are split evenly over the instances, and joins `room`:
 *   tether:   `{"t":"hello"}` → welcome, then `req` `chat.join {room}` → `res` ok
 *   socketio: socket.io-client (websocket transport, forceNew), `emit('join', room, ack)`
 * Then sends `{type: 'ready'}` and records every room message. The publisher's text is
 * `"<index> <epoch ms with µs>"` (negative index: warm-up, not counted): latency = receive time − that
 * time (one host, one clock: `performance.timeOrigin + performance.now()` on both sides). Each
 * subscriber has a bitmap of the indices it got, so duplicates, losses and reorderings are exact.
 *
 * On `{type: 'finish', expected: number[], waitMs}` (the indices the publisher got an ok for) it waits
 * until every subscriber has all of them or `waitMs` passes, writes its latency samples (Float64Array,
 * ms) to `samplesFile` and answers `{type: 'result', ...}`; then exits.
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { io, type Socket } from 'socket.io-client';
import { WebSocket } from '../ws.ts';

export interface SubConfig {
  mode: 'tether' | 'socketio';
  urls: string[];
  room: string;
  /** Global index of this process's first subscriber. */
  first: number;
  count: number;
  /** Upper bound of message indices (the publisher's planned count). */
  maxMessages: number;
  samplesFile: string;
  /** Exit by itself after this long whatever happens. */
  hardLimitS: number;
}

export interface SubResult {
  subscribers: number;
  /** Subscribers that failed to connect or join. */
  joinFailures: number;
  /** Connections closed during the run. */
  dropped: number;
  /** Distinct (subscriber, expected index) pairs received. */
  delivered: number;
  /** Subscribers × expected messages. */
  expected: number;
  lost: number;
  duplicates: number;
  /** A message arriving after a higher index on the same subscriber. */
  outOfOrder: number;
  /** Messages whose index the publisher did not report as ok (measured range only). */
  unexpected: number;
  warmupDeliveries: number;
  /** Frames that were neither the join reply nor a chat.message. */
  otherFrames: number;
  /** Subscribers with at least one loss. */
  subscribersWithLoss: number;
  samples: number;
  joinMs: number;
  /** Per message index: the earliest and the latest delivery latency seen in this process, ms (-1: none). */
  minByIndex: number[];
  maxByIndex: number[];
  firstError?: string;
}

export type SubMessage = { type: 'ready'; joined: number; joinMs: number } | { type: 'result'; result: SubResult };
export type SubCommand = { type: 'finish'; expected: number[]; waitMs: number };

/** Growable Float64Array of latency samples (ms), written raw to a file at the end. */
class Collector {
  private data: Float64Array;
  count = 0;
  constructor(capacity: number) {
    this.data = new Float64Array(capacity);
  }
  add(x: number): void {
    if (this.count === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.count++] = x;
  }
  raw(): Uint8Array {
    return new Uint8Array(this.data.buffer, 0, this.count * 8);
  }
}

const now = () => performance.timeOrigin + performance.now();
const OPEN_CONCURRENCY = 50;
const JOIN_TIMEOUT_MS = 15_000;

interface Sub {
  got: Uint8Array;
  last: number;
  gotCount: number;
  closeIt(): void;
}

export async function runSubscribers(cfg: SubConfig, send: (m: SubMessage) => void, commands: AsyncIterator<SubCommand>): Promise<SubResult> {
  const samples = new Collector(1 << 20);
  const subs: Sub[] = [];
  let duplicates = 0;
  let outOfOrder = 0;
  let unexpectedRaw = 0;
  let warmupDeliveries = 0;
  let otherFrames = 0;
  let dropped = 0;
  let joinFailures = 0;
  let firstError: string | undefined;
  let finishing = false;
  let measuredDeliveries = 0;
  const minByIndex = new Float64Array(cfg.maxMessages).fill(-1);
  const maxByIndex = new Float64Array(cfg.maxMessages).fill(-1);

  const onChat = (s: Sub, text: unknown, at: number) => {
    if (typeof text !== 'string') {
      otherFrames++;
      return;
    }
    const sp = text.indexOf(' ');
    const index = Number(text.slice(0, sp));
    const ts = Number(text.slice(sp + 1));
    if (index < 0) {
      warmupDeliveries++;
      return;
    }
    if (!(index < cfg.maxMessages)) {
      unexpectedRaw++;
      return;
    }
    if (s.got[index]) {
      duplicates++;
      return;
    }
    s.got[index] = 1;
    s.gotCount++;
    measuredDeliveries++;
    if (index < s.last) outOfOrder++;
    else s.last = index;
    const lat = at - ts;
    samples.add(lat);
    if (minByIndex[index]! < 0 || lat < minByIndex[index]!) minByIndex[index] = lat;
    if (lat > maxByIndex[index]!) maxByIndex[index] = lat;
  };

  const openTether = (url: string): Promise<Sub> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      const s: Sub = { got: new Uint8Array(cfg.maxMessages), last: -1, gotCount: 0, closeIt: () => ws.close(1000, 'bench done') };
      let state: 'hello' | 'join' | 'live' = 'hello';
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`no join within ${JOIN_TIMEOUT_MS} ms`));
      }, JOIN_TIMEOUT_MS);
      ws.once('open', () => ws.send('{"t":"hello"}'));
      ws.on('error', (err) => {
        if (state !== 'live') {
          clearTimeout(timer);
          reject(err);
        }
      });
      ws.on('close', (code, reason) => {
        if (state !== 'live') {
          clearTimeout(timer);
          reject(new Error(`closed ${code} ${reason.toString()} before joining`));
        } else if (!finishing) {
          dropped++;
          firstError ??= `subscriber closed ${code} ${reason.toString()} during the run`;
        }
      });
      ws.on('message', (data) => {
        const at = now();
        const f = JSON.parse((data as Buffer).toString()) as { t?: string; route?: string; ok?: boolean; data?: { text?: unknown }; error?: unknown };
        if (state === 'live') {
          if (f.t === 'msg' && f.route === 'chat.message') onChat(s, f.data?.text, at);
          else {
            otherFrames++;
            firstError ??= `unexpected frame ${JSON.stringify(f).slice(0, 200)}`;
          }
        } else if (state === 'hello' && f.t === 'welcome') {
          state = 'join';
          ws.send(JSON.stringify({ t: 'req', id: 'join', route: 'chat.join', data: { room: cfg.room } }));
        } else if (state === 'join' && f.t === 'res') {
          clearTimeout(timer);
          if (f.ok !== true) {
            ws.terminate();
            reject(new Error(`join failed: ${JSON.stringify(f.error)}`));
          } else {
            state = 'live';
            resolve(s);
          }
        } else {
          clearTimeout(timer);
          ws.terminate();
          reject(new Error(`unexpected frame while joining: ${JSON.stringify(f).slice(0, 200)}`));
        }
      });
    });

  const openSocketIO = (url: string): Promise<Sub> =>
    new Promise((resolve, reject) => {
      const sock: Socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: JOIN_TIMEOUT_MS });
      const s: Sub = { got: new Uint8Array(cfg.maxMessages), last: -1, gotCount: 0, closeIt: () => sock.disconnect() };
      let live = false;
      const timer = setTimeout(() => {
        sock.disconnect();
        reject(new Error(`no join within ${JOIN_TIMEOUT_MS} ms`));
      }, JOIN_TIMEOUT_MS);
      sock.on('chat.message', (m: { text?: unknown }) => onChat(s, m?.text, now()));
      sock.once('connect', () =>
        sock.emit('join', cfg.room, () => {
          clearTimeout(timer);
          live = true;
          resolve(s);
        }),
      );
      sock.once('connect_error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      sock.on('disconnect', (reason) => {
        if (live && !finishing) {
          dropped++;
          firstError ??= `subscriber disconnected during the run: ${reason}`;
        }
      });
    });

  // Connect and join, OPEN_CONCURRENCY at a time.
  const t0 = performance.now();
  let nextK = 0;
  const worker = async () => {
    while (nextK < cfg.count) {
      const k = nextK++;
      const url = cfg.urls[(cfg.first + k) % cfg.urls.length]!;
      try {
        subs.push(await (cfg.mode === 'tether' ? openTether(url) : openSocketIO(url)));
      } catch (err) {
        joinFailures++;
        firstError ??= `join: ${(err as Error).message}`;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, cfg.count) }, worker));
  const joinMs = Math.round(performance.now() - t0);
  send({ type: 'ready', joined: subs.length, joinMs });

  const cmd = await commands.next();
  if (cmd.done) throw new Error('the orchestrator went away');
  const { expected, waitMs } = cmd.value;
  const isExpected = new Uint8Array(cfg.maxMessages);
  for (const i of expected) if (i >= 0 && i < cfg.maxMessages) isExpected[i] = 1;
  // Wait for stragglers: until every subscriber holds every expected message, or waitMs.
  const want = expected.length * subs.length;
  const deadline = performance.now() + waitMs;
  while (measuredDeliveries < want && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  finishing = true;

  let delivered = 0;
  let unexpected = unexpectedRaw;
  let subscribersWithLoss = 0;
  for (const s of subs) {
    let mine = 0;
    for (let i = 0; i < cfg.maxMessages; i++) {
      if (!s.got[i]) continue;
      if (isExpected[i]) mine++;
      else unexpected++;
    }
    delivered += mine;
    if (mine < expected.length) subscribersWithLoss++;
  }
  for (const s of subs) s.closeIt();
  const expectedTotal = expected.length * cfg.count; // subscribers that never joined lose everything
  const result: SubResult = {
    subscribers: cfg.count,
    joinFailures,
    dropped,
    delivered,
    expected: expectedTotal,
    lost: expectedTotal - delivered,
    duplicates,
    outOfOrder,
    unexpected,
    warmupDeliveries,
    otherFrames,
    subscribersWithLoss: subscribersWithLoss + joinFailures,
    samples: samples.count,
    joinMs,
    minByIndex: Array.from(minByIndex, (x) => Math.round(x * 1000) / 1000),
    maxByIndex: Array.from(maxByIndex, (x) => Math.round(x * 1000) / 1000),
  };
  if (firstError !== undefined) result.firstError = firstError;
  writeFileSync(cfg.samplesFile, samples.raw());
  return result;
}

if (process.argv[1]?.endsWith('fanout-sub.ts')) {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as SubConfig;
  setTimeout(() => {
    process.stderr.write('fanout-sub: hard time limit reached\n');
    process.exit(3);
  }, cfg.hardLimitS * 1000).unref();
  process.on('disconnect', () => process.exit(4));
  const queue: SubCommand[] = [];
  let wake: (() => void) | undefined;
  process.on('message', (m: SubCommand) => {
    queue.push(m);
    wake?.();
  });
  const commands: AsyncIterator<SubCommand> = {
    async next() {
      while (queue.length === 0) await new Promise<void>((r) => (wake = r));
      return { done: false, value: queue.shift()! };
    },
  };
  const sendMsg = (m: SubMessage, done?: () => void) => process.send!(m, undefined, {}, () => done?.());
  runSubscribers(cfg, sendMsg, commands).then(
    (result) => sendMsg({ type: 'result', result }, () => setTimeout(() => process.exit(0), 200)),
    (err) => {
      process.stderr.write(`fanout-sub: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
