/**
 * @module ports/clock
 * The one source of time for the runtime, so tests can control it.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
