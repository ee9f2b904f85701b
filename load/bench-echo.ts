/**
 * `npm run bench`: request/response throughput and latency of Tether's full pipeline (route `echo`,
 * one instance, in-memory store, no rate limits, LOG_LEVEL=warn) against a bare `ws` echo server,
 * driven by the same load generator in the same run. See load/README.md.
 *
 * Three kinds of processes: this orchestrator (idle while load runs), the server under test (one at a
 * time), and the load generator (load/loadgen.ts). Every child is stopped by its PID.
 *
 * stdout: one JSON line per target, then one summary line. Progress goes to stderr.
 * Exit code: 0 (also when the target is missed, unless --gate), 1 target missed with --gate, 2 crash.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, freePort, hostBusySeconds, median, NOISY_OTHER_CPU_PCT, waitQuiet } from './lib/procs.ts';
import type { LoadConfig, LoadMessage, LoadResult } from './loadgen.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TARGET_RATIO = 0.6;
const P99_TARGET_MS = 20;
/** Above this much CPU (% of one core) used by other processes during a window, a run is `noisy`. */

interface Options {
  conns: number;
  inflight: number;
  durationS: number;
  warmupS: number;
  payloadBytes: number;
  gate: boolean;
  /** Pin the server to CPU 0 and the generator to CPU 1 with taskset. */
  pin: boolean;
  only: 'tether' | 'bare' | undefined;
  /** Interleaved rounds (tether, bare, bare, tether, ...); the summary takes medians. */
  rounds: number;
  /** Before each target, wait up to this long for the host to be quiet (0: don't). */
  quietWaitS: number;
  /** Directory for `--cpu-prof` profiles of the servers (not of the generator). */
  cpuProf: string | undefined;
}

const USAGE = `usage: npm run bench -- [--conns N] [--inflight W] [--duration S] [--warmup S] [--payload BYTES]
                        [--rounds R] [--quiet-wait S] [--gate] [--pin] [--only tether|bare] [--cpu-prof DIR]
env: BENCH_CONNS (50), BENCH_INFLIGHT (4), BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_PAYLOAD_BYTES (16),
     BENCH_ROUNDS (1), BENCH_QUIET_WAIT_S (15)`;

function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}"\n${USAGE}`);
    const eq = arg.indexOf('=');
    if (eq > 0) flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    else if (['gate', 'pin'].includes(arg.slice(2))) flags.set(arg.slice(2), true);
    else {
      const value = argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      flags.set(arg.slice(2), value);
    }
  }
  const known = ['conns', 'inflight', 'duration', 'warmup', 'payload', 'rounds', 'quiet-wait', 'gate', 'pin', 'only', 'cpu-prof'];
  for (const k of flags.keys()) if (!known.includes(k)) throw new Error(`unknown flag --${k}\n${USAGE}`);
  const num = (flag: string, envName: string, fallback: number, min: number, integer = true): number => {
    const raw = flags.get(flag) ?? env[envName];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) throw new Error(`--${flag} / ${envName}: expected ${integer ? 'an integer' : 'a number'} >= ${min}, got "${String(raw)}"`);
    return n;
  };
  const only = flags.get('only');
  if (only !== undefined && only !== 'tether' && only !== 'bare') throw new Error(`--only: expected tether or bare, got "${String(only)}"`);
  const cpuProf = flags.get('cpu-prof');
  return {
    conns: num('conns', 'BENCH_CONNS', 50, 1),
    inflight: num('inflight', 'BENCH_INFLIGHT', 4, 1),
    durationS: num('duration', 'BENCH_DURATION_S', 10, 0.5, false),
    warmupS: num('warmup', 'BENCH_WARMUP_S', 2, 0, false),
    payloadBytes: num('payload', 'BENCH_PAYLOAD_BYTES', 16, 0),
    rounds: num('rounds', 'BENCH_ROUNDS', 1, 1),
    quietWaitS: num('quiet-wait', 'BENCH_QUIET_WAIT_S', 15, 0, false),
    gate: flags.get('gate') === true,
    pin: flags.get('pin') === true,
    only,
    cpuProf: typeof cpuProf === 'string' ? cpuProf : undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// Child processes

const children = new Set<ChildProcess>();

function spawnNode(args: string[], opts: { env?: NodeJS.ProcessEnv; cpu?: number; ipc?: boolean }): ChildProcess {
  const nodeArgs = ['--import', 'tsx', ...args];
  const [cmd, cmdArgs] = opts.cpu !== undefined ? ['taskset', ['-c', String(opts.cpu), process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs];
  const child = spawn(cmd, cmdArgs, {
    cwd: ROOT,
    env: opts.env ?? process.env,
    stdio: opts.ipc ? ['ignore', 'pipe', 'inherit', 'ipc'] : ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return once(child, 'exit').then(() => undefined);
}

/** SIGTERM by PID, SIGKILL after `graceMs`, resolves when the process is gone. */
async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.pid === undefined) return;
  const gone = exited(child);
  if (child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const timer = setTimeout(() => {
    try {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, graceMs);
  await gone;
  clearTimeout(timer);
}

function killAllNow(): void {
  for (const child of children) {
    try {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

interface Server {
  child: ChildProcess;
  wsUrl: string;
  output(): string;
}

async function startTether(opts: Options, cpu: number | undefined): Promise<Server> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOST: '127.0.0.1',
    PORT: String(port),
    INSTANCE_ID: `bench-${process.pid}`,
    LOG_LEVEL: 'warn',
    RL_USER_RATE: '0',
    RL_IP_RATE: '0',
    RL_CONN_RATE: '0',
    DRAIN_TIMEOUT_MS: '2000',
  };
  delete env.REDIS_URL; // one instance, in-memory store
  delete env.AUTH_SECRET; // anonymous sessions
  const profArgs = opts.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProf}`] : [];
  const child = spawnNode([...profArgs, 'runtime/main.ts'], { env, cpu });
  return waitUp(child, port);
}

async function waitUp(child: ChildProcess, port: number): Promise<Server> {
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`tether exited (${child.exitCode ?? child.signalCode}) before it was up:\n${log}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`tether did not come up within 20 s:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, wsUrl: `ws://127.0.0.1:${port}/ws`, output: () => log };
}

async function startBare(opts: Options, cpu: number | undefined): Promise<Server> {
  const profArgs = opts.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProf}`] : [];
  const child = spawnNode([...profArgs, 'load/bare-echo-server.ts'], { cpu });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`bare echo server did not come up within 20 s:\n${log}`)), 20_000);
    child.stdout!.on('data', (d) => {
      buf += d;
      const m = /\{"listening":(\d+),"ws":"([^"]*)"\}/.exec(buf);
      if (m) {
        process.stderr.write(`bench: bareWs: ws ${m[2]} on port ${m[1]}\n`);
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`bare echo server exited (${code}) before it was up:\n${log}`));
    });
  });
  return { child, wsUrl: `ws://127.0.0.1:${port}/`, output: () => log };
}

// ---------------------------------------------------------------------------------------------
// One target

interface TargetResult {
  bench: 'echo';
  target: 'tether' | 'bareWs';
  conns: number;
  inflight: number;
  durationS: number;
  warmupS: number;
  payloadBytes: number;
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
  serverCpuPct: number | null;
  /** Server CPU time per request, microseconds: much less sensitive to a noisy host than rps. */
  serverCpuUsPerReq: number | null;
  genCpuPct: number;
  /** CPU the rest of the host used during the window, % of one core: high means a noisy run. */
  otherCpuPct: number | null;
  pinned: boolean;
  round?: number;
  firstError?: string;
}

async function runTarget(target: 'tether' | 'bareWs', opts: Options): Promise<TargetResult> {
  const serverCpu = opts.pin ? 0 : undefined;
  const genCpu = opts.pin ? 1 : undefined;
  process.stderr.write(`bench: ${target}: starting server\n`);
  const server = target === 'tether' ? await startTether(opts, serverCpu) : await startBare(opts, serverCpu);
  try {
    const config: LoadConfig = {
      url: server.wsUrl,
      mode: target === 'tether' ? 'tether' : 'bare',
      conns: opts.conns,
      inflight: opts.inflight,
      warmupS: opts.warmupS,
      durationS: opts.durationS,
      payloadBytes: opts.payloadBytes,
    };
    process.stderr.write(`bench: ${target}: ${opts.conns} conns x ${opts.inflight} in flight, ${opts.warmupS} s warm-up + ${opts.durationS} s measured\n`);
    const gen = spawnNode(['load/loadgen.ts', JSON.stringify(config)], { cpu: genCpu, ipc: true });
    let cpuStart: number | undefined;
    let cpuEnd: number | undefined;
    let genStart: number | undefined;
    let genEnd: number | undefined;
    let hostStart: number | undefined;
    let hostEnd: number | undefined;
    let tStart = 0;
    let tEnd = 0;
    let result: LoadResult | undefined;
    gen.on('message', (m: LoadMessage) => {
      if (m.type === 'measure-start') {
        cpuStart = cpuSeconds(server.child.pid);
        genStart = cpuSeconds(gen.pid);
        hostStart = hostBusySeconds();
        tStart = performance.now();
      } else if (m.type === 'measure-end') {
        cpuEnd = cpuSeconds(server.child.pid);
        genEnd = cpuSeconds(gen.pid);
        hostEnd = hostBusySeconds();
        tEnd = performance.now();
      } else if (m.type === 'result') result = m.result;
    });
    const [code, signal] = (await once(gen, 'exit')) as [number | null, NodeJS.Signals | null];
    if (!result) throw new Error(`load generator exited (${code ?? signal}) without a result`);
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      throw new Error(`${target} server died during the run (${server.child.exitCode ?? server.child.signalCode}):\n${server.output()}`);
    }
    const pct = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && tEnd > tStart ? ((b - a) / ((tEnd - tStart) / 1000)) * 100 : null);
    const serverCpuPct = pct(cpuStart, cpuEnd);
    const genProcPct = pct(genStart, genEnd);
    const hostPct = pct(hostStart, hostEnd);
    // Everything else the host ran meanwhile (other jobs, the kernel's share not charged to us): noise.
    const otherCpuPct = hostPct !== null && serverCpuPct !== null && genProcPct !== null ? Math.max(0, Math.round(hostPct - serverCpuPct - genProcPct)) : null;
    const out: TargetResult = {
      bench: 'echo',
      target,
      conns: result.conns,
      inflight: result.inflight,
      durationS: result.windowS,
      warmupS: result.warmupS,
      payloadBytes: opts.payloadBytes,
      requests: result.requests,
      rps: result.rps,
      ...result.latency,
      errors: result.errors,
      connFailures: result.connFailures,
      unanswered: result.unanswered,
      serverCpuPct: serverCpuPct === null ? null : Math.round(serverCpuPct),
      serverCpuUsPerReq: serverCpuPct === null || result.rps === 0 ? null : Math.round((serverCpuPct / 100 / result.rps) * 1e8) / 100,
      genCpuPct: result.genCpuPct,
      otherCpuPct,
      pinned: opts.pin,
    };
    if (result.firstError !== undefined) out.firstError = result.firstError;
    return out;
  } finally {
    await stopChild(server.child);
  }
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2), process.env);
  if (opts.pin) {
    try {
      execFileSync('taskset', ['-c', '0', 'true']);
    } catch {
      throw new Error('--pin needs taskset (util-linux)');
    }
  }
  const targets = (['tether', 'bareWs'] as const).filter((t) => opts.only === undefined || (opts.only === 'tether') === (t === 'tether'));
  const runs: Record<'tether' | 'bareWs', TargetResult[]> = { tether: [], bareWs: [] };
  const ratios: number[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    // Alternate the order so neither target always runs on a warmer (or noisier) machine.
    const order = round % 2 === 1 ? targets : [...targets].reverse();
    const got: Partial<Record<'tether' | 'bareWs', TargetResult>> = {};
    for (const target of order) {
      await waitQuiet(opts.quietWaitS);
      const r = await runTarget(target, opts);
      if (opts.rounds > 1) r.round = round;
      got[target] = r;
      runs[target].push(r);
      process.stdout.write(`${JSON.stringify(r)}\n`);
    }
    if (got.tether && got.bareWs && got.bareWs.rps > 0) ratios.push(got.tether.rps / got.bareWs.rps);
  }
  const t = combine(runs.tether);
  const b = combine(runs.bareWs);
  const ratio = ratios.length > 0 ? Math.round(median(ratios) * 1000) / 1000 : null;
  const pass = t !== null && ratio !== null && ratio >= TARGET_RATIO && t.p99Ms !== null && t.p99Ms < P99_TARGET_MS && t.errors === 0;
  const others = [...runs.tether, ...runs.bareWs].map((r) => r.otherCpuPct ?? 0);
  const summary = {
    bench: 'echo',
    conns: opts.conns,
    inflight: opts.inflight,
    durationS: opts.durationS,
    rounds: opts.rounds,
    tether: t,
    bareWs: b,
    ratio,
    // Bare server CPU per request / Tether's: the same comparison, far less sensitive to a busy host.
    cpuCostRatio: t?.serverCpuUsPerReq && b?.serverCpuUsPerReq ? Math.round((b.serverCpuUsPerReq / t.serverCpuUsPerReq) * 1000) / 1000 : null,
    targetRatio: TARGET_RATIO,
    p99TargetMs: P99_TARGET_MS,
    pass,
    // Other processes used more than a quarter of a core during some measured window.
    noisy: others.some((o) => o > NOISY_OTHER_CPU_PCT),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return opts.gate && !pass ? 1 : 0;
}

/** The median over rounds of each number (errors are summed). */
function combine(rs: TargetResult[]): { rps: number; p50Ms: number | null; p95Ms: number | null; p99Ms: number | null; serverCpuUsPerReq: number | null; errors: number } | null {
  if (rs.length === 0) return null;
  const med = (pick: (r: TargetResult) => number | null) => {
    const xs = rs.map(pick).filter((x): x is number => x !== null);
    return xs.length === 0 ? null : Math.round(median(xs) * 1000) / 1000;
  };
  return {
    rps: Math.round(med((r) => r.rps)!),
    p50Ms: med((r) => r.p50Ms),
    p95Ms: med((r) => r.p95Ms),
    p99Ms: med((r) => r.p99Ms),
    serverCpuUsPerReq: med((r) => r.serverCpuUsPerReq),
    errors: rs.reduce((n, r) => n + r.errors + r.connFailures + r.unanswered, 0),
  };
}

// Bounded whatever happens: two targets, each warm-up + duration + startup/shutdown slack.
const hardLimitS = (() => {
  try {
    const o = parseOptions(process.argv.slice(2), process.env);
    return 2 * o.rounds * (o.warmupS + o.durationS + o.quietWaitS + 60);
  } catch {
    return 300;
  }
})();
const hardStop = setTimeout(() => {
  process.stderr.write(`bench: hard time limit of ${hardLimitS} s reached, killing children\n`);
  killAllNow();
  process.exit(2);
}, hardLimitS * 1000);
hardStop.unref();

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    process.stderr.write(`bench: ${sig}, stopping children\n`);
    Promise.all([...children].map((c) => stopChild(c, 2000))).finally(() => process.exit(2));
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (err) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    await Promise.all([...children].map((c) => stopChild(c, 2000)));
    process.exit(2);
  },
);
