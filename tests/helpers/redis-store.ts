/**
 * A RedisSessionStore on a real redis-server of its own, with the client and timers it needs, for
 * contract tests that also look at the keys it writes.
 */
import { loadConfig } from '../../runtime/config.ts';
import type { StoreLimits } from '../../runtime/store/memory/memory-session-store.ts';
import { createRedisClient, type RedisClient, timedCalls } from '../../runtime/store/redis/connection.ts';
import { RedisSessionStore } from '../../runtime/store/redis/redis-session-store.ts';
import { createLogger } from '../../runtime/telemetry/logger.ts';
import { startRedis } from './redis-server.ts';

export interface TestRedisStore {
  client: RedisClient;
  store: RedisSessionStore;
  /** The store's timed Redis calls, for another store on the same client. */
  call: ReturnType<typeof timedCalls>;
  /** Closes the store and client and removes what the test wrote. */
  cleanup(): Promise<void>;
}

export async function startRedisStore(limits: StoreLimits, mode: 'single' | 'split'): Promise<TestRedisStore> {
  const redis = await startRedis();
  const config = { ...loadConfig({ LOG_LEVEL: 'silent' }), ...limits, redisUrl: redis.url };
  const client = createRedisClient(config.redisUrl, createLogger('silent', 'test'), 'test');
  await client.connect();
  const call = timedCalls();
  const store = new RedisSessionStore(client, limits, call, mode);
  return {
    client,
    store,
    call,
    async cleanup() {
      await store.close();
      call.stop();
      await client.quit();
      await redis.cleanup();
    },
  };
}
