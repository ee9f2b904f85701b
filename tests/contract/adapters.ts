/**
 * The adapters every contract suite runs against. The Redis entries join this list in the
 * scale-out work; each factory returns fresh, isolated ports and a cleanup.
 */
import type { Bus } from '../../runtime/ports/bus.ts';
import { systemClock } from '../../runtime/ports/clock.ts';
import type { Presence } from '../../runtime/ports/presence.ts';
import type { RateLimiter } from '../../runtime/ports/rate-limiter.ts';
import type { SessionStore } from '../../runtime/ports/session-store.ts';
import { MemoryBusHub } from '../../runtime/store/memory/memory-bus.ts';
import { MemoryPresence } from '../../runtime/store/memory/memory-presence.ts';
import { MemoryRateLimiter } from '../../runtime/store/memory/memory-rate-limiter.ts';
import { MemorySessionStore, type StoreLimits } from '../../runtime/store/memory/memory-session-store.ts';
import { loadConfig } from '../../runtime/config.ts';
import { redisPorts } from '../../runtime/store/redis/redis-ports.ts';
import { createLogger } from '../../runtime/telemetry/logger.ts';
import { startRedis } from '../helpers/redis-server.ts';

export const LIMITS: StoreLimits = { sessionTtlS: 1, dedupeTtlS: 1, dedupeMax: 3, outboxMax: 3, roomHistoryMax: 3, roomTtlS: 1 };

export interface AdapterSet {
  /** The instance the presence adapter heartbeats for. */
  instanceId: string;
  store: SessionStore;
  presence: Presence;
  limiter: RateLimiter;
  /** Two buses as two instances would hold them. */
  buses: [Bus, Bus];
  cleanup(): Promise<void>;
}

export interface AdapterFactory {
  name: string;
  create(limits?: StoreLimits): Promise<AdapterSet>;
}

export const memoryAdapters: AdapterFactory = {
  name: 'memory',
  async create(limits = LIMITS) {
    const hub = new MemoryBusHub();
    const set: AdapterSet = {
      instanceId: 'contract',
      store: new MemorySessionStore(limits, systemClock),
      presence: new MemoryPresence(),
      limiter: new MemoryRateLimiter(systemClock),
      buses: [hub.connect(), hub.connect()],
      async cleanup() {
        await Promise.all([set.store.close(), set.presence.close(), set.limiter.close(), ...set.buses.map((b) => b.close())]);
      },
    };
    return set;
  },
};

/** Real Redis, started for the suite (or TEST_REDIS_URL); `commit` picks the commit path. */
const redisAdaptersWith = (name: string, commit: 'single' | 'split'): AdapterFactory => ({
  name,
  async create(limits = LIMITS) {
    const redis = await startRedis();
    const config = { ...loadConfig({ LOG_LEVEL: 'silent', HEARTBEAT_MS: '1000', INSTANCE_ID: 'contract', REDIS_COMMIT: commit }), ...limits, redisUrl: redis.url };
    const log = createLogger('silent', 'contract');
    const a = redisPorts(config, log);
    const b = redisPorts(config, log);
    const deadline = Date.now() + 10_000;
    while (!(a.bus.healthy() && b.bus.healthy())) {
      if (Date.now() > deadline) throw new Error('redis ports did not connect');
      await new Promise((r) => setTimeout(r, 20));
    }
    await a.store.ping();
    await (a.presence as unknown as { alive(): Promise<void> }).alive();
    return {
      instanceId: 'contract',
      store: a.store,
      presence: a.presence,
      limiter: a.limiter,
      buses: [a.bus, b.bus],
      async cleanup() {
        await Promise.all([a.close(), b.close()]);
        await redis.cleanup();
      },
    };
  },
});

export const redisAdapters = redisAdaptersWith('redis', 'single');
/** The two-step commit Redis Cluster needs, run on one Redis. */
export const redisTwoStepAdapters = redisAdaptersWith('redis, two-step commit', 'split');

export const ADAPTERS: AdapterFactory[] = [memoryAdapters, redisAdapters, redisTwoStepAdapters];
