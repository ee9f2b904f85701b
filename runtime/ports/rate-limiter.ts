/**
 * @module ports/rate-limiter
 * Token buckets for several scopes checked at once: tokens are taken only when every scope admits.
 */
import type { Limit } from '../config.ts';

export type RateScope = 'user' | 'ip' | 'route' | 'conn';

export interface RateCheck {
  scope: RateScope;
  key: string;
  limit: Limit;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterMs: number; scopes: RateScope[] };

export interface RateLimiter {
  /**
   * Admits (taking one token from each bucket) or refuses (taking none). An in-process limiter
   * answers at once, without a promise, so a request on the embedded store stays synchronous.
   */
  check(checks: RateCheck[]): RateDecision | Promise<RateDecision>;
  close(): Promise<void>;
}
