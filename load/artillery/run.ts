/**
 * `node --import tsx load/artillery/run.ts <profile> [--verbose] [--keep]`: runs one Artillery load
 * profile (`load/artillery/<profile>.yml`) against a private cluster and gates on the result.
 *
 * 1. Starts a redis-server (free port, append-only with fsync always, as infra/redis.conf ships) and
 *    two Tether instances (`runtime/main.ts`, free ports, 127.0.0.1 only) with the profile's
 *    `config.tether.env`, and waits until both answer /ready.
 * 2. Runs Artillery with the profile; the processor (processor/) spreads virtual users over both
 *    instances (TETHER_TARGETS) and emits the custom metrics the profile's `ensure` gates check.
 * 3. Chaos (`config.tether.killAt`, a fraction of the phases): SIGKILLs the second instance then;
 *    clients resume on the first.
 * 4. Burst profiles (`config.tether.limit`): checks from the recorded send/answer times that the
 *    limited key was never admitted more than `burst + rate * T` over any window of length T, and
 *    that the limiter admitted what an ideal token bucket would (not stingier than `minAdmitRatio`).
 * 5. Prints a summary (also as one JSON line), stops everything by PID, exits 0 when every gate
 *    passed, 1 when a gate failed (Artillery's exit code or a check here), 2 when the run itself broke
 *    (a server died, Artillery crashed or overran the deadline).
 *
 * `--scale F` multiplies every phase's duration by F (e.g. `soak --scale 0.1`; passed to Artillery
 * as `--overrides`). `--verbose` passes Artillery's whole output through (default: only phases, checks and errors;
 * the full log is kept in the run directory when the run fails). `--keep` keeps the run directory.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, type TestRedis } from '../../tests/helpers/redis-server.ts';
import { type ServerProcess, startServer } from '../../tests/helpers/server-process.ts';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ARTILLERY = join(ROOT, 'load/node_modules/.bin/artillery');

interface Phase {
  name?: string;
  duration?: number;
  pause?: number;
}
interface TetherConfig {
  /** Server environment on top of the defaults below. */
  env?: Record<string, string | number>;
  /** Chaos: SIGKILL the second instance after this fraction of the phases. */
  killAt?: number;
  /** Burst profiles: the limited key's scope (`ip`); rate and burst come from `RL_IP_RATE/BURST`. */
  limit?: { scope: 'ip'; minAdmitRatio?: number; minRefused?: number };
  /** Hard limit on the whole run (default: phases + 150 s). */
  deadlineS?: number;
}
interface Script {
  config: { phases?: Phase[]; tether?: TetherConfig };
}
interface Summary {
  min: number;
  max: number;
  count: number;
  mean: number;
  p50: number;
  median: number;
  p95: number;
  p99: number;
  p999?: number;
}
interface Report {
  aggregate: { counters: Record<string, number>; summaries: Record<string, Summary> };
}

/** Server defaults for every profile; `config.tether.env` overrides them. */
const BASE_ENV: Record<string, string> = {
  LOG_LEVEL: 'warn',
  HEARTBEAT_MS: '5000',
  HELLO_TIMEOUT_MS: '5000',
  DRAIN_TIMEOUT_MS: '5000',
  RL_USER_RATE: '0',
  RL_IP_RATE: '0',
  RL_CONN_RATE: '0',
};

const log = (msg: string) => process.stdout.write(`${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

// ---- arguments and profile ----

const args = process.argv.slice(2);
const profile = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--scale');
const verbose = args.includes('--verbose');
const keep = args.includes('--keep');
const scaleArg = args.indexOf('--scale');
const scale = scaleArg >= 0 ? Number(args[scaleArg + 1]) : 1;
if (!(scale > 0)) {
  process.stderr.write('--scale needs a positive number\n');
  process.exit(2);
}
const profiles = readdirSync(HERE).filter((f) => f.endsWith('.yml')).map((f) => f.slice(0, -4));
if (!profile || !profiles.includes(profile)) {
  process.stderr.write(`usage: node --import tsx load/artillery/run.ts <${profiles.join('|')}> [--scale F] [--verbose] [--keep]\n`);
  process.exit(2);
}
if (!existsSync(ARTILLERY)) {
  process.stderr.write('Artillery is not installed: run `npm run load:install` (installs load/package.json into load/node_modules)\n');
  process.exit(2);
}
const yamlPath = join(HERE, `${profile}.yml`);
const yaml = createRequire(join(ROOT, 'load/package.json'))('js-yaml') as { load(s: string): unknown };
const script = yaml.load(readFileSync(yamlPath, 'utf8')) as Script;
const tether = script.config.tether ?? {};
const phases = (script.config.phases ?? []).map((p) => {
  const scaled = { ...p };
  if (p.duration !== undefined) scaled.duration = Math.max(1, Math.round(p.duration * scale));
  if (p.pause !== undefined) scaled.pause = Math.max(1, Math.round(p.pause * scale));
  return scaled;
});
const phasesS = phases.reduce((s, p) => s + (p.duration ?? p.pause ?? 0), 0);
const serverEnv: Record<string, string> = { ...BASE_ENV };
for (const [k, v] of Object.entries(tether.env ?? {})) serverEnv[k] = String(v);
const deadlineMs = (tether.deadlineS ?? phasesS + 150) * 1000;

// ---- processes ----

const runDir = mkdtempSync(join(tmpdir(), `tether-load-${profile}-`));
const reportPath = join(runDir, 'report.json');
const artilleryLogPath = join(runDir, 'artillery.log');
const killedFile = join(runDir, 'killed');
let redis: TestRedis | undefined;
const servers: ServerProcess[] = [];
let artillery: ChildProcess | undefined;
let victim: ServerProcess | undefined;
let killedAt: number | undefined;
let stopping = false;
const broken: string[] = [];

function tail(text: string, lines = 30): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

let cleaning: Promise<void> | undefined;
/** Stops Artillery, the instances and Redis, by PID; every caller gets the same promise. */
function cleanup(): Promise<void> {
  cleaning ??= stopEverything();
  return cleaning;
}

async function stopEverything(): Promise<void> {
  const cleanupStarted = Date.now();
  stopping = true;
  if (artillery?.pid !== undefined && artillery.exitCode === null && artillery.signalCode === null) {
    artillery.kill('SIGTERM');
    const a = artillery;
    const t = setTimeout(() => a.exitCode === null && a.signalCode === null && a.kill('SIGKILL'), 5000);
    await new Promise((r) => a.once('exit', r));
    clearTimeout(t);
  }
  await Promise.all(
    servers.map(async (s) => {
      const t = setTimeout(() => void s.kill(), 10_000);
      await s.stop();
      clearTimeout(t);
    }),
  );
  await redis?.cleanup();
  log(`stopped everything in ${((Date.now() - cleanupStarted) / 1000).toFixed(1)} s`);
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    log(`\n${signal}: stopping everything`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function waitReady(s: ServerProcess): Promise<void> {
  const until = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await fetch(`${s.url}/ready`);
      if (res.ok) return;
    } catch {
      // not yet
    }
    if (Date.now() > until) throw new Error(`${s.instanceId} not ready within 20 s:\n${tail(s.output())}`);
    await sleep(100);
  }
}

// ---- CPU and memory from /proc ----

const CLK_TCK = 100;
interface ProcSample {
  cpuTicks: number;
  rssBytes: number;
}
function procSample(pid: number | undefined): ProcSample | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { cpuTicks: Number(fields[11]) + Number(fields[12]), rssBytes: Number(fields[21]) * 4096 };
  } catch {
    return undefined;
  }
}
function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

interface Usage {
  name: string;
  startTicks: number;
  lastTicks: number;
  peakRss: number;
  lastRss: number;
  firstRss: number;
}

// ---- the limiter check ----

interface RequestRecord {
  s: number;
  r: number;
  a: boolean;
}

function readRecords(): RequestRecord[] {
  const out: RequestRecord[] = [];
  for (const f of readdirSync(runDir)) {
    if (!f.startsWith('requests-')) continue;
    for (const line of readFileSync(join(runDir, f), 'utf8').split('\n')) {
      const [s, r, a] = line.split(' ');
      if (s === undefined || r === undefined || a === undefined) continue;
      out.push({ s: Number(s), r: Number(r), a: a === '1' });
    }
  }
  return out;
}

/**
 * The largest number of admitted requests provably decided within one window of length `windowMs`:
 * a request sent at or after the window's start and answered (+1 ms for the clock's resolution)
 * before its end was admitted inside it. Windows start at send times (the maximum is at one of them).
 */
function maxAdmittedInWindow(admitted: RequestRecord[], windowMs: number): number {
  const bySend = [...admitted].sort((x, y) => x.s - y.s);
  const recvs = [...new Set(bySend.map((x) => x.r + 1))].sort((x, y) => x - y);
  const rank = new Map(recvs.map((v, i) => [v, i + 1]));
  const tree = new Array<number>(recvs.length + 1).fill(0);
  const add = (i: number) => {
    for (; i < tree.length; i += i & -i) tree[i]! += 1;
  };
  const countUpTo = (limit: number) => {
    let lo = 0;
    let hi = recvs.length; // number of distinct values <= limit
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (recvs[mid]! <= limit) lo = mid + 1;
      else hi = mid;
    }
    let sum = 0;
    for (let i = lo; i > 0; i -= i & -i) sum += tree[i]!;
    return sum;
  };
  let best = 0;
  let i = bySend.length - 1;
  while (i >= 0) {
    const s = bySend[i]!.s;
    while (i >= 0 && bySend[i]!.s === s) add(rank.get(bySend[i--]!.r + 1)!);
    best = Math.max(best, countUpTo(s + windowMs));
  }
  return best;
}

/** What an ideal token bucket (full at the start) would admit of these requests, by send time. */
function idealAdmitted(all: RequestRecord[], rate: number, burst: number): number {
  const sorted = [...all].sort((x, y) => x.s - y.s);
  let tokens = burst;
  let last = sorted[0]?.s ?? 0;
  let admitted = 0;
  for (const x of sorted) {
    tokens = Math.min(burst, tokens + ((x.s - last) / 1000) * rate);
    last = x.s;
    if (tokens >= 1) {
      tokens -= 1;
      admitted++;
    }
  }
  return admitted;
}

// ---- formatting ----

const fmt = (n: number | undefined, digits = 1) => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits));
function hist(s: Summary | undefined): string {
  if (!s) return 'n=0';
  return `n=${s.count} p50 ${fmt(s.median)} p95 ${fmt(s.p95)} p99 ${fmt(s.p99)} max ${fmt(s.max)}`;
}

// ---- main ----

async function main(): Promise<number> {
  const started = Date.now();
  log(`tether load profile "${profile}" (${yamlPath}); phases ${phasesS} s${scale === 1 ? '' : ` (scaled x${scale})`}; run directory ${runDir}`);
  redis = await startRedis({ own: true });
  for (const id of ['load-a', 'load-b']) {
    servers.push(await startServer({ ...serverEnv, REDIS_URL: redis.url, INSTANCE_ID: id }));
  }
  await Promise.all(servers.map(waitReady));
  for (const s of servers) {
    s.child.once('exit', (code, signal) => {
      if (stopping || interrupted || s === victim) return;
      broken.push(`instance ${s.instanceId} exited during the run (code ${code}, signal ${signal})`);
      log(`!! instance ${s.instanceId} exited during the run (code ${code}, signal ${signal}):\n${tail(s.output())}`);
    });
  }
  log(`redis ${redis.url}; instances ${servers.map((s) => `${s.instanceId} ${s.wsUrl} (pid ${s.child.pid})`).join(', ')}`);
  const envShown = Object.entries(serverEnv).filter(([k]) => k !== 'LOG_LEVEL').map(([k, v]) => `${k}=${v}`).join(' ');
  log(`server env: ${envShown}`);

  const chaos = typeof tether.killAt === 'number';
  if (chaos) victim = servers[1];
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    ARTILLERY_DISABLE_TELEMETRY: '1',
    TETHER_TARGETS: servers.map((s) => s.wsUrl).join(','),
    TETHER_ROOT: ROOT,
    TETHER_LOAD_DIR: runDir,
  };
  if (victim) {
    childEnv.TETHER_CHAOS_VICTIM = victim.wsUrl;
    childEnv.TETHER_CHAOS_KILLED_FILE = killedFile;
  }

  const usage: { proc: ChildProcess; u: Usage }[] = [];
  const machineStart = machineTicks();
  const track = (name: string, proc: ChildProcess) => {
    const s = procSample(proc.pid);
    if (s) usage.push({ proc, u: { name, startTicks: s.cpuTicks, lastTicks: s.cpuTicks, peakRss: s.rssBytes, lastRss: s.rssBytes, firstRss: s.rssBytes } });
  };
  for (const s of servers) track(s.instanceId, s.child);
  const sampleAll = () => {
    for (const { proc, u } of usage) {
      const s = procSample(proc.pid);
      if (!s) continue;
      u.lastTicks = s.cpuTicks;
      u.lastRss = s.rssBytes;
      if (u.firstRss === 0) u.firstRss = s.rssBytes;
      u.peakRss = Math.max(u.peakRss, s.rssBytes);
    }
  };

  const artilleryStarted = Date.now();
  const out = createWriteStream(artilleryLogPath);
  const overrides = scale === 1 ? [] : ['--overrides', JSON.stringify({ config: { phases } })];
  artillery = spawn(ARTILLERY, ['run', '--output', reportPath, '--target', servers[0]!.url, ...overrides, yamlPath], {
    cwd: ROOT,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track('artillery', artillery);
  const sampler = setInterval(sampleAll, 2000);
  let firstPhaseAt: number | undefined;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  let inChecks = false;
  const onLine = (line: string) => {
    const plain = stripAnsi(line);
    if (firstPhaseAt === undefined && plain.startsWith('Phase started:')) {
      firstPhaseAt = Date.now();
      if (chaos && victim) {
        const v = victim;
        const at = tether.killAt! * phasesS * 1000;
        killTimer = setTimeout(() => {
          writeFileSync(killedFile, String(Date.now()));
          killedAt = Date.now();
          log(`>> chaos: SIGKILL ${v.instanceId} (pid ${v.child.pid}) at ${((killedAt - firstPhaseAt!) / 1000).toFixed(1)} s`);
          void v.kill();
        }, at);
      }
    }
    if (plain.startsWith('Checks:')) inChecks = true;
    const interesting = plain.startsWith('Phase ') || plain.startsWith('[tether-load]') || inChecks || /error|warn|fail/i.test(plain);
    if (verbose || interesting) log(`  | ${plain}`);
  };
  for (const stream of [artillery.stdout!, artillery.stderr!]) {
    let buf = '';
    stream.on('data', (d: Buffer) => {
      out.write(d);
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
  }
  const deadline = setTimeout(() => {
    broken.push(`Artillery did not finish within ${deadlineMs / 1000} s: stopped`);
    log(`!! deadline: stopping Artillery (pid ${artillery?.pid})`);
    artillery?.kill('SIGTERM');
    setTimeout(() => artillery && artillery.exitCode === null && artillery.signalCode === null && artillery.kill('SIGKILL'), 5000);
  }, deadlineMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => artillery!.once('exit', (c, s) => resolve([c, s])));
  clearTimeout(deadline);
  if (killTimer) clearTimeout(killTimer);
  clearInterval(sampler);
  out.end();
  if (interrupted) return 130;
  const machineEnd = machineTicks();
  const artillerySeconds = (Date.now() - artilleryStarted) / 1000;
  if (chaos && killedAt === undefined) broken.push('chaos: the kill never happened (the phases did not run long enough)');

  // Survivors must still be ready (store reachable, subscribed) after the load.
  for (const s of servers) {
    if (s === victim) continue;
    if (s.child.exitCode !== null || s.child.signalCode !== null) continue;
    try {
      const res = await fetch(`${s.url}/ready`);
      if (!res.ok) broken.push(`${s.instanceId} /ready answered ${res.status} after the run: ${await res.text()}`);
    } catch (err) {
      broken.push(`${s.instanceId} /ready failed after the run: ${String(err)}`);
    }
  }

  // ---- results ----
  let report: Report | undefined;
  try {
    report = JSON.parse(readFileSync(reportPath, 'utf8')) as Report;
  } catch {
    broken.push(`Artillery wrote no report (exit code ${code}, signal ${signal}); its log:\n${tail(readFileSync(artilleryLogPath, 'utf8'), 40)}`);
  }
  const artilleryExit = code ?? 2;
  if (report === undefined || signal !== null) return finish(2);
  if (artilleryExit !== 0 && artilleryExit !== 1) broken.push(`Artillery exited with ${artilleryExit}`);

  const c = report.aggregate.counters;
  const sm = report.aggregate.summaries;
  const requests = c['tether.requests'] ?? 0;
  const errors = c['tether.errors'] ?? 0;
  const failures: string[] = [];
  const lines: string[] = [];
  lines.push(`== ${profile}: ${servers.length} instances on Redis, artillery ${artillerySeconds.toFixed(0)} s, total ${((Date.now() - started) / 1000).toFixed(0)} s ==`);
  lines.push(`virtual users: created ${c['vusers.created'] ?? 0}, completed ${c['vusers.completed'] ?? 0}, failed ${c['vusers.failed'] ?? 0}`);
  lines.push(`requests ${requests}: admitted ${c['tether.admitted'] ?? 0}, expected refusals (rate_limited) ${c['tether.rate_limited'] ?? 0}`);
  lines.push(`errors ${errors} (${requests > 0 ? ((100 * errors) / requests).toFixed(3) : '-'}% of requests)`);
  const kinds = Object.entries(c).filter(([k]) => k.startsWith('tether.error_kind.'));
  if (kinds.length > 0) lines.push(`  error kinds: ${kinds.map(([k, v]) => `${k.slice('tether.error_kind.'.length)} ${v}`).join(', ')}`);
  lines.push(`rtt ms (request → res, one connection): ${hist(sm['tether.rtt'])}`);
  if (sm['tether.rtt_resumed']) lines.push(`rtt ms of requests re-sent across a resume: ${hist(sm['tether.rtt_resumed'])}`);
  lines.push(`connect ms (first hello → welcome): ${hist(sm['tether.connect_ms'])}`);
  if (sm['tether.broadcast_ms']) lines.push(`broadcast ms (chat.send → own copy): ${hist(sm['tether.broadcast_ms'])}`);
  if (sm['tether.cross_instance_ms']) lines.push(`cross-instance delivery ms (chat.send → copy on the other instance): ${hist(sm['tether.cross_instance_ms'])}`);
  if (c['tether.msgs'] !== undefined) lines.push(`messages received ${c['tether.msgs']}`);
  if (c['tether.resumes'] !== undefined || sm['tether.resume_ms']) {
    lines.push(`resumes ${c['tether.resumes'] ?? 0}; resume ms (connection lost → resumed welcome): ${hist(sm['tether.resume_ms'])}`);
    if (sm['tether.failover_ms']) lines.push(`  of which unplanned (connection lost without drop()): ${hist(sm['tether.failover_ms'])}`);
    lines.push(`  reconnect handshake ms (socket created → resumed welcome): ${hist(sm['tether.resume_handshake_ms'])}`);
  }
  if (chaos) lines.push(`chaos: killed ${victim?.instanceId} at ${killedAt && firstPhaseAt ? ((killedAt - firstPhaseAt) / 1000).toFixed(1) : '?'} s; closes and refused connects on it after the kill (expected): ${c['tether.chaos_closes'] ?? 0}`);

  // Limiter check.
  let limiter: Record<string, unknown> | undefined;
  if (tether.limit) {
    const rate = Number(serverEnv.RL_IP_RATE);
    const burst = Number(serverEnv.RL_IP_BURST);
    const records = readRecords();
    const admitted = records.filter((x) => x.a);
    const refused = records.length - admitted.length;
    const ideal = idealAdmitted(records, rate, burst);
    const first = Math.min(...records.map((x) => x.s));
    const last = Math.max(...records.map((x) => x.r));
    const windows = [50, 100, 250, 500, 1000, 2000, 5000, 10_000, last + 1 - first];
    let worst = { windowMs: 0, admitted: 0, bound: 0, ratio: 0 };
    for (const w of windows) {
      const got = maxAdmittedInWindow(admitted, w);
      const bound = burst + (rate * w) / 1000;
      if (got / bound > worst.ratio) worst = { windowMs: w, admitted: got, bound, ratio: got / bound };
      if (got > bound) failures.push(`limiter: ${got} requests admitted within ${w} ms > burst + rate*T = ${bound}`);
    }
    const minRatio = tether.limit.minAdmitRatio ?? 0.9;
    const minRefused = tether.limit.minRefused ?? 1;
    if (admitted.length < minRatio * ideal) failures.push(`limiter: admitted ${admitted.length} < ${minRatio} x ${ideal} (what an ideal bucket admits)`);
    if (refused < minRefused) failures.push(`limiter: only ${refused} requests refused (< ${minRefused}): the burst never went over the limit`);
    if (records.length !== requests) failures.push(`limiter: ${records.length} request records for ${requests} requests`);
    limiter = { scope: 'ip', rate, burst, requests: records.length, admitted: admitted.length, refused, idealAdmitted: ideal, worstWindow: worst };
    lines.push(`limiter (ip key ${rate}/s burst ${burst}): ${records.length} requests over ${((last - first) / 1000).toFixed(1)} s, admitted ${admitted.length}, refused ${refused} (${((100 * refused) / Math.max(1, records.length)).toFixed(1)}%); an ideal bucket admits ${ideal} (refuses ${((100 * (records.length - ideal)) / Math.max(1, records.length)).toFixed(1)}%)`);
    lines.push(`  tightest window: ${worst.admitted} admitted within ${worst.windowMs} ms, bound burst + rate*T = ${fmt(worst.bound, 0)} (${(100 * worst.ratio).toFixed(1)}%)`);
  }

  const elapsedTicks = Math.max(1, (Date.now() - artilleryStarted) / 1000) * CLK_TCK;
  const usageLine = usage
    .map(({ u }) => `${u.name} ${((100 * (u.lastTicks - u.startTicks)) / elapsedTicks).toFixed(0)}% cpu, rss ${(u.firstRss / 2 ** 20).toFixed(0)}→${(u.lastRss / 2 ** 20).toFixed(0)} MB (peak ${(u.peakRss / 2 ** 20).toFixed(0)})`)
    .join('; ');
  const machineBusy = (100 * (machineEnd.busy - machineStart.busy)) / Math.max(1, machineEnd.total - machineStart.total);
  lines.push(`processes (% of one core over the Artillery run): ${usageLine}; machine ${machineBusy.toFixed(0)}% busy (all cores)`);

  if (artilleryExit === 1) failures.unshift('an Artillery ensure gate failed (see Checks above)');
  lines.push(`gates: ${failures.length === 0 && broken.length === 0 ? 'PASS' : 'FAIL'}`);
  for (const f of [...broken, ...failures]) lines.push(`  - ${f}`);
  log('');
  for (const l of lines) log(l);
  const json = {
    profile,
    pass: failures.length === 0 && broken.length === 0,
    seconds: Math.round(artillerySeconds),
    vusers: { created: c['vusers.created'] ?? 0, completed: c['vusers.completed'] ?? 0, failed: c['vusers.failed'] ?? 0 },
    requests,
    admitted: c['tether.admitted'] ?? 0,
    rateLimited: c['tether.rate_limited'] ?? 0,
    errors,
    errorKinds: Object.fromEntries(kinds.map(([k, v]) => [k.slice('tether.error_kind.'.length), v])),
    rtt: pick(sm['tether.rtt']),
    rttResumed: pick(sm['tether.rtt_resumed']),
    resume: pick(sm['tether.resume_ms']),
    failover: pick(sm['tether.failover_ms']),
    resumeHandshake: pick(sm['tether.resume_handshake_ms']),
    connect: pick(sm['tether.connect_ms']),
    broadcast: pick(sm['tether.broadcast_ms']),
    crossInstance: pick(sm['tether.cross_instance_ms']),
    messages: c['tether.msgs'] ?? 0,
    chaosCloses: c['tether.chaos_closes'],
    limiter,
    machineBusyPct: Math.round(machineBusy),
    failures: [...broken, ...failures],
  };
  log(JSON.stringify(json));
  if (broken.length > 0) return finish(2);
  return finish(failures.length > 0 ? 1 : 0);
}

function pick(s: Summary | undefined): Record<string, number> | undefined {
  if (!s) return undefined;
  return { n: s.count, p50: s.median, p95: s.p95, p99: s.p99, max: s.max };
}

function finish(code: number): number {
  if (code !== 0 || keep) log(`run directory kept: ${runDir} (artillery.log, report.json)`);
  return code;
}

let exitCode = 2;
try {
  exitCode = await main();
} catch (err) {
  log(`!! the run broke: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  for (const s of servers) log(`--- ${s.instanceId} output:\n${tail(s.output())}`);
  log(`run directory kept: ${runDir}`);
  exitCode = 2;
} finally {
  await cleanup();
}
if (interrupted) exitCode = 130;
if (exitCode === 0 && !keep) rmSync(runDir, { recursive: true, force: true });
process.exit(exitCode);
