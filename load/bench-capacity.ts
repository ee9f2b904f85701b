/**
 * `npm run bench:capacity`: how many idle sessions one instance holds, what each costs (RSS and V8
 * heap, read from the instance's own /metrics), and how long 10k sessions take to resume on the
 * surviving instances after their instance is killed with SIGKILL. Runs on Redis (the production
 * store) with every RL_*_RATE=0, spreads clients over 127.0.0.x source addresses so ports do not
 * run out, and raises `ulimit -n` for the processes it starts. Prints one JSON line per measurement
 * and a summary line. `--gate` exits 1 when a target is missed. Flags: --max N (default 50000),
 * --resume N (default 10000).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { forceGc } from './lib/force-gc.ts';
import { freePort } from './lib/procs.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Processes get `ulimit -n` raised to the hard limit; a sandbox may cap that (20,000 here, with no CAP_SYS_RESOURCE to lift it). */
const FD_LIMIT = 'hard';
const flag = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const MAX = flag('max', 50_000);
const RESUME = flag('resume', 10_000);
const GATE = process.argv.includes('--gate');
const TARGETS = { connections: 50_000, heapBytesPerConnection: 8 * 1024, resumeMs: 10_000 };
const children: ChildProcess[] = [];

/** Spawns `node …` with a raised file-descriptor limit. */
function spawnWithFds(args: string[], env: Record<string, string> = {}, stdio: 'pipe' | 'ignore' = 'ignore'): ChildProcess {
  const quoted = args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const child = spawn('bash', ['-c', `ulimit -n ${FD_LIMIT} && exec '${process.execPath}' ${quoted}`], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: [stdio === 'pipe' ? 'pipe' : 'ignore', stdio === 'pipe' ? 'pipe' : 'ignore', 'inherit'],
  });
  children.push(child);
  return child;
}

async function waitFor(url: string, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if ((await fetch(url).catch(() => null))?.ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer`);
}

async function startRedis(): Promise<string> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tether-capacity-'));
  const redis = spawn('bash', ['-c', `ulimit -n ${FD_LIMIT} && exec redis-server --port ${port} --bind 127.0.0.1 --dir ${dir} --save '' --appendonly no --maxclients 100000`], { stdio: 'ignore' });
  children.push(redis);
  await new Promise((r) => setTimeout(r, 300));
  return `redis://127.0.0.1:${port}`;
}

async function startInstance(redisUrl: string, id: string): Promise<{ port: number; inspectPort: number; child: ChildProcess }> {
  const port = await freePort();
  const inspectPort = await freePort();
  const child = spawnWithFds([`--inspect=127.0.0.1:${inspectPort}`, '--import', 'tsx', 'runtime/main.ts'], {
    PORT: String(port),
    HOST: '127.0.0.1',
    REDIS_URL: redisUrl,
    INSTANCE_ID: id,
    LOG_LEVEL: 'error',
    RL_USER_RATE: '0',
    RL_IP_RATE: '0',
    RL_CONN_RATE: '0',
    HELLO_TIMEOUT_MS: '30000',
  });
  await waitFor(`http://127.0.0.1:${port}/ready`);
  return { port, inspectPort, child };
}

interface Loadgen {
  child: ChildProcess;
  command(cmd: object): void;
  next(event: string): Promise<Record<string, number>>;
}

function startLoadgen(): Loadgen {
  const child = spawnWithFds(['--import', 'tsx', 'load/capacity-client.ts'], {}, 'pipe');
  const waiting: { event: string; resolve(v: Record<string, number>): void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const msg = JSON.parse(line) as { event: string } & Record<string, number>;
    const i = waiting.findIndex((w) => w.event === msg.event);
    if (i >= 0) waiting.splice(i, 1)[0]!.resolve(msg);
  });
  return {
    child,
    command: (cmd) => child.stdin!.write(`${JSON.stringify(cmd)}\n`),
    next: (event) => new Promise((resolve) => waiting.push({ event, resolve })),
  };
}

/** Live memory of an instance: settle, force a full GC, then read its own /metrics. */
async function memory(instance: { port: number; inspectPort: number }): Promise<{ rss: number; heap: number }> {
  await new Promise((r) => setTimeout(r, 2000));
  await forceGc(instance.inspectPort);
  const text = await (await fetch(`http://127.0.0.1:${instance.port}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { rss: read('process_resident_memory_bytes'), heap: read('nodejs_heap_used_bytes') };
}

function stopAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.on('exit', stopAll);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));
const deadline = setTimeout(() => {
  console.error('bench-capacity: took longer than 10 minutes; stopping');
  process.exit(2);
}, 10 * 60_000);
deadline.unref();

/** Source addresses: about 28k ephemeral ports each, so 8 cover 200k sockets. */
const ADDRESSES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);
/** One process holds at most the hard fd limit of sockets: the instance is the ceiling. */
const HARD_FD_LIMIT = Number(spawnSync('bash', ['-c', 'ulimit -Hn']).stdout.toString().trim()) || 1024;
const INSTANCE_CEILING = HARD_FD_LIMIT - 200;
const LOADGENS = Math.max(2, Math.ceil(Math.min(MAX, INSTANCE_CEILING) / (HARD_FD_LIMIT - 500)) + 1);

// ---- capacity and memory per connection ----
const redisUrl = await startRedis();
const a = await startInstance(redisUrl, 'capacity-a');
const loadgens = Array.from({ length: LOADGENS }, startLoadgen);
const baseline = await memory(a);
const rows: Record<string, number>[] = [];
let open = 0;
const steps = [...new Set([1_000, 10_000, 50_000].map((n) => Math.min(n, MAX, INSTANCE_CEILING)))];
if (INSTANCE_CEILING < Math.min(MAX, TARGETS.connections)) {
  console.log(JSON.stringify({ bench: 'capacity-note', note: `this machine caps a process at ${HARD_FD_LIMIT} file descriptors (ulimit -Hn), so one instance cannot hold more than about ${INSTANCE_CEILING} sockets here` }));
}
for (const step of steps) {
  const add = step - open;
  const per = Math.ceil(add / LOADGENS);
  if (add <= 0) continue;
  const started = Date.now();
  const results = await Promise.all(
    loadgens.map((lg, i) => {
      const done = lg.next('opened');
      lg.command({ cmd: 'open', url: `ws://127.0.0.1:${a.port}/ws`, count: per, addresses: ADDRESSES.filter((_, j) => j % LOADGENS === i) });
      return done;
    }),
  );
  open = results.reduce((sum, r) => sum + r.count!, 0);
  const failed = results.reduce((sum, r) => sum + (r.failed ?? 0), 0);
  const mem = await memory(a);
  const row = {
    connections: open,
    failed,
    openSeconds: Math.round((Date.now() - started) / 100) / 10,
    rssMiB: Math.round(mem.rss / 2 ** 20),
    heapMiB: Math.round(mem.heap / 2 ** 20),
    rssBytesPerConnection: Math.round((mem.rss - baseline.rss) / open),
    heapBytesPerConnection: Math.round((mem.heap - baseline.heap) / open),
  };
  rows.push(row);
  console.log(JSON.stringify({ bench: 'capacity', ...row }));
}
for (const lg of loadgens) lg.command({ cmd: 'close' });
a.child.kill('SIGKILL');

// ---- resume after SIGKILL ----
const victim = await startInstance(redisUrl, 'resume-victim');
const survivors = [await startInstance(redisUrl, 'resume-b'), await startInstance(redisUrl, 'resume-c')];
const resumers = Array.from({ length: LOADGENS }, startLoadgen);
await Promise.all(
  resumers.map((lg, i) => {
    const done = lg.next('opened');
    lg.command({ cmd: 'open', url: `ws://127.0.0.1:${victim.port}/ws`, count: Math.ceil(RESUME / LOADGENS), addresses: ADDRESSES.filter((_, j) => j % LOADGENS === i) });
    lg.command({ cmd: 'failover', url: `ws://127.0.0.1:${survivors[i % survivors.length]!.port}/ws` });
    return done;
  }),
);
const resumed = Promise.all(resumers.map((lg) => lg.next('resumed')));
const killedAt = Date.now();
victim.child.kill('SIGKILL');
const done = await resumed;
const resume = {
  sessions: done.reduce((sum, r) => sum + r.count!, 0),
  allResumedMs: Math.max(...done.map((r) => r.lastAt!)) - killedAt,
  firstResumedMs: Math.min(...done.map((r) => r.firstAt!)) - killedAt,
};
console.log(JSON.stringify({ bench: 'resume-after-kill', ...resume }));

const largest = rows.at(-1)! as { connections: number; heapBytesPerConnection: number; rssBytesPerConnection: number };
const pass = largest.connections >= Math.min(MAX, TARGETS.connections, INSTANCE_CEILING) && largest.heapBytesPerConnection < TARGETS.heapBytesPerConnection && resume.allResumedMs < TARGETS.resumeMs;
console.log(JSON.stringify({ bench: 'capacity-summary', fdHardLimit: HARD_FD_LIMIT, maxConnections: largest.connections, heapBytesPerConnection: largest.heapBytesPerConnection, rssBytesPerConnection: largest.rssBytesPerConnection, resume10kMs: resume.allResumedMs, targets: TARGETS, pass }));
stopAll();
process.exit(GATE && !pass ? 1 : 0);
