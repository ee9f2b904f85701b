/**
 * `npm run cluster -- --instances 3`: a local cluster. Starts redis-server from PATH on a free port
 * (or uses REDIS_URL), then N instances on consecutive ports from PORT (default 8080), prints their
 * URLs, and stops everything (by PID) on Ctrl-C or SIGTERM to this script (not to `npm`, which
 * does not pass SIGTERM on: the script prints its own PID).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const raw = i >= 0 ? process.argv[i + 1] : undefined;
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    process.stderr.write(`--${name} must be a positive integer\n`);
    process.exit(2);
  }
  return value;
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

const instances = arg('instances', 3);
const basePort = Number(process.env.PORT ?? 8080);
const children: ChildProcess[] = [];
let redisUrl = process.env.REDIS_URL;
let redisDir: string | undefined;

if (!redisUrl) {
  const port = await freePort();
  redisDir = mkdtempSync(join(tmpdir(), 'tether-cluster-'));
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', redisDir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction', '--save', ''], { stdio: 'ignore' });
  // started, or not on PATH: known before any instance starts (none is left behind)
  const started = await new Promise<boolean>((resolve) => {
    redis.once('spawn', () => resolve(true));
    redis.once('error', () => resolve(false));
  });
  if (!started) {
    rmSync(redisDir, { recursive: true, force: true });
    process.stderr.write('redis-server is not on PATH: install it (Redis 7 or later; apt-get install redis-server) or set REDIS_URL\n');
    process.exit(1);
  }
  children.push(redis);
  redisUrl = `redis://127.0.0.1:${port}`;
  process.stdout.write(`redis      ${redisUrl} (pid ${redis.pid}, data in ${redisDir})\n`);
} else {
  process.stdout.write(`redis      ${redisUrl} (from REDIS_URL)\n`);
}

for (let i = 0; i < instances; i++) {
  const port = basePort + i;
  const child = spawn(process.execPath, ['--import', 'tsx', 'runtime/main.ts'], {
    env: { ...process.env, REDIS_URL: redisUrl, PORT: String(port), INSTANCE_ID: `local-${i + 1}` },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  children.push(child);
  process.stdout.write(`instance ${i + 1} http://127.0.0.1:${port}  ws://127.0.0.1:${port}/ws (pid ${child.pid})\n`);
}
process.stdout.write(`stop with Ctrl-C, or kill ${process.pid} (this script; signalling npm does not reach it)\n`);

/** Whether a child is gone (an exit code, or the signal that ended it, e.g. after kill -9). */
const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;

let stopping = false;
function stopAll(signal: NodeJS.Signals) {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`\n${signal}: stopping ${children.length} processes\n`);
  // instances first (they drain), Redis last
  const redis = process.env.REDIS_URL ? undefined : children[0];
  const rest = children.filter((c) => c !== redis);
  const stopped = (c: ChildProcess) => new Promise((r) => (exited(c) ? r(null) : (c.once('exit', r), c.kill('SIGTERM'))));
  Promise.all(rest.map(stopped))
    .then(() => (redis ? stopped(redis) : null))
    .then(() => {
      if (redisDir) rmSync(redisDir, { recursive: true, force: true });
      process.exit(0);
    });
  setTimeout(() => {
    for (const c of children) if (!exited(c)) c.kill('SIGKILL');
    process.exit(1);
  }, 15_000).unref();
}
process.on('SIGINT', () => stopAll('SIGINT'));
process.on('SIGTERM', () => stopAll('SIGTERM'));
