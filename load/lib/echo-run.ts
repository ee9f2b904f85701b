/**
 * One echo measurement: spawns a load generator (load/loadgen.ts for Tether, load/socketio/echo-gen.ts
 * for Socket.IO; both speak the same IPC) against a server that is already up, takes the CPU of the
 * server, Redis, the generator and the rest of the host over the measured window, and returns one row.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { LoadConfig, LoadMessage, LoadResult } from '../loadgen.ts';
import { CpuWindow, isAlive, redisCommandStats, spawnNode, stopChild, type ServerProc } from './procs.ts';

export interface EchoParams {
  conns: number;
  inflight: number;
  warmupS: number;
  durationS: number;
  payloadBytes: number;
}

export interface EchoRow {
  requests: number;
  rps: number;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  p999Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
  errors: number;
  connFailures: number;
  unanswered: number;
  windowS: number;
  /** % of one core over the measured window. */
  serverCpuPct: number | null;
  redisCpuPct: number | null;
  genCpuPct: number | null;
  otherCpuPct: number | null;
  /** Server CPU per request, µs. */
  serverCpuUsPerReq: number | null;
  /** Server + Redis CPU per request, µs. */
  backendCpuUsPerReq: number | null;
  /** Script calls (EVALSHA/EVAL) Redis ran per request over the window. */
  redisScriptCallsPerReq: number | null;
  /** Commands Redis ran per request, those inside scripts included. */
  redisCmdsPerReq: number | null;
  firstError?: string;
}

export async function measureEcho(kind: 'tether' | 'socketio', server: ServerProc, redis: { child: ChildProcess; port: number } | undefined, p: EchoParams): Promise<EchoRow> {
  const config: LoadConfig = { url: server.url, mode: 'tether', conns: p.conns, inflight: p.inflight, warmupS: p.warmupS, durationS: p.durationS, payloadBytes: p.payloadBytes };
  const script = kind === 'tether' ? 'load/loadgen.ts' : 'load/socketio/echo-gen.ts';
  const gen = spawnNode([script, JSON.stringify(config)], { ipc: true });
  const procs: Record<string, ChildProcess> = { server: server.child, gen };
  if (redis) procs.redis = redis.child;
  const cpu = new CpuWindow(procs);
  let result: LoadResult | undefined;
  type Stats = Map<string, number> | undefined;
  let cmds0: Promise<Stats> = Promise.resolve(undefined);
  let cmds1: Promise<Stats> = Promise.resolve(undefined);
  gen.on('message', (m: LoadMessage) => {
    if (m.type === 'measure-start') {
      cpu.start();
      if (redis) cmds0 = redisCommandStats(redis.port);
    } else if (m.type === 'measure-end') {
      cpu.stop();
      if (redis) cmds1 = redisCommandStats(redis.port);
    } else if (m.type === 'result') result = m.result;
  });
  try {
    const [code, signal] = (await once(gen, 'exit')) as [number | null, NodeJS.Signals | null];
    if (!result) throw new Error(`${script} exited (${code ?? signal}) without a result`);
  } finally {
    await stopChild(gen);
  }
  if (!isAlive(server.child)) throw new Error(`${server.name} died during the run:\n${server.output()}`);
  const c = cpu.result();
  const [k0, k1] = await Promise.all([cmds0, cmds1]);
  const delta = (pick: (name: string) => boolean) => {
    if (!k0 || !k1 || result!.requests === 0) return null;
    let n = 0;
    for (const [name, calls] of k1) if (pick(name)) n += calls - (k0.get(name) ?? 0);
    return Math.round((n / result!.requests) * 1000) / 1000;
  };
  const perReq = (pct: number | null | undefined) => (pct === null || pct === undefined || result!.rps === 0 ? null : Math.round((pct / 100 / result!.rps) * 1e8) / 100);
  const row: EchoRow = {
    requests: result.requests,
    rps: result.rps,
    ...result.latency,
    errors: result.errors,
    connFailures: result.connFailures,
    unanswered: result.unanswered,
    windowS: result.windowS,
    serverCpuPct: c.server ?? null,
    redisCpuPct: redis ? (c.redis ?? null) : null,
    genCpuPct: c.gen ?? result.genCpuPct,
    otherCpuPct: c.other ?? null,
    serverCpuUsPerReq: perReq(c.server),
    backendCpuUsPerReq: c.server === null || c.server === undefined ? null : perReq(c.server + (redis ? (c.redis ?? 0) : 0)),
    redisScriptCallsPerReq: delta((name) => name === 'evalsha' || name === 'eval'),
    redisCmdsPerReq: delta((name) => name !== 'info'),
  };
  if (result.firstError !== undefined) row.firstError = result.firstError;
  return row;
}
