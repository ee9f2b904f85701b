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
}

/** The embedded store: one process, no other service needed. */
export function memoryPorts(config: TetherConfig, clock: Clock = systemClock): TetherPorts {
  return {
    store: new MemorySessionStore(config, clock),
    bus: new MemoryBusHub().connect(),
    presence: new MemoryPresence(),
    limiter: new MemoryRateLimiter(clock),
    clock,
  };
}
