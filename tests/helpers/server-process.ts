/**
 * Starts real Tether server processes for end-to-end tests, on free ports, and stops them by PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  await once(server, 'close');
  return port;
}

export interface ServerProcess {
  port: number;
  url: string;
  wsUrl: string;
  instanceId: string;
  child: ChildProcess;
  /** Everything the process wrote, for assertions and for debugging failures. */
  output(): string;
  /** SIGTERM (drain) and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
}

/** Fast timeouts and no limits unless a test asks for them. */
export const TEST_ENV: Record<string, string> = {
  LOG_LEVEL: 'warn',
  HEARTBEAT_MS: '1000',
  HELLO_TIMEOUT_MS: '1000',
  DRAIN_TIMEOUT_MS: '3000',
  RL_USER_RATE: '0',
  RL_IP_RATE: '0',
  RL_CONN_RATE: '0',
};

let started = 0;

/**
 * Starts `node --import tsx runtime/main.ts` with `env` on a free port and waits until /health answers.
 */
export async function startServer(env: Record<string, string> = {}): Promise<ServerProcess> {
  const port = await freePort();
  const instanceId = env.INSTANCE_ID ?? `test-${process.pid}-${++started}`;
  let log = '';
  const child = spawn(process.execPath, ['--import', 'tsx', 'runtime/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...TEST_ENV, HOST: '127.0.0.1', ...env, PORT: String(port), INSTANCE_ID: instanceId },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} before it was up:\n${log}`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not come up within 20 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    instanceId,
    child,
    output: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
