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

export const LIMITS: StoreLimits = { sessionTtlS: 1, dedupeTtlS: 1, dedupeMax: 3, outboxMax: 3, roomHistoryMax: 3, roomTtlS: 1 };

export interface AdapterSet {
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

export const ADAPTERS: AdapterFactory[] = [memoryAdapters];
