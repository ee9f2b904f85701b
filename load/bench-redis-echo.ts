/**
 * `npm run bench:redis`: echo through the full pipeline on Redis. One Tether instance (REDIS_URL set,
 * every RL_*_RATE=0, LOG_LEVEL=warn) against Socket.IO 4.8 + @socket.io/redis-adapter on the same kind
 * of Redis (load/socketio/server.ts: `s.on('echo', (data, ack) => ack(data))`), both driven by the same
 * closed-loop generator design in its own process (load/loadgen.ts for Tether, its Socket.IO twin
 * load/socketio/echo-gen.ts: socket.io-client, websocket transport, emit with an ack callback).
 *
 * For each Redis persistence setting (`--appendonly no`, then `--appendonly yes --appendfsync
 * everysec`; both with `--save ''`), and each round, each target gets a fresh redis-server and a fresh
 * server process. Target: requests/s ratio tether/socketio >= 1.0 for every setting.
 *
 * stdout: JSON lines (one per target run, one summary per persistence setting, one final summary).
 * Exit: 0 (also when the target is missed), 1 missed with --gate, 2 something crashed. See load/README.md.
 */
import type { EchoParams, EchoRow } from './lib/echo-run.ts';
import { measureEcho } from './lib/echo-run.ts';
import { emit, installGuards, log, median, NOISY_OTHER_CPU_PCT, numFlag, parseFlags, type Persistence, runMain, startRedis, startSocketIO, startTether, stopChild, unlessNoisy, waitQuiet } from './lib/procs.ts';

const TARGET_RATIO = 1.0;

const USAGE = `usage: npm run bench:redis -- [--conns N] [--inflight W] [--duration S] [--warmup S] [--payload BYTES]
                              [--rounds R] [--persistence none,everysec] [--only tether|socketio]
                              [--quiet-wait S] [--retries N] [--cpu-prof DIR] [--gate]
env: BENCH_CONNS (50), BENCH_INFLIGHT (4), BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_PAYLOAD_BYTES (16),
     BENCH_ROUNDS (1), BENCH_QUIET_WAIT_S (15), BENCH_RETRIES (2)`;

const flags = parseFlags(process.argv.slice(2), ['conns', 'inflight', 'duration', 'warmup', 'payload', 'rounds', 'persistence', 'only', 'quiet-wait', 'retries', 'cpu-prof'], ['gate'], USAGE);
const params: EchoParams = {
  conns: numFlag(flags, 'conns', 'BENCH_CONNS', 50, 1),
  inflight: numFlag(flags, 'inflight', 'BENCH_INFLIGHT', 4, 1),
  durationS: numFlag(flags, 'duration', 'BENCH_DURATION_S', 10, 0.5, false),
  warmupS: numFlag(flags, 'warmup', 'BENCH_WARMUP_S', 2, 0, false),
  payloadBytes: numFlag(flags, 'payload', 'BENCH_PAYLOAD_BYTES', 16, 0),
};
const rounds = numFlag(flags, 'rounds', 'BENCH_ROUNDS', 1, 1);
const quietWaitS = numFlag(flags, 'quiet-wait', 'BENCH_QUIET_WAIT_S', 15, 0, false);
const retries = numFlag(flags, 'retries', 'BENCH_RETRIES', 2, 0);
const gate = flags.get('gate') === true;
const cpuProf = typeof flags.get('cpu-prof') === 'string' ? (flags.get('cpu-prof') as string) : undefined;
const persistences = String(flags.get('persistence') ?? 'none,everysec').split(',') as Persistence[];
for (const p of persistences) if (p !== 'none' && p !== 'everysec') throw new Error(`--persistence: expected none and/or everysec, got "${p}"`);
const only = flags.get('only');
if (only !== undefined && only !== 'tether' && only !== 'socketio') throw new Error(`--only: expected tether or socketio, got "${String(only)}"`);
const targets = (['tether', 'socketio'] as const).filter((t) => only === undefined || only === t);

installGuards('bench-redis-echo', persistences.length * rounds * targets.length * (1 + retries) * (params.warmupS + params.durationS + Math.max(quietWaitS, 30) + 60));

type Target = (typeof targets)[number];
interface Row extends EchoRow {
  bench: 'redis-echo';
  target: Target;
  redis: string;
  conns: number;
  inflight: number;
  payloadBytes: number;
  round?: number;
}

async function runTarget(target: Target, persistence: Persistence, round: number): Promise<Row> {
  const redis = await startRedis(persistence);
  try {
    log(`bench-redis-echo: ${target} on redis ${redis.flags}: ${params.conns} conns x ${params.inflight} in flight, ${params.warmupS} s warm-up + ${params.durationS} s measured`);
    const server =
      target === 'tether'
        ? await startTether({ redisUrl: redis.url, instanceId: `bench-redis-${process.pid}`, ...(cpuProf ? { cpuProf } : {}) })
        : await startSocketIO({ redisUrl: redis.url, name: 'socketio', ...(cpuProf ? { cpuProf } : {}) });
    try {
      const r = await measureEcho(target, server, redis, params);
      const row: Row = { bench: 'redis-echo', target, redis: redis.flags, conns: params.conns, inflight: params.inflight, payloadBytes: params.payloadBytes, ...r };
      if (rounds > 1) row.round = round;
      return row;
    } finally {
      await stopChild(server.child);
    }
  } finally {
    await redis.stop();
  }
}

function combine(rs: Row[]) {
  if (rs.length === 0) return null;
  const med = (pick: (r: Row) => number | null) => {
    const xs = rs.map(pick).filter((x): x is number => x !== null);
    return xs.length === 0 ? null : Math.round(median(xs) * 1000) / 1000;
  };
  return {
    rps: Math.round(med((r) => r.rps)!),
    p50Ms: med((r) => r.p50Ms),
    p95Ms: med((r) => r.p95Ms),
    p99Ms: med((r) => r.p99Ms),
    serverCpuUsPerReq: med((r) => r.serverCpuUsPerReq),
    backendCpuUsPerReq: med((r) => r.backendCpuUsPerReq),
    errors: rs.reduce((n, r) => n + r.errors + r.connFailures + r.unanswered, 0),
  };
}

async function main(): Promise<number> {
  const summaries: { redis: string; ratio: number | null; pass: boolean; noisy: boolean }[] = [];
  for (const persistence of persistences) {
    const runs: Record<Target, Row[]> = { tether: [], socketio: [] };
    const ratios: number[] = [];
    let redisFlags = '';
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? targets : [...targets].reverse();
      const got: Partial<Record<Target, Row>> = {};
      for (const target of order) {
        await waitQuiet(quietWaitS);
        const row = await unlessNoisy(() => runTarget(target, persistence, round), (r) => (r.otherCpuPct ?? 0) > NOISY_OTHER_CPU_PCT, retries, quietWaitS);
        redisFlags = row.redis;
        got[target] = row;
        runs[target].push(row);
        emit(row);
      }
      if (got.tether && got.socketio && got.socketio.rps > 0) ratios.push(got.tether.rps / got.socketio.rps);
    }
    const t = combine(runs.tether);
    const s = combine(runs.socketio);
    const ratio = ratios.length > 0 ? Math.round(median(ratios) * 1000) / 1000 : null;
    const pass = ratio !== null && ratio >= TARGET_RATIO && t !== null && t.errors === 0;
    const noisy = [...runs.tether, ...runs.socketio].some((r) => (r.otherCpuPct ?? 0) > NOISY_OTHER_CPU_PCT);
    const summary = {
      bench: 'redis-echo',
      redis: redisFlags,
      conns: params.conns,
      inflight: params.inflight,
      durationS: params.durationS,
      rounds,
      tether: t,
      socketio: s,
      ratio,
      // Socket.IO backend CPU per request / Tether's (server + Redis): informational, steadier on a busy host.
      cpuCostRatio: t?.backendCpuUsPerReq && s?.backendCpuUsPerReq ? Math.round((s.backendCpuUsPerReq / t.backendCpuUsPerReq) * 1000) / 1000 : null,
      targetRatio: TARGET_RATIO,
      pass,
      noisy,
    };
    emit(summary);
    summaries.push({ redis: redisFlags, ratio, pass, noisy });
  }
  const pass = summaries.every((s) => s.pass);
  emit({ bench: 'redis-echo', summary: summaries, pass });
  return gate && !pass ? 1 : 0;
}

runMain('bench-redis-echo', main);
