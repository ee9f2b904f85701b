/**
 * `npm run bench:fanout`: cross-instance room fan-out. Two Tether instances on one Redis, 1000
 * subscribers split evenly over them, all joined to one room; one publisher (connected to the first
 * instance) sends `chat.send` at 50 messages/s for 10 s, i.e. 50,000 deliveries/s. Same shape for
 * Socket.IO 4.8 + @socket.io/redis-adapter: two servers (load/socketio/server.ts), subscribers join
 * with a `join` event, the publisher's `publish` event makes its server `io.to(room).emit(...)`.
 *
 * Measured per target: delivered/expected (expected = subscribers × publishes that were answered ok),
 * losses, duplicates and reorderings (per subscriber, by message index), end-to-end latency
 * (publisher's send time in the text → subscriber's receive time; one host, one clock) p50/p95/p99.
 * Target (Tether): zero loss, no duplicates, p99 <= 20 ms.
 *
 * Processes: this orchestrator, redis-server, the servers, `--sub-procs` subscriber processes
 * (load/lib/fanout-sub.ts) and one publisher process (load/lib/fanout-pub.ts). Every child is
 * stopped by PID. stdout: JSON lines. Exit 0 (also when missed), 1 missed with --gate, 2 crash.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PubConfig, PubMessage, PubResult } from './lib/fanout-pub.ts';
import type { SubCommand, SubConfig, SubMessage, SubResult } from './lib/fanout-sub.ts';
import {
  CpuWindow,
  emit,
  installGuards,
  isAlive,
  log,
  makeTempDir,
  median,
  NOISY_OTHER_CPU_PCT,
  numFlag,
  parseFlags,
  removeTempDir,
  type Persistence,
  runMain,
  type ServerProc,
  spawnNode,
  startRedis,
  startSocketIO,
  startTether,
  stopChild,
  unlessNoisy,
  waitQuiet,
} from './lib/procs.ts';
import { round, Samples } from './samples.ts';

const P99_TARGET_MS = 20;

const USAGE = `usage: npm run bench:fanout -- [--subscribers N] [--instances I] [--rate MSG_PER_S] [--duration S] [--warmup S]
                               [--sub-procs P] [--persistence none[,everysec]] [--only tether|socketio]
                               [--rounds R] [--wait S] [--quiet-wait S] [--retries N] [--cpu-prof DIR] [--gate]
env: FANOUT_SUBSCRIBERS (1000), FANOUT_INSTANCES (2), FANOUT_RATE (50), BENCH_DURATION_S (10), BENCH_WARMUP_S (2),
     FANOUT_SUB_PROCS (2), BENCH_ROUNDS (1), BENCH_QUIET_WAIT_S (15), BENCH_RETRIES (2), FANOUT_WAIT_S (5)`;

const flags = parseFlags(
  process.argv.slice(2),
  ['subscribers', 'instances', 'rate', 'duration', 'warmup', 'sub-procs', 'persistence', 'only', 'rounds', 'wait', 'quiet-wait', 'retries', 'cpu-prof'],
  ['gate'],
  USAGE,
);
const opts = {
  subscribers: numFlag(flags, 'subscribers', 'FANOUT_SUBSCRIBERS', 1000, 1),
  instances: numFlag(flags, 'instances', 'FANOUT_INSTANCES', 2, 1),
  rate: numFlag(flags, 'rate', 'FANOUT_RATE', 50, 0.1, false),
  durationS: numFlag(flags, 'duration', 'BENCH_DURATION_S', 10, 0.5, false),
  warmupS: numFlag(flags, 'warmup', 'BENCH_WARMUP_S', 2, 0, false),
  subProcs: numFlag(flags, 'sub-procs', 'FANOUT_SUB_PROCS', 2, 1),
  rounds: numFlag(flags, 'rounds', 'BENCH_ROUNDS', 1, 1),
  waitS: numFlag(flags, 'wait', 'FANOUT_WAIT_S', 5, 0, false),
  quietWaitS: numFlag(flags, 'quiet-wait', 'BENCH_QUIET_WAIT_S', 15, 0, false),
  retries: numFlag(flags, 'retries', 'BENCH_RETRIES', 2, 0),
  gate: flags.get('gate') === true,
  cpuProf: typeof flags.get('cpu-prof') === 'string' ? (flags.get('cpu-prof') as string) : undefined,
};
const persistences = String(flags.get('persistence') ?? 'none').split(',') as Persistence[];
for (const p of persistences) if (p !== 'none' && p !== 'everysec') throw new Error(`--persistence: expected none and/or everysec, got "${p}"`);
const only = flags.get('only');
if (only !== undefined && only !== 'tether' && only !== 'socketio') throw new Error(`--only: expected tether or socketio, got "${String(only)}"`);
const targets = (['tether', 'socketio'] as const).filter((t) => only === undefined || only === t);
type Target = (typeof targets)[number];

const PER_RUN_S = opts.warmupS + opts.durationS + opts.waitS + 90;
installGuards('bench-fanout', persistences.length * opts.rounds * targets.length * (1 + opts.retries) * (PER_RUN_S + Math.max(opts.quietWaitS, 30)));

interface Row {
  bench: 'fanout';
  target: Target;
  redis: string;
  instances: number;
  subscribers: number;
  rate: number;
  durationS: number;
  published: number;
  publishedOk: number;
  expected: number;
  delivered: number;
  deliveredRatio: number;
  lost: number;
  duplicates: number;
  outOfOrder: number;
  unexpected: number;
  subscribersWithLoss: number;
  joinFailures: number;
  dropped: number;
  deliveriesPerS: number;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  p999Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
  /** Per published message: latency of its first delivery (publish → Redis → first subscriber). */
  firstDeliveryP50Ms: number | null;
  firstDeliveryP99Ms: number | null;
  /** Per published message: last delivery − first delivery (the fan-out's own spread). */
  spreadP50Ms: number | null;
  spreadP99Ms: number | null;
  /** Published messages whose slowest delivery took more than the p99 target. */
  slowMessages: number;
  publishAckP50Ms: number | null;
  publishAckP99Ms: number | null;
  publishErrors: number;
  maxScheduleLagMs: number;
  joinS: number;
  /** % of one core over the measured window. */
  cpu: Record<string, number | null>;
  round?: number;
  firstError?: string;
}

function subConfigs(mode: Target, urls: string[], dir: string): SubConfig[] {
  const out: SubConfig[] = [];
  let first = 0;
  for (let p = 0; p < opts.subProcs; p++) {
    const count = Math.floor(opts.subscribers / opts.subProcs) + (p < opts.subscribers % opts.subProcs ? 1 : 0);
    if (count === 0) continue;
    out.push({ mode, urls, room: 'bench-fanout', first, count, maxMessages: Math.round(opts.durationS * opts.rate) + 1, samplesFile: join(dir, `sub-${p}.bin`), hardLimitS: PER_RUN_S + 60 });
    first += count;
  }
  return out;
}

async function runTarget(target: Target, persistence: Persistence, roundNo: number): Promise<Row> {
  const dir = makeTempDir('tether-bench-fanout-');
  const redis = await startRedis(persistence);
  const servers: ServerProc[] = [];
  const clients: ChildProcess[] = [];
  try {
    for (let i = 0; i < opts.instances; i++) {
      const prof = opts.cpuProf ? { cpuProf: opts.cpuProf } : {};
      servers.push(
        target === 'tether'
          ? await startTether({ redisUrl: redis.url, instanceId: `fanout-${i + 1}`, ...prof })
          : await startSocketIO({ redisUrl: redis.url, name: `socketio-${i + 1}`, ...prof }),
      );
    }
    const urls = servers.map((s) => s.url);
    log(`bench-fanout: ${target} x${opts.instances} on redis ${redis.flags}: ${opts.subscribers} subscribers joining`);

    // Subscribers: connect, join, report ready.
    const subs = subConfigs(target, urls, dir).map((cfg) => {
      const child = spawnNode(['load/lib/fanout-sub.ts', JSON.stringify(cfg)], { ipc: true });
      clients.push(child);
      const ready = new Promise<{ joined: number; joinMs: number }>((resolve, reject) => {
        child.on('message', (m: SubMessage) => {
          if (m.type === 'ready') resolve(m);
        });
        child.once('exit', (code, signal) => reject(new Error(`subscriber process exited (${code ?? signal}) before it was ready`)));
      });
      const result = new Promise<SubResult>((resolve, reject) => {
        child.on('message', (m: SubMessage) => {
          if (m.type === 'result') resolve(m.result);
        });
        child.once('exit', (code, signal) => reject(new Error(`subscriber process exited (${code ?? signal}) without a result`)));
      });
      result.catch(() => {}); // observed below
      return { cfg, child, ready, result };
    });
    const readies = await Promise.all(subs.map((s) => s.ready));
    const joined = readies.reduce((n, r) => n + r.joined, 0);
    const joinS = Math.max(...readies.map((r) => r.joinMs)) / 1000;
    log(`bench-fanout: ${target}: ${joined}/${opts.subscribers} joined in ${joinS} s; publishing ${opts.rate}/s for ${opts.warmupS} s warm-up + ${opts.durationS} s`);

    // Publisher on the first instance.
    const pubCfg: PubConfig = { mode: target, url: urls[0]!, room: 'bench-fanout', rate: opts.rate, warmupS: opts.warmupS, durationS: opts.durationS, hardLimitS: PER_RUN_S + 30 };
    const pub = spawnNode(['load/lib/fanout-pub.ts', JSON.stringify(pubCfg)], { ipc: true });
    clients.push(pub);
    const cpu = new CpuWindow({
      servers: servers.map((s) => s.child),
      redis: redis.child,
      subscribers: subs.map((s) => s.child),
      publisher: pub,
    });
    let pubResult: PubResult | undefined;
    pub.on('message', (m: PubMessage) => {
      if (m.type === 'measure-start') cpu.start();
      else if (m.type === 'measure-end') cpu.stop();
      else if (m.type === 'result') pubResult = m.result;
    });
    const [code, signal] = (await once(pub, 'exit')) as [number | null, NodeJS.Signals | null];
    if (!pubResult) throw new Error(`publisher exited (${code ?? signal}) without a result`);

    const finish: SubCommand = { type: 'finish', expected: pubResult.okIndices, waitMs: opts.waitS * 1000 };
    for (const s of subs) s.child.send(finish);
    const results = await Promise.all(subs.map((s) => s.result));
    for (const s of servers) if (!isAlive(s.child)) throw new Error(`${s.name} died during the run:\n${s.output()}`);

    const samples = new Samples(1 << 20);
    for (const s of subs) {
      const buf = readFileSync(s.cfg.samplesFile);
      const f = new Float64Array(buf.buffer, buf.byteOffset, buf.byteLength / 8);
      for (let i = 0; i < f.length; i++) samples.add(f[i]!);
    }
    const lat = samples.summary();
    // Per message: first and last delivery over all subscriber processes.
    const first = new Samples(1 << 10);
    const spread = new Samples(1 << 10);
    let slowMessages = 0;
    for (let i = 0; i < subs[0]!.cfg.maxMessages; i++) {
      const mins = results.map((r) => r.minByIndex[i] ?? -1).filter((x) => x >= 0);
      const maxs = results.map((r) => r.maxByIndex[i] ?? -1).filter((x) => x >= 0);
      if (mins.length === 0) continue;
      const lo = Math.min(...mins);
      const hi = Math.max(...maxs);
      first.add(lo);
      spread.add(hi - lo);
      if (hi > P99_TARGET_MS) slowMessages++;
    }
    const firstSum = first.summary();
    const spreadSum = spread.summary();
    const sum = (pick: (r: SubResult) => number) => results.reduce((n, r) => n + pick(r), 0);
    const expected = sum((r) => r.expected);
    const delivered = sum((r) => r.delivered);
    const firstError = pubResult.firstError ?? results.find((r) => r.firstError)?.firstError;
    const row: Row = {
      bench: 'fanout',
      target,
      redis: redis.flags,
      instances: opts.instances,
      subscribers: opts.subscribers,
      rate: opts.rate,
      durationS: opts.durationS,
      published: pubResult.sent,
      publishedOk: pubResult.okIndices.length,
      expected,
      delivered,
      deliveredRatio: expected === 0 ? 0 : round(delivered / expected, 6),
      lost: sum((r) => r.lost),
      duplicates: sum((r) => r.duplicates),
      outOfOrder: sum((r) => r.outOfOrder),
      unexpected: sum((r) => r.unexpected),
      subscribersWithLoss: sum((r) => r.subscribersWithLoss),
      joinFailures: sum((r) => r.joinFailures),
      dropped: sum((r) => r.dropped),
      deliveriesPerS: Math.round(delivered / opts.durationS),
      ...lat,
      firstDeliveryP50Ms: firstSum.p50Ms,
      firstDeliveryP99Ms: firstSum.p99Ms,
      spreadP50Ms: spreadSum.p50Ms,
      spreadP99Ms: spreadSum.p99Ms,
      slowMessages,
      publishAckP50Ms: pubResult.ackLatency.p50Ms,
      publishAckP99Ms: pubResult.ackLatency.p99Ms,
      publishErrors: pubResult.errors + pubResult.unanswered,
      maxScheduleLagMs: pubResult.maxScheduleLagMs,
      joinS,
      cpu: cpu.result(),
    };
    if (opts.rounds > 1) row.round = roundNo;
    if (firstError !== undefined) row.firstError = firstError;
    return row;
  } finally {
    await Promise.all(clients.map((c) => stopChild(c, 2000)));
    await Promise.all(servers.map((s) => stopChild(s.child)));
    await redis.stop();
    removeTempDir(dir);
  }
}

function passes(r: Row): boolean {
  return r.lost === 0 && r.duplicates === 0 && r.joinFailures === 0 && r.publishErrors === 0 && r.publishedOk === r.published && r.p99Ms !== null && r.p99Ms <= P99_TARGET_MS;
}

async function main(): Promise<number> {
  let pass = true;
  for (const persistence of persistences) {
    const runs: Record<Target, Row[]> = { tether: [], socketio: [] };
    let redisFlags = '';
    for (let r = 1; r <= opts.rounds; r++) {
      const order = r % 2 === 1 ? targets : [...targets].reverse();
      for (const target of order) {
        await waitQuiet(opts.quietWaitS);
        const row = await unlessNoisy(() => runTarget(target, persistence, r), (x) => (x.cpu.other ?? 0) > NOISY_OTHER_CPU_PCT, opts.retries, opts.quietWaitS);
        redisFlags = row.redis;
        runs[target].push(row);
        emit(row);
      }
    }
    const combine = (rs: Row[]) => {
      if (rs.length === 0) return null;
      const med = (pick: (x: Row) => number | null) => {
        const xs = rs.map(pick).filter((x): x is number => x !== null);
        return xs.length === 0 ? null : round(median(xs));
      };
      return {
        deliveredRatio: Math.min(...rs.map((x) => x.deliveredRatio)),
        lost: rs.reduce((n, x) => n + x.lost, 0),
        duplicates: rs.reduce((n, x) => n + x.duplicates, 0),
        p50Ms: med((x) => x.p50Ms),
        p99Ms: med((x) => x.p99Ms),
        worstP99Ms: Math.max(...rs.map((x) => x.p99Ms ?? Infinity)),
      };
    };
    const tetherPass = runs.tether.length > 0 ? runs.tether.every(passes) : null;
    if (tetherPass === false) pass = false;
    const v = {
      bench: 'fanout',
      redis: redisFlags,
      instances: opts.instances,
      subscribers: opts.subscribers,
      rate: opts.rate,
      durationS: opts.durationS,
      rounds: opts.rounds,
      tether: combine(runs.tether),
      socketio: combine(runs.socketio),
      target: { lost: 0, duplicates: 0, p99MsAtMost: P99_TARGET_MS },
      pass: tetherPass,
      noisy: [...runs.tether, ...runs.socketio].some((x) => (x.cpu.other ?? 0) > NOISY_OTHER_CPU_PCT),
    };
    emit(v);
  }
  return opts.gate && !pass ? 1 : 0;
}

runMain('bench-fanout', main);
