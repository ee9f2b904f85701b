/**
 * @module store/redis/redis-rate-limiter
 * The RateLimiter on Redis: every check of every request issued in the same event-loop turn goes
 * to Redis as one script call, decided in order, on Redis's clock. All bucket keys share the `{rl}`
 * hash tag, so on a Cluster they sit in one slot (or give the limiter a Redis of its own).
 */
import type { RateCheck, RateDecision, RateLimiter } from '../../ports/rate-limiter.ts';
import type { RedisCall, RedisClient } from './connection.ts';
import { rateLimitKey } from './keys.ts';
import { runScript } from './scripts.ts';

interface Pending {
  checks: RateCheck[];
  resolve(decision: RateDecision): void;
  reject(err: unknown): void;
}

const ADMITTED: RateDecision = { ok: true };

export class RedisRateLimiter implements RateLimiter {
  private batch: Pending[] = [];

  constructor(private readonly client: RedisClient, private readonly call: RedisCall) {}

  check(checks: RateCheck[]): Promise<RateDecision> {
    return new Promise((resolve, reject) => {
      this.batch.push({ checks, resolve, reject });
      if (this.batch.length === 1) process.nextTick(() => void this.flush());
    });
  }

  async close(): Promise<void> {}

  private async flush(): Promise<void> {
    const batch = this.batch;
    this.batch = [];
    const keys: string[] = [];
    const args: (string | number)[] = [batch.length];
    for (const { checks } of batch) {
      args.push(checks.length);
      for (const c of checks) {
        keys.push(rateLimitKey(c.scope, c.key));
        args.push(c.limit.rate, c.limit.burst);
      }
    }
    let reply: number[];
    try {
      reply = (await this.call(runScript(this.client, 'rate-limit', keys, args))) as number[];
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    let i = 0;
    for (const p of batch) {
      const admitted = reply[i++] === 1;
      const wait = reply[i++]!;
      const refusing = reply[i++]!;
      const scopes = reply.slice(i, i + refusing).map((index) => p.checks[index - 1]!.scope);
      i += refusing;
      p.resolve(admitted ? ADMITTED : { ok: false, retryAfterMs: Math.max(1, wait), scopes });
    }
  }
}
