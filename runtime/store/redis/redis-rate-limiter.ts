/**
 * @module store/redis/redis-rate-limiter
 * The RateLimiter on Redis: one script call checks every scope of a request, on Redis's clock.
 * All bucket keys share the `{rl}` hash tag, so on a Cluster they sit in one slot (or give the
 * limiter a Redis of its own).
 */
import type { RateCheck, RateDecision, RateLimiter } from '../../ports/rate-limiter.ts';
import type { RedisCall, RedisClient } from './connection.ts';
import { rateLimitKey } from './keys.ts';
import { runScript } from './scripts.ts';

export class RedisRateLimiter implements RateLimiter {
  constructor(private readonly client: RedisClient, private readonly call: RedisCall) {}

  async check(checks: RateCheck[]): Promise<RateDecision> {
    const keys = checks.map((c) => rateLimitKey(c.scope, c.key));
    const args = checks.flatMap((c) => [c.limit.rate, c.limit.burst]);
    const reply = (await this.call(runScript(this.client, 'rate-limit', keys, args))) as number[];
    if (reply[0] === 1) return { ok: true };
    return { ok: false, retryAfterMs: Math.max(1, reply[1]!), scopes: reply.slice(2).map((i) => checks[i - 1]!.scope) };
  }

  async close(): Promise<void> {}
}
