/**
 * The Socket.IO side of bench-redis-echo: load/loadgen.ts's closed loop, spoken in Socket.IO.
 *
 * Opens `conns` socket.io-client connections (`transports: ['websocket']`, one engine per client:
 * `forceNew`, no reconnection), then each keeps `inflight` `emit('echo', {msg}, ack)` in flight: every
 * ack immediately triggers the next emit. Warm-up, measured window, latency (emit → ack,
 * `performance.now()`, every sample), IPC messages and the result have exactly the shape of
 * loadgen.ts (`LoadConfig`, `LoadMessage`, `LoadResult`; here `url` is the Socket.IO base URL and
 * `mode` is only echoed back), so the orchestrator drives both generators the same way.
 *
 * Bounded: exits by itself within warmup + duration + 20 s.
 */
import { performance } from 'node:perf_hooks';
import { io, type Socket } from 'socket.io-client';
import type { LoadConfig, LoadMessage, LoadResult } from '../loadgen.ts';
import { round, Samples } from '../samples.ts';

const CONNECT_TIMEOUT_MS = 10_000;
const DRAIN_WAIT_MS = 2_000;

export async function runSocketIOLoad(config: LoadConfig, report: (m: LoadMessage) => void): Promise<LoadResult> {
  const { url, conns, inflight } = config;
  const data = { msg: 'x'.repeat(config.payloadBytes) };
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

  const send = (s: Socket) => {
    const sentAt = performance.now();
    outstanding++;
    s.emit('echo', data, (reply: { msg?: unknown } | undefined) => {
      const now = performance.now();
      outstanding--;
      if (reply?.msg !== data.msg) fail(`unexpected ack ${JSON.stringify(reply).slice(0, 200)}`);
      else if (measuring) samples.add(now - sentAt);
      if (!stopping) send(s);
      else if (outstanding === 0) onDrained?.();
    });
  };

  const open = (): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: CONNECT_TIMEOUT_MS });
      let ready = false;
      s.once('connect', () => {
        ready = true;
        resolve(s);
      });
      s.once('connect_error', (err) => {
        if (!ready) reject(err);
      });
      s.on('disconnect', (reason) => {
        if (ready && !stopping) {
          connFailures++;
          firstError ??= `disconnected during the run: ${reason}`;
        }
      });
    });

  const opened = await Promise.allSettled(Array.from({ length: conns }, open));
  const live: Socket[] = [];
  for (const o of opened) {
    if (o.status === 'fulfilled') live.push(o.value);
    else {
      connFailures++;
      firstError ??= `connect: ${(o.reason as Error).message}`;
    }
  }

  for (const s of live) for (let i = 0; i < inflight; i++) send(s);
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
  for (const s of live) s.disconnect();

  const windowS = (t1 - t0) / 1000;
  const result: LoadResult = {
    mode: config.mode,
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

if (process.argv[1]?.endsWith('echo-gen.ts')) {
  const config = JSON.parse(process.argv[2] ?? '{}') as LoadConfig;
  const report = (m: LoadMessage, done?: () => void) => {
    if (process.send) process.send(m, undefined, {}, () => done?.());
    else {
      if (m.type === 'result') process.stdout.write(`${JSON.stringify(m.result)}\n`);
      done?.();
    }
  };
  setTimeout(() => {
    process.stderr.write('socketio echo-gen: hard time limit reached\n');
    process.exit(3);
  }, (config.warmupS + config.durationS + 20) * 1000).unref();
  process.on('disconnect', () => process.exit(4));
  runSocketIOLoad(config, report).then(
    (result) => report({ type: 'result', result }, () => process.exit(0)),
    (err) => {
      process.stderr.write(`socketio echo-gen: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
