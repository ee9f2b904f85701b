/**
 * @module store/redis/redis-rate-limiter
 * The RateLimiter on Redis: every check of every request issued in the same event-loop turn goes
 * to Redis as one script call, decided in order, on Redis's clock. All bucket keys share the `{rl}`
 * hash tag, so on a Cluster they sit in one slot (or give the limiter a Redis of its own).
 */
import type { RateCheck, RateDecision, RateLimiter } from '../../ports/rate-limiter.ts';
import type { RedisCall, RedisClient } from './connection.ts';
import { rateLimitKey } from './keys.ts';
import { LoopBatch, type Pending } from './loop-batch.ts';
import { runScript } from './scripts.ts';

const ADMITTED: RateDecision = { ok: true };

export class RedisRateLimiter implements RateLimiter {
  private readonly checks = new LoopBatch<RateCheck[], RateDecision>((batch) => this.flush(batch));

  constructor(private readonly client: RedisClient, private readonly call: RedisCall) {}

  check(checks: RateCheck[]): Promise<RateDecision> {
    return this.checks.add(checks);
  }

  async close(): Promise<void> {}

  private async flush(batch: Pending<RateCheck[], RateDecision>[]): Promise<void> {
    const keys: string[] = [];
    const args: (string | number)[] = [batch.length];
    for (const { input: checks } of batch) {
      args.push(checks.length);
      for (const c of checks) {
        keys.push(rateLimitKey(c.scope, c.key));
        args.push(c.limit.rate, c.limit.burst);
      }
    }
    const reply = (await this.call(runScript(this.client, 'rate-limit', keys, args))) as number[];
    let i = 0;
    for (const p of batch) {
      const admitted = reply[i++] === 1;
      const wait = reply[i++]!;
      const refusing = reply[i++]!;
      const scopes = reply.slice(i, i + refusing).map((index) => p.input[index - 1]!.scope);
      i += refusing;
      p.resolve(admitted ? ADMITTED : { ok: false, retryAfterMs: Math.max(1, wait), scopes });
    }
  }
}
