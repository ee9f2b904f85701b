/**
 * @module store/redis/connection
 * The Redis connections of one instance: one for commands (auto-pipelined by node-redis) and one
 * for pub/sub. Commands fail fast while Redis is away (no offline queue) and carry a deadline, so a
 * request gets `unavailable` within seconds, never a hang; the clients reconnect with backoff and
 * jitter by themselves.
 */
import { createClient } from 'redis';
import type { Logger } from '../../telemetry/logger.ts';

/** How long one Redis call may take before the caller gives up on it. */
export const COMMAND_DEADLINE_MS = 2000;
const CONNECT_TIMEOUT_MS = 2000;
const MAX_BACKOFF_MS = 2000;

/** Exponential backoff with full jitter: 50 ms, 100 ms, ... up to 2 s. */
export function reconnectDelay(retries: number): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, 50 * 2 ** Math.min(retries, 10));
  return Math.floor(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export function createRedisClient(url: string, log: Logger, role: string) {
  const client = createClient({
    url,
    disableOfflineQueue: true,
    // Our own deadline (timedCalls) covers every call; the client's per-command timer only costs.
    commandOptions: { timeout: 0 },
    socket: { connectTimeout: CONNECT_TIMEOUT_MS, reconnectStrategy: reconnectDelay },
  });
  let down = false;
  client.on('error', (err: Error) => {
    if (!down) log.warn({ err: err.message, role }, 'redis connection lost; reconnecting');
    down = true;
  });
  client.on('ready', () => {
    if (down) log.info({ role }, 'redis connection back');
    down = false;
  });
  return client;
}

export type RedisClient = ReturnType<typeof createRedisClient>;

/** Runs one Redis call under a deadline, and reports how long it took. */
export type RedisCall = <T>(promise: Promise<T>, ms?: number) => Promise<T>;

/**
 * A RedisCall that reports each call's duration (seconds) to `observe`. One timer checks every
 * deadline (to within 100 ms), so a call costs no timer of its own on the hot path.
 */
export function timedCalls(observe: (seconds: number) => void = () => {}): RedisCall & { stop(): void } {
  const pending = new Set<{ started: number; ms: number; reject(err: Error): void }>();
  const checker = setInterval(() => {
    const now = performance.now();
    for (const entry of pending) {
      if (now - entry.started <= entry.ms) continue;
      pending.delete(entry);
      // a call that ran out of time counts too, or a stall would make the latency look better
      observe((now - entry.started) / 1000);
      entry.reject(new Error(`redis call took longer than ${entry.ms} ms`));
    }
  }, 100);
  checker.unref();
  const call = <T>(promise: Promise<T>, ms = COMMAND_DEADLINE_MS) =>
    new Promise<T>((resolve, reject) => {
      const entry = { started: performance.now(), ms, reject };
      pending.add(entry);
      const settle = () => {
        if (!pending.delete(entry)) return false;
        observe((performance.now() - entry.started) / 1000);
        return true;
      };
      promise.then(
        (value) => settle() && resolve(value),
        (err: unknown) => settle() && reject(err),
      );
    });
  return Object.assign(call, { stop: () => clearInterval(checker) });
}

/** Rejects when `promise` takes longer than the deadline (the command may still complete later). */
export function withDeadline<T>(promise: Promise<T>, ms = COMMAND_DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`redis call took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
