/**
 * @module store/memory/memory-rate-limiter
 * The embedded RateLimiter: GCRA (a token bucket that stores one number per key, the theoretical
 * arrival time). Over any interval T one key is admitted at most `burst + rate * T` requests.
 */
import type { Clock } from '../../ports/clock.ts';
import type { RateCheck, RateDecision, RateLimiter, RateScope } from '../../ports/rate-limiter.ts';
import { gcra } from '../gcra.ts';

const SWEEP_INTERVAL_MS = 60_000;

export class MemoryRateLimiter implements RateLimiter {
  private readonly tats = new Map<string, number>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly clock: Clock) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  check(checks: RateCheck[]): RateDecision {
    const now = this.clock.now();
    const next: number[] = [];
    const refused: RateScope[] = [];
    let retryAfterMs = 0;
    for (const c of checks) {
      const key = `${c.scope}:${c.key}`;
      const verdict = gcra(this.tats.get(key) ?? now, now, c.limit);
      next.push(verdict.tat);
      if (!verdict.ok) {
        refused.push(c.scope);
        retryAfterMs = Math.max(retryAfterMs, verdict.retryAfterMs);
      }
    }
    if (refused.length > 0) return { ok: false, retryAfterMs, scopes: refused };
    checks.forEach((c, i) => this.tats.set(`${c.scope}:${c.key}`, next[i]!));
    return { ok: true };
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }

  /** A key whose arrival time has passed holds a full bucket: forgetting it changes nothing. */
  private sweep(): void {
    const now = this.clock.now();
    for (const [key, tat] of this.tats) if (tat <= now) this.tats.delete(key);
  }
}
