/**
 * @module telemetry/metrics
 * The metrics the runtime records (SPEC section 6), behind one small interface so the runtime does
 * not care how they are exported.
 */
import type { RateScope } from '../ports/rate-limiter.ts';

export type SessionOutcome = 'new' | 'resumed' | 'expired' | 'rejected';

export interface Metrics {
  connectionOpened(): void;
  connectionClosed(): void;
  setReady(ready: boolean): void;
  messageReceived(route: string): void;
  messageSent(kind: 'res' | 'msg'): void;
  rateLimited(scope: RateScope): void;
  session(outcome: SessionOutcome): void;
  httpRequest(path: string, status: number): void;
  handlerDuration(route: string, seconds: number): void;
  /** Messages replayed on resume. */
  replayed(kind: 'direct' | 'room', count: number): void;
  /** One Redis call's duration, as the instance waited for it. */
  redisCall(seconds: number): void;
  /** From the commit that published a message to its delivery on a socket. */
  delivered(seconds: number): void;
  /** Prometheus text exposition. */
  render(): Promise<string>;
  close(): Promise<void>;
}

/** Bounded label value for an HTTP path. */
export function pathLabel(path: string): string {
  return ['/health', '/ready', '/metrics', '/ws', '/'].includes(path) ? path : 'other';
}
