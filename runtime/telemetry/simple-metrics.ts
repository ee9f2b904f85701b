/**
 * @module telemetry/simple-metrics
 * A dependency-free Metrics implementation that renders Prometheus text itself.
 */
import type { Metrics, SessionOutcome } from './metrics.ts';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export class SimpleMetrics implements Metrics {
  private connections = 0;
  private ready = 0;
  private readonly counters = new Map<string, Map<string, number>>();
  private readonly histograms = new Map<string, { counts: number[]; sum: number; count: number }>();

  constructor(private readonly instanceId: string, private readonly knownRoute: (route: string) => boolean) {}

  connectionOpened(): void {
    this.connections++;
  }
  connectionClosed(): void {
    this.connections--;
  }
  setReady(ready: boolean): void {
    this.ready = ready ? 1 : 0;
  }
  messageReceived(route: string): void {
    this.inc('tether_messages_received_total', `route="${esc(this.routeLabel(route))}"`);
  }
  messageSent(kind: 'res' | 'msg'): void {
    this.inc('tether_messages_sent_total', `kind="${kind}"`);
  }
  rateLimited(scope: string): void {
    this.inc('tether_rate_limited_total', `scope="${scope}"`);
  }
  session(outcome: SessionOutcome): void {
    this.inc('tether_sessions_total', `outcome="${outcome}"`);
  }
  httpRequest(path: string, status: number): void {
    this.inc('tether_http_requests_total', `path="${esc(path)}",status="${status}"`);
  }
  handlerDuration(route: string, seconds: number): void {
    const label = this.routeLabel(route);
    let h = this.histograms.get(label);
    if (!h) this.histograms.set(label, (h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 }));
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) h.counts[i]!++;
    h.sum += seconds;
    h.count++;
  }

  async render(): Promise<string> {
    const lines: string[] = [];
    lines.push('# TYPE target_info gauge', `target_info{service_name="tether",service_instance_id="${esc(this.instanceId)}"} 1`);
    lines.push('# TYPE tether_connections gauge', `tether_connections ${this.connections}`);
    lines.push('# TYPE tether_ready gauge', `tether_ready ${this.ready}`);
    for (const [name, series] of this.counters) {
      lines.push(`# TYPE ${name} counter`);
      for (const [labels, value] of series) lines.push(`${name}{${labels}} ${value}`);
    }
    lines.push('# TYPE tether_handler_duration_seconds histogram');
    for (const [route, h] of this.histograms) {
      const l = `route="${esc(route)}"`;
      BUCKETS.forEach((b, i) => lines.push(`tether_handler_duration_seconds_bucket{${l},le="${b}"} ${h.counts[i]}`));
      lines.push(`tether_handler_duration_seconds_bucket{${l},le="+Inf"} ${h.count}`);
      lines.push(`tether_handler_duration_seconds_sum{${l}} ${h.sum}`, `tether_handler_duration_seconds_count{${l}} ${h.count}`);
    }
    return lines.join('\n') + '\n';
  }

  private routeLabel(route: string): string {
    return this.knownRoute(route) ? route : 'unknown';
  }

  private inc(name: string, labels: string): void {
    let series = this.counters.get(name);
    if (!series) this.counters.set(name, (series = new Map()));
    series.set(labels, (series.get(labels) ?? 0) + 1);
  }
}
