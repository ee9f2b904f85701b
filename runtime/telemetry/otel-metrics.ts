/**
 * @module telemetry/otel-metrics
 * Metrics through the OpenTelemetry SDK, exported in Prometheus text on the main port's `/metrics`
 * (the exporter's own server is not started). The resource carries `service.instance.id` =
 * INSTANCE_ID, which the exporter turns into `target_info`.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Attributes, Counter } from '@opentelemetry/api';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { RateScope } from '../ports/rate-limiter.ts';
import { LocalHistogram, type Series } from './local-histogram.ts';
import type { Metrics, SessionOutcome } from './metrics.ts';

/** Sub-millisecond to seconds: WebSocket round trips live at the low end, stalls at the high end. */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class OtelMetrics implements Metrics {
  private readonly provider: MeterProvider;
  private readonly exporter: PrometheusExporter;
  // No otel_scope_name label: one scope, and PromQL stays short.
  private readonly serializer = new PrometheusSerializer(undefined, false, undefined, false, true);
  private readonly loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  private connections = 0;
  private ready = 0;
  private sentRes = 0;
  private sentMsg = 0;
  private readonly limited: Counter;
  private readonly sessions: Counter;
  private readonly http: Counter;
  private readonly replays: Counter;
  // Histograms on hot paths (per request, per Redis call, per delivery) aggregate locally.
  private readonly handler = new LocalHistogram('tether_handler_duration_seconds', 'From a req decoded to its res sent', LATENCY_BUCKETS, 'route');
  private readonly redis = new LocalHistogram('tether_redis_command_duration_seconds', 'Redis calls, as the instance waits for them', LATENCY_BUCKETS);
  private readonly delivery = new LocalHistogram('tether_delivery_latency_seconds', 'From the commit that published a message to its delivery on a socket', LATENCY_BUCKETS);
  /** Per declared route (and `unknown`): its counter and duration series, one lookup per use. */
  private readonly byRoute = new Map<string, RouteCounters>();
  private readonly unknownRoute: RouteCounters;

  /**
   * @param routes - the app's declared routes: the only `route` label values besides `unknown`
   */
  constructor(instanceId: string, routes: readonly string[]) {
    // Every series exists from the start, at 0: rate() and absence alerts work before any traffic.
    for (const route of routes) this.byRoute.set(route, this.routeCounters(route));
    // (an app may declare a route named `unknown`: one series for both, as before)
    this.unknownRoute = this.byRoute.get('unknown') ?? this.routeCounters('unknown');
    const everyRoute = new Set([...this.byRoute.values(), this.unknownRoute]);
    this.exporter = new PrometheusExporter({ preventServerStart: true });
    this.provider = new MeterProvider({
      resource: resourceFromAttributes({ 'service.name': 'tether', 'service.instance.id': instanceId }),
      readers: [this.exporter],
    });
    const meter = this.provider.getMeter('tether');
    this.redis.ensure();
    this.delivery.ensure();

    meter.createObservableGauge('tether_connections', { description: 'Open WebSocket connections, before hello too' }).addCallback((r) => r.observe(this.connections));
    meter.createObservableGauge('tether_ready', { description: '1 when /ready says ready, else 0' }).addCallback((r) => r.observe(this.ready));
    this.loopDelay.enable();
    meter.createObservableGauge('tether_event_loop_lag_seconds', { description: 'Event-loop delay (p99 over the last scrape interval)', unit: 's' }).addCallback((r) => {
      // The histogram counts the sampling period itself; subtract it so an idle loop reads 0.
      r.observe(Math.max(0, this.loopDelay.percentile(99) / 1e9 - LOOP_RESOLUTION_MS / 1000));
      this.loopDelay.reset();
    });
    // The standard process metric names, so existing dashboards and alerts work unchanged.
    meter.createObservableCounter('process_cpu_seconds_total', { description: 'User and system CPU time spent', unit: 's' }).addCallback((r) => {
      const { user, system } = process.cpuUsage();
      r.observe((user + system) / 1e6);
    });
    meter.createObservableGauge('process_resident_memory_bytes', { description: 'Resident set size', unit: 'By' }).addCallback((r) => r.observe(process.memoryUsage.rss()));
    meter.createObservableGauge('nodejs_heap_used_bytes', { description: 'V8 heap in use', unit: 'By' }).addCallback((r) => r.observe(process.memoryUsage().heapUsed));
    // The two per-frame counters are plain numbers read at collection time: recording through the
    // SDK hashes the attributes on every call, a measurable share of the hot path.
    meter.createObservableCounter('tether_messages_received_total', { description: 'req frames received, by route' }).addCallback((r) => {
      for (const c of everyRoute) r.observe(c.received, c.attributes);
    });
    meter.createObservableCounter('tether_messages_sent_total', { description: 'Frames sent: res and msg' }).addCallback((r) => {
      r.observe(this.sentRes, RES);
      r.observe(this.sentMsg, MSG);
    });
    this.limited = meter.createCounter('tether_rate_limited_total', { description: 'Refusals by rate-limit scope' });
    this.sessions = meter.createCounter('tether_sessions_total', { description: 'hello outcomes' });
    for (const scope of ['user', 'ip', 'route', 'conn'] as const) this.limited.add(0, { scope });
    for (const outcome of ['new', 'resumed', 'expired', 'rejected'] as const) this.sessions.add(0, { outcome });
    this.http = meter.createCounter('tether_http_requests_total', { description: 'HTTP requests by path and status' });
    this.replays = meter.createCounter('tether_replayed_messages_total', { description: 'Messages replayed on resume, by kind (direct, room)' });
  }

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
    this.counters(route).received++;
  }
  messageSent(kind: 'res' | 'msg'): void {
    if (kind === 'res') this.sentRes++;
    else this.sentMsg++;
  }
  rateLimited(scope: RateScope): void {
    this.limited.add(1, { scope });
  }
  session(outcome: SessionOutcome): void {
    this.sessions.add(1, { outcome });
  }
  httpRequest(path: string, status: number): void {
    this.http.add(1, { path, status: String(status) });
  }
  handlerDuration(route: string, seconds: number): void {
    this.handler.recordIn(this.counters(route).duration, seconds);
  }
  replayed(kind: 'direct' | 'room', count: number): void {
    if (count > 0) this.replays.add(count, { kind });
  }
  redisCall(seconds: number): void {
    this.redis.record(seconds);
  }
  delivered(seconds: number): void {
    this.delivery.record(Math.max(0, seconds));
  }

  async render(): Promise<string> {
    const { resourceMetrics } = await this.exporter.collect();
    const local = [this.handler, this.redis, this.delivery].map((h) => h.toMetricData());
    const scope = resourceMetrics.scopeMetrics.find((s) => s.scope.name === 'tether');
    if (scope) scope.metrics.push(...local);
    else resourceMetrics.scopeMetrics.push({ scope: { name: 'tether' }, metrics: local });
    return this.serializer.serialize(resourceMetrics);
  }

  async close(): Promise<void> {
    this.loopDelay.disable();
    await this.provider.shutdown();
  }

  /** Bounded label values: an undeclared route counts as `unknown`, so clients cannot grow cardinality. */
  private counters(route: string): RouteCounters {
    return this.byRoute.get(route) ?? this.unknownRoute;
  }

  private routeCounters(label: string): RouteCounters {
    // every histogram series exists from the start, at 0, like the counters'
    return { received: 0, duration: this.handler.seriesOf(label), attributes: { route: label } };
  }
}

/** A route label's counters; its attributes object is reused (the SDK hashes it per observation). */
interface RouteCounters {
  received: number;
  duration: Series;
  attributes: Attributes;
}

const LOOP_RESOLUTION_MS = 10;
const RES: Attributes = { kind: 'res' };
const MSG: Attributes = { kind: 'msg' };
