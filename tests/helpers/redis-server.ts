/**
 * A real redis-server for tests: started from PATH on a free port (append-only, fsync always, as
 * SPEC asks of tests that stop Redis), or the one in TEST_REDIS_URL for tests that do not stop it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';
import { freePort } from './server-process.ts';

export interface TestRedis {
  url: string;
  port: number;
  /** Stops the server (SIGKILL when `hard`), keeping its data directory. */
  stop(hard?: boolean): Promise<void>;
  /** Starts it again on the same port and data directory (only for servers we started). */
  restart(): Promise<void>;
  /** Removes everything this test wrote (FLUSHALL on our own server; nothing on a shared one). */
  cleanup(): Promise<void>;
}

const INSTALL_HINT = 'redis-server (7 or later) is not on PATH. Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis). TEST_REDIS_URL can stand in only for the tests that never stop Redis; the fault tests always start their own.';

export function redisServerAvailable(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

async function waitForPing(url: string, deadlineMs = 10_000): Promise<void> {
  const client = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: 500 } });
  client.on('error', () => {});
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      await client.connect();
      await client.ping();
      await client.quit();
      return;
    } catch {
      if (client.isOpen) await client.quit().catch(() => {});
      if (Date.now() > until) throw new Error(`redis at ${url} did not answer within ${deadlineMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Starts a private redis-server. `own: false` allows TEST_REDIS_URL instead (for tests that never
 * stop Redis); tests that stop or kill Redis always get their own.
 */
export async function startRedis(options: { own?: boolean } = {}): Promise<TestRedis> {
  const shared = process.env.TEST_REDIS_URL;
  if (!options.own && shared && !redisServerAvailable()) {
    await waitForPing(shared);
    return { url: shared, port: Number(new URL(shared).port || 6379), stop: async () => {}, restart: async () => {}, cleanup: async () => {} };
  }
  if (!redisServerAvailable()) throw new Error(INSTALL_HINT);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tether-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess;
  const launch = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--maxmemory-policy', 'noeviction', '--loglevel', 'warning'], { stdio: 'ignore' });
    await waitForPing(url);
  };
  await launch();
  const stop = async (hard = false) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(hard ? 'SIGKILL' : 'SIGTERM');
    await exited;
  };
  return {
    url,
    port,
    stop,
    restart: launch,
    async cleanup() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
