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
  /** Prometheus text exposition. */
  render(): Promise<string>;
}

/** Bounded label value for an HTTP path. */
export function pathLabel(path: string): string {
  return ['/health', '/ready', '/metrics', '/ws', '/'].includes(path) ? path : 'other';
}
