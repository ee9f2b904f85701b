/**
 * @module server/ports
 * The set of adapters one instance runs on, and the embedded (in-memory) default.
 */
import type { TetherConfig } from '../config.ts';
import type { Bus } from '../ports/bus.ts';
import type { Clock } from '../ports/clock.ts';
import { systemClock } from '../ports/clock.ts';
import type { Presence } from '../ports/presence.ts';
import type { RateLimiter } from '../ports/rate-limiter.ts';
import type { SessionStore } from '../ports/session-store.ts';
import { MemoryBusHub } from '../store/memory/memory-bus.ts';
import { MemoryPresence } from '../store/memory/memory-presence.ts';
import { MemoryRateLimiter } from '../store/memory/memory-rate-limiter.ts';
import { MemorySessionStore } from '../store/memory/memory-session-store.ts';

export interface TetherPorts {
  store: SessionStore;
  bus: Bus;
  presence: Presence;
  limiter: RateLimiter;
  clock: Clock;
  /** Closes every adapter and the connections they share. */
  close(): Promise<void>;
}

/** The embedded store: one process, no other service needed. */
export function memoryPorts(config: TetherConfig, clock: Clock = systemClock): TetherPorts {
  const store = new MemorySessionStore(config, clock);
  const bus = new MemoryBusHub().connect();
  const presence = new MemoryPresence();
  const limiter = new MemoryRateLimiter(clock);
  return {
    store,
    bus,
    presence,
    limiter,
    clock,
    async close() {
      await Promise.allSettled([store.close(), bus.close(), presence.close(), limiter.close()]);
    },
  };
}
