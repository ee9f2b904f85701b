/**
 * @module store/gcra
 * One GCRA step, shared by the memory limiter and mirrored by the Redis script.
 */
import type { Limit } from '../config.ts';

/**
 * @param tat - the key's theoretical arrival time (ms), or `now` for an unknown key
 * @returns whether one more request is admitted, the new arrival time if it is, and when to retry if not
 */
export function gcra(tat: number, now: number, limit: Limit): { ok: boolean; tat: number; retryAfterMs: number } {
  const interval = 1000 / limit.rate;
  const next = Math.max(tat, now) + interval;
  const over = next - now - limit.burst * interval;
  if (over > 0) return { ok: false, tat, retryAfterMs: Math.max(1, Math.ceil(over)) };
  return { ok: true, tat: next, retryAfterMs: 0 };
}
