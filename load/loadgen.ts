/**
 * The load generator of `npm run bench`, run as its own child process so it gets its own core.
 *
 * Opens `conns` WebSockets to `url`, sends `{"t":"hello"}` on each and waits for the first frame back
 * (Tether's `welcome`, or the bare echo server's copy of the hello). Then each connection keeps
 * `inflight` `req` frames for route `echo` in flight: every reply is matched by `id` and immediately
 * replaced by a new request (closed loop). Replies that arrive during the first `warmupS` seconds are
 * not counted; for the next `durationS` seconds every reply's latency (send to receive, `performance.now`)
 * is recorded. Then it stops sending, waits briefly for the last replies, closes, and reports.
 *
 * Config: one JSON argument (see `LoadConfig`). Reports over IPC when started with an IPC channel
 * (`measure-start`, `measure-end`, then `result`), else prints the result as one JSON line on stdout.
 * Bounded: exits by itself within warmup + duration + 20 s whatever the server does.
 */
import { performance } from 'node:perf_hooks';
import { WebSocket } from './ws.ts';
import { round, Samples, type LatencySummary } from './samples.ts';

export interface LoadConfig {
  url: string;
  /** `tether` expects `res` frames with `ok: true`; `bare` expects its own `req` frames echoed back. */
  mode: 'tether' | 'bare';
  conns: number;
  inflight: number;
  warmupS: number;
  durationS: number;
  /** Length of the string sent as `data.msg`. */
  payloadBytes: number;
}

export interface LoadResult {
  mode: LoadConfig['mode'];
  conns: number;
  inflight: number;
  warmupS: number;
  durationS: number;
  /** Length of the measured window, seconds (the timers' real firing times). */
  windowS: number;
  requests: number;
  rps: number;
  latency: LatencySummary;
  /** Replies that were not a success (`ok` not true, `error` frames, unexpected frames). */
  errors: number;
  /** Connections that failed to open or closed before the end. */
  connFailures: number;
  /** Requests still unanswered when the generator gave up at the end. */
  unanswered: number;
  /** CPU time of this process over the window, % of one core. */
  genCpuPct: number;
  firstError?: string;
}

export type LoadMessage =
  | { type: 'measure-start' }
  | { type: 'measure-end' }
  | { type: 'result'; result: LoadResult };

const CONNECT_TIMEOUT_MS = 10_000;
const DRAIN_WAIT_MS = 2_000;

export async function runLoad(config: LoadConfig, report: (m: LoadMessage) => void): Promise<LoadResult> {
  const { url, mode, conns, inflight } = config;
  const dataJson = JSON.stringify({ msg: 'x'.repeat(config.payloadBytes) });
  const frameHead = '{"t":"req","id":"';
  const frameTail = `","route":"echo","data":${dataJson}}`;
  const replyType = mode === 'tether' ? 'res' : 'req';

  const samples = new Samples();
  let measuring = false;
  let stopping = false;
  let errors = 0;
  let connFailures = 0;
  let firstError: string | undefined;
  let outstanding = 0;
  let onDrained: (() => void) | undefined;

  const fail = (what: string) => {
    errors++;
    firstError ??= what;
  };

  interface Conn {
    ws: WebSocket;
    next: number;
    pending: Map<string, number>;
  }

  const send = (c: Conn) => {
    const id = (c.next++).toString(36);
    c.pending.set(id, performance.now());
    outstanding++;
    c.ws.send(frameHead + id + frameTail);
  };

  const open = (): Promise<Conn> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      const c: Conn = { ws, next: 0, pending: new Map() };
      let ready = false;
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`no handshake within ${CONNECT_TIMEOUT_MS} ms`));
      }, CONNECT_TIMEOUT_MS);
      ws.once('open', () => ws.send('{"t":"hello"}'));
      ws.on('error', (err) => {
        if (!ready) {
          clearTimeout(timer);
          reject(err);
        } else fail(`socket error: ${err.message}`);
      });
      ws.on('close', (code, reason) => {
        if (!ready) {
          clearTimeout(timer);
          reject(new Error(`closed ${code} ${reason.toString()} before the handshake`));
          return;
        }
        if (!stopping) {
          connFailures++;
          firstError ??= `connection closed ${code} ${reason.toString()} during the run`;
        }
        outstanding -= c.pending.size;
        c.pending.clear();
        if (stopping && outstanding === 0) onDrained?.();
      });
      ws.on('message', (data, isBinary) => {
        const frame = JSON.parse(isBinary ? '{}' : (data as Buffer).toString()) as { t?: string; id?: unknown; ok?: unknown; error?: unknown };
        if (!ready) {
          if (frame.t === 'welcome' || frame.t === 'hello') {
            ready = true;
            clearTimeout(timer);
            resolve(c);
          } else {
            clearTimeout(timer);
            ws.terminate();
            reject(new Error(`expected a welcome, got ${JSON.stringify(frame)}`));
          }
          return;
        }
        const now = performance.now();
        if (frame.t !== replyType || typeof frame.id !== 'string') {
          fail(`unexpected frame ${JSON.stringify(frame).slice(0, 200)}`);
          return;
        }
        const sentAt = c.pending.get(frame.id);
        if (sentAt === undefined) {
          fail(`reply to unknown id ${frame.id}`);
          return;
        }
        c.pending.delete(frame.id);
        outstanding--;
        if (mode === 'tether' && frame.ok !== true) fail(`not ok: ${JSON.stringify(frame.error)}`);
        else if (measuring) samples.add(now - sentAt);
        if (!stopping) send(c);
        else if (outstanding === 0) onDrained?.();
      });
    });

  const opened = await Promise.allSettled(Array.from({ length: conns }, open));
  const live: Conn[] = [];
  for (const o of opened) {
    if (o.status === 'fulfilled') live.push(o.value);
    else {
      connFailures++;
      firstError ??= `connect: ${(o.reason as Error).message}`;
    }
  }

  // Closed loop from here: warm-up, then the measured window.
  for (const c of live) for (let i = 0; i < inflight; i++) send(c);
  await sleep(config.warmupS * 1000);
  measuring = true;
  report({ type: 'measure-start' });
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await sleep(config.durationS * 1000);
  measuring = false;
  const t1 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  report({ type: 'measure-end' });

  stopping = true;
  if (outstanding > 0) {
    await new Promise<void>((resolve) => {
      onDrained = resolve;
      setTimeout(resolve, DRAIN_WAIT_MS);
    });
  }
  const unanswered = outstanding;
  await Promise.all(
    live.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.ws.readyState === WebSocket.CLOSED) return resolve();
          c.ws.once('close', () => resolve());
          c.ws.close(1000, 'bench done');
          setTimeout(() => {
            c.ws.terminate();
            resolve();
          }, 1000).unref();
        }),
    ),
  );

  const windowS = (t1 - t0) / 1000;
  const result: LoadResult = {
    mode,
    conns,
    inflight,
    warmupS: config.warmupS,
    durationS: config.durationS,
    windowS: round(windowS),
    requests: samples.count,
    rps: Math.round(samples.count / windowS),
    latency: samples.summary(),
    errors,
    connFailures,
    unanswered,
    genCpuPct: Math.round(((cpu.user + cpu.system) / 1000 / (t1 - t0)) * 100),
  };
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Entry point when run as a process.
if (process.argv[1]?.endsWith('loadgen.ts')) {
  const config = JSON.parse(process.argv[2] ?? '{}') as LoadConfig;
  const onDisconnect = () => process.exit(4); // the orchestrator went away
  const report = (m: LoadMessage, done?: () => void) => {
    if (process.send) process.send(m, undefined, {}, () => done?.());
    else {
      if (m.type === 'result') process.stdout.write(`${JSON.stringify(m.result)}\n`);
      done?.();
    }
  };
  const hardStop = setTimeout(() => {
    process.stderr.write('loadgen: hard time limit reached\n');
    process.exit(3);
  }, (config.warmupS + config.durationS + 20) * 1000);
  hardStop.unref();
  process.on('disconnect', onDisconnect);
  runLoad(config, report).then(
    (result) => report({ type: 'result', result }, () => {
      process.off('disconnect', onDisconnect);
      process.exit(0);
    }),
    (err) => {
      process.stderr.write(`loadgen: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
