/**
 * @module store/redis/redis-ports
 * All ports on one Redis: a command connection and a pub/sub connection, opened here and closed
 * in `close()`.
 */
import type { TetherConfig } from '../../config.ts';
import { systemClock } from '../../ports/clock.ts';
import type { TetherPorts } from '../../server/ports.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { Metrics } from '../../telemetry/metrics.ts';
import { createRedisClient, timedCalls } from './connection.ts';
import { RedisBus } from './redis-bus.ts';
import { RedisPresence } from './redis-presence.ts';
import { RedisRateLimiter } from './redis-rate-limiter.ts';
import { RedisSessionStore } from './redis-session-store.ts';
import { checkRedisVersion } from './redis-version.ts';

/**
 * Connects to Redis. Resolves at once even if Redis is down: the instance then reports not ready
 * and comes up by itself when Redis does.
 */
export function redisPorts(config: TetherConfig & { redisUrl: string }, log: Logger, metrics?: Pick<Metrics, 'redisCall'>): TetherPorts {
  const call = timedCalls((seconds) => metrics?.redisCall(seconds));
  const commands = createRedisClient(config.redisUrl, log, 'commands');
  const subscriber = createRedisClient(config.redisUrl, log, 'pubsub');
  commands.connect().catch((err: Error) => log.warn({ err: err.message }, 'redis connect failed; retrying'));
  subscriber.connect().catch((err: Error) => log.warn({ err: err.message }, 'redis pubsub connect failed; retrying'));
  const store = new RedisSessionStore(commands, config, call, config.redisCommit);
  // Every (re)connect may reach another server: not ready until it has said its version.
  commands.on('ready', () => {
    store.markUnusable('checking the redis version');
    void checkRedisVersion(commands).then((problem) => {
      if (problem) log.error({ problem }, `${problem}: Tether needs Redis 7.0 or later; this instance stays not ready`);
      store.markUnusable(problem);
    });
  });
  const presence = new RedisPresence(commands, config.instanceId, config.heartbeatMs, call);
  commands.on('ready', () => void presence.alive().catch(() => {}));
  const bus = new RedisBus(commands, subscriber, log, call);
  const limiter = new RedisRateLimiter(commands, call);
  return {
    store,
    bus,
    presence,
    limiter,
    clock: systemClock,
    async close() {
      await Promise.allSettled([store.close(), bus.close(), limiter.close()]);
      await presence.close();
      await Promise.allSettled([commands.quit(), subscriber.quit()]);
    },
  };
}
