/**
 * `npm run bench:limiter`: what the rate limiter costs when it admits everything. The echo benchmark
 * (load/loadgen.ts: 50 connections x 4 in flight, route `echo`) against ONE Tether instance, on the
 * embedded store (no REDIS_URL) and on Redis (a fresh redis-server per measurement, `--save ''
 * --appendonly no`), each with
 *   off: RL_USER_RATE=0 RL_IP_RATE=0 RL_CONN_RATE=0 (no route override)
 *   on:  every scope on with limits nobody reaches: RL_USER_*, RL_IP_*, RL_CONN_* = 1000000/1000000,
 *        RL_ROUTE_ECHO=1000000:1000000
 * in ABBA order over `--rounds` (default 2: off, on, on, off), so drift on a shared host cancels out.
 * cost = 1 − on/off of the median requests/s; target: cost < 15% on each store. Any `rate_limited`
 * reply counts as an error (everything must be admitted). Also reported: `cpuCost` = server CPU µs per
 * request on/off − 1 (steadier than requests/s on a busy machine; informational).
 *
 * stdout: JSON lines. Exit 0 (also when missed), 1 missed with --gate, 2 crash.
 */
import type { EchoParams, EchoRow } from './lib/echo-run.ts';
import { measureEcho } from './lib/echo-run.ts';
import { emit, installGuards, log, median, NOISY_OTHER_CPU_PCT, numFlag, parseFlags, type RedisProc, runMain, startRedis, startTether, stopChild, unlessNoisy, waitQuiet } from './lib/procs.ts';
import { round } from './samples.ts';

const TARGET_COST = 0.15;
const HIGH = '1000000';
const LIMITS_ON: Record<string, string> = {
  RL_USER_RATE: HIGH,
  RL_USER_BURST: HIGH,
  RL_IP_RATE: HIGH,
  RL_IP_BURST: HIGH,
  RL_CONN_RATE: HIGH,
  RL_CONN_BURST: HIGH,
  RL_ROUTE_ECHO: `${HIGH}:${HIGH}`,
};

const USAGE = `usage: npm run bench:limiter -- [--conns N] [--inflight W] [--duration S] [--warmup S] [--payload BYTES]
                                [--rounds R] [--store embedded,redis] [--quiet-wait S] [--retries N] [--cpu-prof DIR] [--gate]
env: BENCH_CONNS (50), BENCH_INFLIGHT (4), BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_PAYLOAD_BYTES (16),
     LIMITER_ROUNDS (2), BENCH_QUIET_WAIT_S (15), BENCH_RETRIES (2)`;

const flags = parseFlags(process.argv.slice(2), ['conns', 'inflight', 'duration', 'warmup', 'payload', 'rounds', 'store', 'quiet-wait', 'retries', 'cpu-prof'], ['gate'], USAGE);
const params: EchoParams = {
  conns: numFlag(flags, 'conns', 'BENCH_CONNS', 50, 1),
  inflight: numFlag(flags, 'inflight', 'BENCH_INFLIGHT', 4, 1),
  durationS: numFlag(flags, 'duration', 'BENCH_DURATION_S', 10, 0.5, false),
  warmupS: numFlag(flags, 'warmup', 'BENCH_WARMUP_S', 2, 0, false),
  payloadBytes: numFlag(flags, 'payload', 'BENCH_PAYLOAD_BYTES', 16, 0),
};
const rounds = numFlag(flags, 'rounds', 'LIMITER_ROUNDS', 2, 1);
const quietWaitS = numFlag(flags, 'quiet-wait', 'BENCH_QUIET_WAIT_S', 15, 0, false);
const retries = numFlag(flags, 'retries', 'BENCH_RETRIES', 2, 0);
const gate = flags.get('gate') === true;
const cpuProf = typeof flags.get('cpu-prof') === 'string' ? (flags.get('cpu-prof') as string) : undefined;
const stores = String(flags.get('store') ?? 'embedded,redis').split(',');
for (const s of stores) if (s !== 'embedded' && s !== 'redis') throw new Error(`--store: expected embedded and/or redis, got "${s}"`);

installGuards('bench-limiter', stores.length * rounds * 2 * (1 + retries) * (params.warmupS + params.durationS + Math.max(quietWaitS, 30) + 60));

type Limiter = 'off' | 'on';
interface Row extends EchoRow {
  bench: 'limiter';
  store: string;
  limiter: Limiter;
  conns: number;
  inflight: number;
  round: number;
}

async function runOne(store: string, limiter: Limiter, roundNo: number): Promise<Row> {
  let redis: RedisProc | undefined;
  if (store === 'redis') redis = await startRedis('none');
  try {
    const storeName = redis ? `redis ${redis.flags}` : 'embedded';
    log(`bench-limiter: ${storeName}, limiter ${limiter}: ${params.conns} conns x ${params.inflight} in flight, ${params.warmupS} s warm-up + ${params.durationS} s measured`);
    const server = await startTether({
      instanceId: `bench-limiter-${process.pid}`,
      ...(redis ? { redisUrl: redis.url } : {}),
      ...(limiter === 'on' ? { env: LIMITS_ON } : {}),
      ...(cpuProf ? { cpuProf } : {}),
    });
    try {
      const r = await measureEcho('tether', server, redis, params);
      return { bench: 'limiter', store: storeName, limiter, conns: params.conns, inflight: params.inflight, round: roundNo, ...r };
    } finally {
      await stopChild(server.child);
    }
  } finally {
    await redis?.stop();
  }
}

async function main(): Promise<number> {
  let pass = true;
  const summary: { store: string; cost: number | null; pass: boolean }[] = [];
  for (const store of stores) {
    const rows: Record<Limiter, Row[]> = { off: [], on: [] };
    let storeName = store;
    for (let r = 1; r <= rounds; r++) {
      const order: Limiter[] = r % 2 === 1 ? ['off', 'on'] : ['on', 'off'];
      for (const limiter of order) {
        await waitQuiet(quietWaitS);
        const row = await unlessNoisy(() => runOne(store, limiter, r), (x) => (x.otherCpuPct ?? 0) > NOISY_OTHER_CPU_PCT, retries, quietWaitS);
        storeName = row.store;
        rows[limiter].push(row);
        emit(row);
      }
    }
    const med = (rs: Row[], pick: (x: Row) => number | null) => {
      const xs = rs.map(pick).filter((x): x is number => x !== null);
      return xs.length === 0 ? null : round(median(xs));
    };
    const offRps = med(rows.off, (x) => x.rps)!;
    const onRps = med(rows.on, (x) => x.rps)!;
    const offUs = med(rows.off, (x) => x.serverCpuUsPerReq);
    const onUs = med(rows.on, (x) => x.serverCpuUsPerReq);
    const offBackendUs = med(rows.off, (x) => x.backendCpuUsPerReq);
    const onBackendUs = med(rows.on, (x) => x.backendCpuUsPerReq);
    // Paired by round (each round runs off and on back to back), then the median over rounds.
    const ratios = rows.on.map((on, i) => on.rps / (rows.off[i]?.rps ?? NaN)).filter((x) => Number.isFinite(x));
    const cost = ratios.length > 0 ? round(1 - median(ratios)) : null;
    const errors = [...rows.off, ...rows.on].reduce((n, x) => n + x.errors + x.connFailures + x.unanswered, 0);
    const ok = cost !== null && cost < TARGET_COST && errors === 0;
    if (!ok) pass = false;
    const v = {
      bench: 'limiter',
      store: storeName,
      conns: params.conns,
      inflight: params.inflight,
      durationS: params.durationS,
      rounds,
      off: { rps: Math.round(offRps), p50Ms: med(rows.off, (x) => x.p50Ms), p99Ms: med(rows.off, (x) => x.p99Ms), serverCpuUsPerReq: offUs, backendCpuUsPerReq: offBackendUs },
      on: { rps: Math.round(onRps), p50Ms: med(rows.on, (x) => x.p50Ms), p99Ms: med(rows.on, (x) => x.p99Ms), serverCpuUsPerReq: onUs, backendCpuUsPerReq: onBackendUs },
      cost,
      cpuCost: offUs && onUs ? round(onUs / offUs - 1) : null,
      backendCpuCost: offBackendUs && onBackendUs ? round(onBackendUs / offBackendUs - 1) : null,
      errors,
      targetCost: TARGET_COST,
      pass: ok,
      noisy: [...rows.off, ...rows.on].some((x) => (x.otherCpuPct ?? 0) > NOISY_OTHER_CPU_PCT),
    };
    summary.push({ store: storeName, cost, pass: ok });
    emit(v);
  }
  emit({ bench: 'limiter', summary, pass });
  return gate && !pass ? 1 : 0;
}

runMain('bench-limiter', main);
