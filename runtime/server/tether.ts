/**
 * @module server/tether
 * One Tether instance: HTTP endpoints, the WebSocket upgrade, session actors, heartbeat and drain.
 * No globals: tests run several instances in one process or as child processes.
 */
import type { AddressInfo } from 'node:net';
import { createAdaptorServer, type HttpBindings, upgradeWebSocket } from '@hono/node-server';
import { Hono } from 'hono';
import { WebSocketServer, type WebSocket } from 'ws';
import { Connection } from '../actor/connection.ts';
import type { App } from '../app/define-app.ts';
import { type Limit, type TetherConfig, routeEnvName } from '../config.ts';
import { createLogger, type Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { pathLabel } from '../telemetry/metrics.ts';
import { OtelMetrics } from '../telemetry/otel-metrics.ts';
import { clientIp } from './client-ip.ts';
import { LocalRouter } from './local-router.ts';
import { createPorts } from './create-ports.ts';
import type { TetherPorts } from './ports.ts';
import { Readiness } from './readiness.ts';

export interface Tether {
  /** Starts listening; resolves with the bound port. */
  start(): Promise<{ port: number }>;
  /** Drains (SPEC section 3) and releases everything; resolves within DRAIN_TIMEOUT_MS. */
  stop(): Promise<void>;
  readonly log: Logger;
  readonly metrics: Metrics;
}

export interface TetherOptions {
  /** Adapters; by default Redis when `config.redisUrl` is set, else the embedded memory ports. */
  ports?: TetherPorts;
  logger?: Logger;
}

/**
 * Creates one instance of the runtime.
 * @example
 * const tether = createTether(loadConfig(), app);
 * await tether.start();
 */
export function createTether<S>(config: TetherConfig, app: App<S>, options: TetherOptions = {}): Tether {
  const log = options.logger ?? createLogger(config.logLevel, config.instanceId);
  const anyApp = app as App<unknown>;
  const metrics: Metrics = new OtelMetrics(config.instanceId, Object.keys(anyApp.routes));
  const ports = options.ports ?? createPorts(config, log, metrics);
  const router = new LocalRouter(ports.bus, metrics);
  const readiness = new Readiness(ports.store, ports.bus, metrics);
  const connections = new Set<Connection>();
  const routeLimits = resolveRouteLimits(anyApp, config);
  const deps = {
    app: anyApp,
    config,
    store: ports.store,
    limiter: ports.limiter,
    presence: ports.presence,
    clock: ports.clock,
    log,
    bus: ports.bus,
    router,
    metrics,
    routeLimit: (route: string) => routeLimits.get(route),
    requestsLimited: config.rlUser.rate > 0 || config.rlIp.rate > 0 || [...routeLimits.values()].some((l) => l.rate > 0),
  };

  const http = new Hono<{ Bindings: HttpBindings; Variables: { ip: string } }>();
  http.use(async (c, next) => {
    await next();
    const path = pathLabel(c.req.path);
    metrics.httpRequest(path, path === '/ws' && c.res.status === 200 ? 101 : c.res.status);
  });
  http.get('/health', (c) => c.json({ status: 'ok' }));
  http.get('/ready', (c) => {
    const { ready, checks } = readiness.current();
    return c.json({ status: ready ? 'ready' : 'not_ready', checks }, ready ? 200 : 503);
  });
  http.get('/metrics', async (c) => c.text(await metrics.render(), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }));
  http.get(
    '/ws',
    async (c, next) => {
      if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') return c.json({ error: 'expected a WebSocket upgrade' }, 426);
      if (!readiness.current().ready) return c.json({ error: 'not ready' }, 503);
      const ip = clientIp(c.env.incoming.socket.remoteAddress, c.req.header('x-forwarded-for'), config.trustProxy);
      if (config.rlConn.rate > 0) {
        try {
          const decision = await ports.limiter.check([{ scope: 'conn', key: ip, limit: config.rlConn }]);
          if (!decision.ok) {
            metrics.rateLimited('conn');
            return c.json({ error: 'too many connections', retryAfterMs: decision.retryAfterMs }, 429, { 'Retry-After': String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000))) });
          }
        } catch (err) {
          log.warn({ err }, 'connection limiter unreachable');
          return c.json({ error: 'not ready' }, 503);
        }
      }
      c.set('ip', ip);
      await next();
    },
    upgradeWebSocket((c) => {
      const ip = c.get('ip');
      let conn: Connection | undefined;
      return {
        onOpen(_event, ws) {
          const raw = ws.raw as unknown as WebSocket;
          conn = new Connection(raw, ip, deps);
          connections.add(conn);
          metrics.connectionOpened();
          adopt(raw, conn);
        },
        // Only for frames that arrive before `adopt` takes the socket over (none in practice).
        onMessage(event) {
          conn?.onFrame(event.data);
        },
      };
    }),
  );
  // A known path asked with another method: say which methods it takes (GET also answers HEAD).
  for (const path of ['/health', '/ready', '/metrics', '/ws']) {
    http.all(path, (c) => c.json({ error: `method ${c.req.method} not allowed` }, 405, { Allow: 'GET, HEAD' }));
  }
  http.notFound((c) => c.json({ error: 'not found' }, 404));
  http.onError((err, c) => {
    log.error({ err }, 'http handler failed');
    return c.json({ error: 'internal' }, 500);
  });

  /**
   * Takes the socket over from the upgrade helper once it has attached its listeners (it does so
   * synchronously right after onOpen): its listeners keep the upgrade's request, context and URL
   * alive for the life of the socket (about 6 KB each) and wrap every frame in a MessageEvent.
   * Removing just the listeners it added lets all that go; ws's own listeners stay.
   */
  function adopt(raw: WebSocket, conn: Connection): void {
    const before = { message: raw.listeners('message'), close: raw.listeners('close'), error: raw.listeners('error') };
    queueMicrotask(() => {
      for (const event of ['message', 'close', 'error'] as const) {
        for (const listener of raw.listeners(event)) if (!before[event].includes(listener)) raw.off(event, listener as () => void);
      }
      listen(raw, conn);
    });
  }

  /** Tether's own socket listeners. A function of its own: its closures must not see `before`. */
  function listen(raw: WebSocket, conn: Connection): void {
    raw.on('message', (data: Buffer, isBinary: boolean) => conn.onFrame(isBinary ? data : data.toString('utf8')));
    raw.on('error', () => {}); // a close event follows
    const closed = () => {
      if (!connections.delete(conn)) return;
      metrics.connectionClosed();
      conn.onClosed();
    };
    raw.once('close', closed);
    if (raw.readyState === raw.CLOSED) closed();
  }

  const wss = new WebSocketServer({ noServer: true, maxPayload: config.maxPayloadBytes });
  const server = createAdaptorServer({ fetch: http.fetch, websocket: { server: wss } });
  let heartbeat: NodeJS.Timeout | undefined;
  let stopping: Promise<void> | undefined;

  return {
    log,
    metrics,
    async start() {
      if (config.authSecret === undefined) log.info('AUTH_SECRET is not set: sessions are anonymous');
      // a typo here would leave a route unlimited without a word
      for (const name of unknownRouteOverrides(anyApp, config)) log.warn({ variable: `RL_ROUTE_${name}` }, `RL_ROUTE_${name} names no route of this app (expected the route with . as _, upper-cased); it is ignored`);
      readiness.start();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => resolve());
      });
      heartbeat = setInterval(() => {
        for (const conn of connections) conn.heartbeat();
      }, config.heartbeatMs);
      heartbeat.unref();
      const port = (server.address() as AddressInfo).port;
      log.info({ port, host: config.host, store: config.redisUrl ? 'redis' : 'memory' }, 'tether listening');
      return { port };
    },
    stop() {
      stopping ??= (async () => {
        readiness.drain();
        const stopBy = Date.now() + Math.max(0, config.drainTimeoutMs - 250);
        const drained = Promise.all([...connections].map((conn) => conn.drain()));
        const deadline = new Promise((resolve) => setTimeout(resolve, Math.max(0, stopBy - Date.now())).unref());
        await Promise.race([drained, deadline]);
        // Let the close frames leave (writes are corked until the tick ends), and give peers a
        // moment to answer them, before cutting whatever is left.
        const handshakeBy = Math.min(stopBy, Date.now() + 1000);
        do await new Promise((resolve) => setTimeout(resolve, 10));
        while (wss.clients.size > 0 && Date.now() < handshakeBy);
        for (const ws of wss.clients) ws.terminate();
        clearInterval(heartbeat);
        readiness.stop();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          if ('closeAllConnections' in server) server.closeAllConnections();
        });
        await ports.close();
        await metrics.close();
        log.info('tether stopped');
      })();
      return stopping;
    },
  };
}

/** The `RL_ROUTE_<NAME>` overrides that match no route. */
function unknownRouteOverrides(app: App<unknown>, config: TetherConfig): string[] {
  const known = new Set(Object.keys(app.routes).map(routeEnvName));
  return Object.keys(config.rlRoutes).filter((name) => !known.has(name));
}

/** Route limits per user: `RL_ROUTE_<NAME>` wins over the route's own declaration. */
function resolveRouteLimits(app: App<unknown>, config: TetherConfig): Map<string, Limit> {
  const limits = new Map<string, Limit>();
  for (const [name, route] of Object.entries(app.routes)) {
    const limit = config.rlRoutes[routeEnvName(name)] ?? route.rate;
    if (limit) limits.set(name, limit);
  }
  return limits;
}
