/**
 * Child processes for the peer benchmarks (bench-redis-echo, bench-fanout, bench-limiter): Node
 * children run with tsx, a private redis-server, Tether instances and Socket.IO servers, all on
 * 127.0.0.1 and free ports. Every child is tracked and stopped by its PID (SIGTERM, then SIGKILL),
 * never by name. Also CPU accounting from /proc and a hard time limit for the orchestrator.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const children = new Set<ChildProcess>();

export function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Tracks a child so that `stopAll`/`killAllNow` reach it. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** `node --import tsx <args>` in the repository root. `ipc`: stdout piped, stderr inherited, IPC channel. */
export function spawnNode(args: string[], opts: { env?: NodeJS.ProcessEnv; ipc?: boolean; nodeArgs?: string[] } = {}): ChildProcess {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', ...args], {
    cwd: ROOT,
    env: opts.env ?? process.env,
    stdio: opts.ipc ? ['ignore', 'pipe', 'inherit', 'ipc'] : ['pipe', 'pipe', 'pipe'],
  });
  return track(child);
}

const tempDirs = new Set<string>();

/** A fresh temporary directory, removed by `removeTempDir` or at the latest when this process exits. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function exited(child: ChildProcess): Promise<void> {
  if (!isAlive(child)) return Promise.resolve();
  return once(child, 'exit').then(() => undefined);
}

/** SIGTERM by PID, SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.pid === undefined) return;
  const gone = exited(child);
  if (isAlive(child)) {
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const timer = setTimeout(() => {
    try {
      if (child.pid !== undefined && isAlive(child)) process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, graceMs);
  await gone;
  clearTimeout(timer);
}

export async function stopAll(graceMs = 2000): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c, graceMs)));
}

export function killAllNow(): void {
  for (const child of children) {
    try {
      if (child.pid !== undefined && isAlive(child)) process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  await once(server, 'close');
  return port;
}

// ---------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc; undefined elsewhere)

let clockTicks: number | undefined;
function ticks(): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clockTicks;
}

/** CPU seconds (user + system, all threads) of a process so far. */
export function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticks();
  } catch {
    return undefined;
  }
}

/** Busy CPU seconds of the whole host so far (all cores). */
export function hostBusySeconds(): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = v.reduce((a, b) => a + b, 0) - (v[3] ?? 0) - (v[4] ?? 0);
    return busy / ticks();
  } catch {
    return undefined;
  }
}

/**
 * CPU of a set of named processes (and of the host) between `start()` and `stop()`, as % of one core.
 * `other` is what the rest of the host used meanwhile: a high value means a noisy measurement.
 */
export class CpuWindow {
  private t0 = 0;
  private t1 = 0;
  private a = new Map<string, number | undefined>();
  private b = new Map<string, number | undefined>();
  private h0: number | undefined;
  private h1: number | undefined;

  constructor(private readonly procs: Record<string, ChildProcess | ChildProcess[]>) {}

  private sample(into: Map<string, number | undefined>): void {
    for (const [name, p] of Object.entries(this.procs)) {
      const list = Array.isArray(p) ? p : [p];
      let sum: number | undefined = 0;
      for (const c of list) {
        const s = cpuSeconds(c.pid);
        sum = s === undefined || sum === undefined ? undefined : sum + s;
      }
      into.set(name, sum);
    }
  }

  start(): void {
    this.sample(this.a);
    this.h0 = hostBusySeconds();
    this.t0 = performance.now();
  }

  stop(): void {
    this.sample(this.b);
    this.h1 = hostBusySeconds();
    this.t1 = performance.now();
  }

  /** `{name: pct}` for each process set, plus `other` (host minus all of them); null where unknown. */
  result(): Record<string, number | null> {
    const secs = (this.t1 - this.t0) / 1000;
    const out: Record<string, number | null> = {};
    let ours = 0;
    let known = secs > 0;
    for (const name of Object.keys(this.procs)) {
      const x = this.a.get(name);
      const y = this.b.get(name);
      if (x === undefined || y === undefined || secs <= 0) {
        out[name] = null;
        known = false;
      } else {
        const pct = ((y - x) / secs) * 100;
        out[name] = Math.round(pct);
        ours += pct;
      }
    }
    out.other = known && this.h0 !== undefined && this.h1 !== undefined ? Math.max(0, Math.round(((this.h1 - this.h0) / secs) * 100 - ours)) : null;
    return out;
  }
}

/**
 * On a shared machine, waits (at most `maxS` s) until the host uses less than `pct` % of a core,
 * sampled over 0.5 s windows. Never fails.
 */
export async function waitQuiet(maxS: number, pct = 25): Promise<void> {
  if (maxS <= 0 || hostBusySeconds() === undefined) return;
  const deadline = Date.now() + maxS * 1000;
  let said = false;
  for (;;) {
    const a = hostBusySeconds()!;
    await sleep(500);
    const busy = ((hostBusySeconds()! - a) / 0.5) * 100;
    if (busy < pct) return;
    if (Date.now() > deadline) {
      log(`the host is still busy (${Math.round(busy)}% of a core), running anyway`);
      return;
    }
    if (!said) log(`the host is busy (${Math.round(busy)}% of a core used by others), waiting up to ${maxS} s`);
    said = true;
  }
}

// ---------------------------------------------------------------------------------------------
// redis-server

export type Persistence = 'none' | 'everysec';

export interface RedisProc {
  url: string;
  port: number;
  child: ChildProcess;
  /** The persistence flags it was started with, for the report. */
  flags: string;
  stop(): Promise<void>;
}

/**
 * A private redis-server from PATH on a free port, its own temporary directory, no RDB snapshots,
 * `noeviction`. `none`: `--appendonly no`; `everysec`: `--appendonly yes --appendfsync everysec`.
 */
export async function startRedis(persistence: Persistence): Promise<RedisProc> {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)');
  }
  const port = await freePort();
  const dir = makeTempDir('tether-bench-redis-');
  const persist = persistence === 'none' ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', 'everysec'];
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...persist, '--maxmemory-policy', 'noeviction', '--loglevel', 'warning'];
  const child = track(spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (!isAlive(child)) throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode}): ${err}`);
    if (await redisPing(port)) break;
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`redis-server did not answer PING within 10 s: ${err}`);
    }
    await sleep(50);
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    child,
    flags: ['--save', "''", ...persist].join(' '),
    async stop() {
      await stopChild(child);
      removeTempDir(dir);
    },
  };
}

/**
 * Calls of each command Redis has processed so far (INFO commandstats), or undefined. Note that
 * commands run inside scripts are counted too (under their own names).
 */
export function redisCommandStats(port: number): Promise<Map<string, number> | undefined> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (n: Map<string, number> | undefined) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(n);
    };
    const timer = setTimeout(() => done(undefined), 2000);
    sock.on('connect', () => sock.write('INFO commandstats\r\n'));
    sock.on('data', (d) => {
      buf += d.toString();
      const m = /^\$(\d+)\r\n/.exec(buf);
      if (!m || Buffer.byteLength(buf) < m[0].length + Number(m[1])) return;
      const stats = new Map<string, number>();
      for (const c of buf.matchAll(/^cmdstat_(\S+?):calls=(\d+)/gm)) stats.set(c[1]!, Number(c[2]));
      done(stats);
    });
    sock.on('error', () => done(undefined));
  });
}

/** One PING over a raw socket: true when `+PONG` comes back within 500 ms. */
function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 500);
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    sock.on('error', () => done(false));
  });
}

// ---------------------------------------------------------------------------------------------
// Servers under test

export interface ServerProc {
  name: string;
  child: ChildProcess;
  port: number;
  /** WebSocket URL (Tether: `/ws`), or the Socket.IO base URL. */
  url: string;
  output(): string;
}

export interface TetherOptions {
  /** Unset: the embedded in-memory store. */
  redisUrl?: string;
  instanceId: string;
  /** Extra env (e.g. limiter settings), applied last. */
  env?: Record<string, string>;
  cpuProf?: string;
}

/** Every limiter scope off, as SPEC asks of throughput benchmarks. */
export const LIMITS_OFF: Record<string, string> = { RL_USER_RATE: '0', RL_IP_RATE: '0', RL_CONN_RATE: '0' };

/** `node --import tsx runtime/main.ts` on a free port, LOG_LEVEL=warn, anonymous; waits for `/ready`. */
export async function startTether(opts: TetherOptions): Promise<ServerProc> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Nothing from the caller's environment may change what is measured.
  for (const k of Object.keys(env)) if (k.startsWith('RL_') || k === 'REDIS_URL' || k === 'AUTH_SECRET') delete env[k];
  Object.assign(env, {
    HOST: '127.0.0.1',
    PORT: String(port),
    INSTANCE_ID: opts.instanceId,
    LOG_LEVEL: 'warn',
    DRAIN_TIMEOUT_MS: '2000',
    ...LIMITS_OFF,
    ...(opts.redisUrl ? { REDIS_URL: opts.redisUrl } : {}),
    ...opts.env,
  });
  const nodeArgs = opts.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProf}`] : [];
  const child = spawnNode(['runtime/main.ts'], { env, nodeArgs });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (!isAlive(child)) throw new Error(`tether ${opts.instanceId} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${out}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/ready`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`tether ${opts.instanceId} was not ready within 20 s:\n${out}`);
    }
    await sleep(50);
  }
  return { name: opts.instanceId, child, port, url: `ws://127.0.0.1:${port}/ws`, output: () => out };
}

/** load/socketio/server.ts (Socket.IO 4.8 + @socket.io/redis-adapter on `redisUrl`); waits for its `listening` line. */
export async function startSocketIO(opts: { redisUrl: string; name: string; cpuProf?: string }): Promise<ServerProc> {
  const port = await freePort();
  const nodeArgs = opts.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProf}`] : [];
  const child = spawnNode(['load/socketio/server.ts'], { env: { ...process.env, PORT: String(port), REDIS_URL: opts.redisUrl, SIO_NAME: opts.name }, nodeArgs });
  let out = '';
  child.stderr!.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`socket.io server did not come up within 20 s:\n${out}`)), 20_000);
    child.stdout!.on('data', (d) => {
      buf += d;
      if (buf.includes('"listening"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`socket.io server exited (${code ?? signal}) before it was up:\n${out}`));
    });
  });
  return { name: opts.name, child, port, url: `http://127.0.0.1:${port}`, output: () => out };
}

// ---------------------------------------------------------------------------------------------
// Orchestrator plumbing

/**
 * Kills every child and exits 2 after `limitS` seconds whatever happens; on SIGINT/SIGTERM stops the
 * children (by PID) and exits 2.
 */
export function installGuards(name: string, limitS: number): void {
  // Whatever ends this process (a crash, a closed stdout pipe), its children go with it.
  process.on('exit', () => {
    killAllNow();
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });
  process.stdout.on('error', () => process.exit(2));
  const hardStop = setTimeout(() => {
    log(`${name}: hard time limit of ${Math.round(limitS)} s reached, killing children`);
    killAllNow();
    process.exit(2);
  }, limitS * 1000);
  hardStop.unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      log(`${name}: ${sig}, stopping children`);
      stopAll().finally(() => process.exit(2));
    });
  }
}

/** Runs `main`, sets the exit code it returns; on a crash stops every child and exits 2. */
export function runMain(name: string, main: () => Promise<number>): void {
  main().then(
    async (code) => {
      await stopAll();
      process.exitCode = code;
    },
    async (err) => {
      log(`${name}: ${(err as Error).stack ?? String(err)}`);
      await stopAll();
      process.exit(2);
    },
  );
}

/** Other processes used more than this much CPU (% of one core) during a window: a noisy measurement. */
export const NOISY_OTHER_CPU_PCT = 25;

/**
 * Runs a measurement up to `1 + retries` times while `isNoisy` says the host was busy with other
 * work meanwhile; each noisy result is emitted with `"discarded": "noisy"` (so nothing is hidden) and
 * the measurement runs again after waiting for a quiet host. Returns the last result.
 */
export async function unlessNoisy<T extends object>(run: () => Promise<T>, isNoisy: (r: T) => boolean, retries: number, quietWaitS: number): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const r = await run();
    if (!isNoisy(r) || attempt >= retries) return r;
    emit({ ...r, discarded: 'noisy' });
    log(`other processes used the CPU during that measurement; running it again (${attempt + 1}/${retries})`);
    await waitQuiet(Math.max(quietWaitS, 30));
  }
}

export function emit(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// ---------------------------------------------------------------------------------------------
// Flags

export type Flags = Map<string, string | true>;

/** `--name value`, `--name=value`, and the boolean flags in `booleans`. Unknown flags throw. */
export function parseFlags(argv: string[], known: string[], booleans: string[], usage: string): Flags {
  const flags: Flags = new Map();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    }
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}"\n${usage}`);
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    if (![...known, ...booleans].includes(name)) throw new Error(`unknown flag --${name}\n${usage}`);
    if (eq > 0) flags.set(name, arg.slice(eq + 1));
    else if (booleans.includes(name)) flags.set(name, true);
    else {
      const value = argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a value\n${usage}`);
      flags.set(name, value);
    }
  }
  return flags;
}

export function numFlag(flags: Flags, flag: string, envName: string, fallback: number, min: number, integer = true): number {
  const raw = flags.get(flag) ?? process.env[envName];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) throw new Error(`--${flag} / ${envName}: expected ${integer ? 'an integer' : 'a number'} >= ${min}, got "${String(raw)}"`);
  return n;
}
