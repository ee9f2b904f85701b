/**
 * @module server/readiness
 * Whether this instance can take sessions: store reachable, pub/sub subscribed, not draining.
 * Polled in the background so `/ready` and every upgrade answer at once from the last reading.
 */
import type { Bus } from '../ports/bus.ts';
import { type SessionStore, StoreUnusableError } from '../ports/session-store.ts';
import type { Metrics } from '../telemetry/metrics.ts';

const POLL_MS = 500;
const PING_TIMEOUT_MS = 1000;

export interface ReadinessReport {
  ready: boolean;
  checks: { store: string; pubsub: string; draining: string };
}

export class Readiness {
  private store = 'ok';
  private draining = false;
  private timer: NodeJS.Timeout | undefined;
  private lastReady: boolean | undefined;

  constructor(private readonly sessionStore: SessionStore, private readonly bus: Bus, private readonly metrics: Metrics) {}

  start(): void {
    void this.poll();
    this.timer = setInterval(() => void this.poll(), POLL_MS);
    this.timer.unref();
    this.current();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** From now on: not ready, for good. */
  drain(): void {
    this.draining = true;
    this.current();
  }

  current(): ReadinessReport {
    const checks = { store: this.store, pubsub: this.bus.healthy() ? 'ok' : 'connecting', draining: this.draining ? 'draining' : 'ok' };
    const ready = checks.store === 'ok' && checks.pubsub === 'ok' && !this.draining;
    if (ready !== this.lastReady) {
      this.lastReady = ready;
      this.metrics.setReady(ready);
    }
    return { ready, checks };
  }

  private async poll(): Promise<void> {
    let timeout: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.sessionStore.ping(),
        new Promise((_, reject) => (timeout = setTimeout(() => reject(new Error('timeout')), PING_TIMEOUT_MS))),
      ]);
      this.store = 'ok';
    } catch (err) {
      this.store = err instanceof StoreUnusableError ? err.reason : 'unreachable';
    } finally {
      clearTimeout(timeout);
    }
    this.current();
  }
}
