/**
 * @module store/redis/redis-version
 * The oldest Redis Tether runs on: 7.0 (sharded pub/sub, SPUBLISH/SSUBSCRIBE, and the Lua
 * scripts' commands). An older server would accept the connection and then fail requests one by
 * one; checked at every (re)connect instead, so the instance stays not ready and says why.
 */
import type { RedisClient } from './connection.ts';

export const MIN_REDIS_VERSION = [7, 0] as const;

/** Why the server that wrote this `INFO server` text cannot be used, or undefined if it can (or does not say its version). */
export function redisVersionProblem(info: string): string | undefined {
  const m = /^redis_version:(\d+)\.(\d+)(?:\.(\d+))?/m.exec(info);
  if (!m) return undefined;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  const [minMajor, minMinor] = MIN_REDIS_VERSION;
  if (major > minMajor || (major === minMajor && minor >= minMinor)) return undefined;
  return `redis ${m[1]}.${m[2]}${m[3] === undefined ? '' : `.${m[3]}`} is older than ${minMajor}.${minMinor}`;
}

/** Asks the server its version; undefined when it will do (or could not be asked within `timeoutMs`: the next connect asks again). */
export async function checkRedisVersion(client: RedisClient, timeoutMs = 2000): Promise<string | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const info = await Promise.race([client.info('server'), new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)))]);
    return info === undefined ? undefined : redisVersionProblem(info);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
