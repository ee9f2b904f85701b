/**
 * The observability kit against the real thing: promtool checks and unit-tests the alert rules, then a
 * real Prometheus scrapes two real instances on one Redis while clients drive every code path a panel
 * shows, and every panel query of observability/grafana-dashboard.json (read from the JSON, with the
 * Grafana variables filled in as Grafana would) must return data. Needs `prometheus` and `promtool`
 * on PATH (Debian/Ubuntu: apt-get install prometheus); without them it fails, it never skips.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/raw-client.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { freePort, type ServerProcess, startServer } from '../helpers/server-process.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OBS = join(ROOT, 'observability');
const INSTALL_HINT =
  'is not on PATH. Install Prometheus (Debian/Ubuntu: apt-get install prometheus; macOS: brew install prometheus; ' +
  'or a release from https://prometheus.io/download/ with prometheus and promtool on PATH). .ci/run installs it.';

function toolMissing(name: string): boolean {
  const probe = spawnSync(name, ['--version'], { stdio: 'ignore' });
  return Boolean(probe.error) || probe.status !== 0;
}

/** Called first in every test, so a machine without the tool shows each test failed, not skipped. */
function requireTool(name: string): void {
  if (toolMissing(name)) throw new Error(`${name} ${INSTALL_HINT}`);
}

function promtool(...args: string[]): { status: number | null; output: string } {
  requireTool('promtool');
  const run = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8' });
  if (run.error) throw new Error(`promtool ${INSTALL_HINT} (${run.error.message})`);
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe('alert rules and scrape config (promtool)', () => {
  it('alerts.yml is valid', () => {
    const run = promtool('check', 'rules', 'observability/alerts.yml');
    expect(run.status, run.output).toBe(0);
  });

  it('alerts.test.yml passes: each alert fires when it should and stays quiet when it should', () => {
    const run = promtool('test', 'rules', 'observability/alerts.test.yml');
    expect(run.status, run.output).toBe(0);
  });

  it('prometheus.yml is valid and loads alerts.yml', () => {
    const run = promtool('check', 'config', 'observability/prometheus.yml');
    expect(run.status, run.output).toBe(0);
    expect(run.output).toContain('2 rules found');
  });
});

// ------------------------------------------------------------------------------------------------

interface Target {
  expr: string;
  refId: string;
}
interface Panel {
  type: string;
  title: string;
  datasource?: { uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; definition?: string }[] };
}

const dashboard = JSON.parse(readFileSync(join(OBS, 'grafana-dashboard.json'), 'utf8')) as Dashboard;

/** Every panel with queries, rows' nested panels included. */
function queryPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [...(p.targets?.length ? [p] : []), ...queryPanels(p.panels ?? [])]);
}

/** Grafana's regex escaping of a multi-value variable's values (Prometheus data source). */
function regexEscape(value: string): string {
  return value.replace(/[\\^$*+?.()|[\]{}]/g, (c) => `\\\\${c}`);
}

/** The expression as Grafana sends it: "All" of a multi-value variable is `(v1|v2|...)`. */
function interpolate(expr: string, instances: string[], rateInterval: string): string {
  const all = `(${instances.map(regexEscape).join('|')})`;
  return expr
    .replaceAll('${__rate_interval}', rateInterval)
    .replaceAll('$__rate_interval', rateInterval)
    .replaceAll('${__interval}', '1s')
    .replaceAll('$__interval', '1s')
    .replaceAll('${__range}', '1m')
    .replaceAll('$__range', '1m')
    .replaceAll(/\$\{instance(:regex)?\}/g, all)
    .replaceAll('$instance', all);
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

describe('the Grafana dashboard against a real Prometheus scraping two instances', () => {
  let redis: TestRedis;
  let a: ServerProcess;
  let b: ServerProcess;
  let prometheus: ChildProcess | undefined;
  let promLog = '';
  let promUrl = '';
  let dir = '';
  const sockets: RawClient[] = [];

  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${promUrl}${path}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error}`);
    return body.data;
  };
  const query = (expr: string) => api<{ resultType: string; result: Sample[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);

  /** Resolves once Prometheus has scraped every target successfully, starting after `since`. */
  async function scrapedAfter(since: number): Promise<void> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const { activeTargets } = await api<{ activeTargets: { lastScrape: string; health: string; scrapeUrl: string }[] }>('/api/v1/targets?state=active');
      if (activeTargets.length === 2 && activeTargets.every((t) => t.health === 'up' && Date.parse(t.lastScrape) > since)) return;
      if (Date.now() > deadline) throw new Error(`targets not scraped after ${new Date(since).toISOString()}: ${JSON.stringify(activeTargets)}\n${promLog}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * One round of traffic touching every metric: sessions of every outcome, routes ok and refused,
   * an unknown route, upgrades refused with 429, a room broadcast, a dm, a resume that replays both.
   */
  async function drive(round: number): Promise<void> {
    const room = `obs-${round}`;
    const x = await RawClient.hello(a.wsUrl);
    expect((await x.client.request('j', 'chat.join', { room })).ok).toBe(true);
    expect((await x.client.request('c', 'counter.inc', { by: 1 })).ok).toBe(true);
    expect((await x.client.request('e1', 'echo', 1)).ok).toBe(true);
    const refused = await x.client.request('e2', 'echo', 2);
    expect((refused.error as { code: string }).code).toBe('rate_limited');
    expect((await x.client.request('u', 'no.such.route', {})).ok).toBe(false);
    x.client.close();
    await x.client.closed;

    const y = await RawClient.hello(b.wsUrl);
    sockets.push(y.client);
    expect((await y.client.request('j', 'chat.join', { room })).ok).toBe(true);
    expect((await y.client.request('s', 'chat.send', { room, text: 'hi' })).ok).toBe(true);
    expect((await y.client.request('d', 'dm.send', { to: x.welcome.session, text: 'hi' })).ok).toBe(true);
    await y.client.until((f) => f.t === 'msg' && f.room === room, 1);
    // b allows one upgrade per second per IP: these are refused with 429
    const statuses = await Promise.all(
      [1, 2, 3].map(
        () =>
          new Promise<number>((resolve) => {
            const ws = new WebSocket(b.wsUrl);
            ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
            ws.once('open', () => {
              ws.close();
              resolve(101);
            });
            ws.once('error', () => resolve(-1));
          }),
      ),
    );
    expect(statuses).toContain(429);

    const resumed = await RawClient.hello(a.wsUrl, { session: x.welcome.session, token: x.welcome.token, seq: 0 });
    sockets.push(resumed.client);
    expect(resumed.welcome.resumed).toBe(true);
    await resumed.client.until((f) => f.t === 'msg' && f.seq === 1, 1);
    await resumed.client.until((f) => f.t === 'msg' && f.room === room, 1);

    const expired = await RawClient.hello(a.wsUrl, { session: `gone-${round}-000000000000`, token: 'x'.repeat(32) });
    sockets.push(expired.client);
    expect(expired.welcome.resumed).toBe(false);

    const rejected = await RawClient.connect(a.wsUrl);
    rejected.send({ t: 'hello', session: x.welcome.session, token: 'wrong-token-wrong-token-wrong-to' });
    expect((await rejected.closed).code).toBe(4401);

    for (const node of [a, b]) {
      expect((await fetch(`${node.url}/health`)).status).toBe(200);
      expect((await fetch(`${node.url}/ready`)).status).toBe(200);
    }
  }

  beforeAll(async () => {
    if (toolMissing('prometheus')) return; // each test fails with the install hint
    redis = await startRedis();
    const common = { REDIS_URL: redis.url, RL_ROUTE_ECHO: '1:1' };
    [a, b] = await Promise.all([startServer(common), startServer({ ...common, RL_CONN_RATE: '1', RL_CONN_BURST: '1' })]);
    for (const node of [a, b]) {
      for (let i = 0; (await fetch(`${node.url}/ready`)).status !== 200; i++) {
        if (i > 200) throw new Error(`${node.instanceId} never ready:\n${node.output()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    dir = mkdtempSync(join(tmpdir(), 'tether-prometheus-'));
    const config = [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      `  - ${JSON.stringify(join(OBS, 'alerts.yml'))}`,
      'scrape_configs:',
      '  - job_name: tether',
      '    static_configs:',
      `      - targets: ['127.0.0.1:${a.port}', '127.0.0.1:${b.port}']`,
      '',
    ].join('\n');
    writeFileSync(join(dir, 'prometheus.yml'), config);
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      'prometheus',
      [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prometheus.stdout!.on('data', (d) => (promLog += d));
    prometheus.stderr!.on('data', (d) => (promLog += d));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (prometheus.exitCode !== null) throw new Error(`prometheus exited with ${prometheus.exitCode}:\n${promLog}`);
      if ((await fetch(`${promUrl}/-/ready`).catch(() => null))?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`prometheus not ready within 20 s:\n${promLog}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    if (prometheus && prometheus.exitCode === null && prometheus.signalCode === null) {
      const exited = new Promise((r) => prometheus!.once('exit', r));
      prometheus.kill('SIGTERM');
      await exited;
    }
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every panel query returns data, with the instance variable as Grafana fills it', { timeout: 45_000 }, async () => {
    requireTool('prometheus');
    // Two rounds with scrapes between them, so every counter has moved inside the rate window
    // (a series' first sample is its baseline, not an increase).
    await scrapedAfter(Date.now());
    await drive(1);
    await scrapedAfter(Date.now());
    await new Promise((r) => setTimeout(r, 1100)); // b's upgrade bucket refills (1/s)
    await drive(2);
    await scrapedAfter(Date.now());

    // The instance variable: label_values(tether_ready, instance)
    const variable = dashboard.templating.list.find((v) => v.name === 'instance');
    expect(variable?.definition).toBe('label_values(tether_ready, instance)');
    const instances = await api<string[]>(`/api/v1/label/instance/values?match[]=${encodeURIComponent('tether_ready')}`);
    expect(instances.sort()).toEqual([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`].sort());
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')?.type).toBe('datasource');

    const panels = queryPanels(dashboard.panels);
    expect(panels.length).toBeGreaterThanOrEqual(12);
    const failures: string[] = [];
    for (const panel of panels) {
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
      for (const target of panel.targets!) {
        const expr = interpolate(target.expr, instances, '30s');
        const data = await query(expr);
        const finite = data.result.filter((s) => Number.isFinite(Number(s.value[1])));
        if (data.result.length === 0 || finite.length === 0) failures.push(`"${panel.title}" ${target.refId}: ${expr} -> ${JSON.stringify(data.result)}`);
      }
    }
    expect(failures, `panel queries without data:\n${failures.join('\n')}`).toEqual([]);

    // The by-label panels show every value the traffic produced (series start at 0, so only the
    // ones with a non-zero value count).
    const labels = async (expr: string, label: string) =>
      (await query(interpolate(expr, instances, '30s'))).result
        .filter((s) => Number(s.value[1]) > 0)
        .map((s) => s.metric[label])
        .sort();
    const exprOf = (title: string) => panels.find((p) => p.title.startsWith(title))!.targets![0]!.expr;
    expect(await labels(exprOf('Sessions by outcome'), 'outcome')).toEqual(['expired', 'new', 'rejected', 'resumed']);
    expect(await labels(exprOf('Replayed messages'), 'kind')).toEqual(['direct', 'room']);
    expect(await labels(exprOf('Messages out by kind'), 'kind')).toEqual(['msg', 'res']);
    expect(await labels(exprOf('Rate-limit refusals'), 'scope')).toEqual(['conn', 'route']);
    expect(await labels(exprOf('Messages in by route'), 'route')).toEqual(expect.arrayContaining(['chat.join', 'chat.send', 'counter.inc', 'dm.send', 'echo', 'unknown']));

    // Every tether_* metric an instance exposes (and the process metrics) is on the dashboard.
    const exprs = panels.flatMap((p) => p.targets!.map((t) => t.expr)).join('\n');
    const exposed = new Set<string>();
    for (const node of [a, b]) {
      const text = await (await fetch(`${node.url}/metrics`)).text();
      for (const m of text.matchAll(/^# TYPE (\S+) /gm)) exposed.add(m[1]!);
    }
    const wanted = [...exposed].filter((n) => n.startsWith('tether_') || n.startsWith('process_'));
    expect(wanted).toEqual(expect.arrayContaining(['process_cpu_seconds_total', 'process_resident_memory_bytes', 'tether_redis_command_duration_seconds']));
    const missing = wanted.filter((n) => !new RegExp(`\\b${n}(_bucket)?\\b`).test(exprs));
    expect(missing, 'metrics exposed on /metrics but on no dashboard panel').toEqual([]);
  });

  it('the alert rules evaluate cleanly on real data, and ReadinessDown catches a dead instance', { timeout: 30_000 }, async () => {
    requireTool('prometheus');
    type Rule = { name: string; health: string; lastError?: string; lastEvaluation: string };
    const { groups } = await api<{ groups: { rules: Rule[] }[] }>('/api/v1/rules');
    const rules = groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.name).sort()).toEqual(['RateLimitSpike', 'ReadinessDown']);
    for (const r of rules) expect(r.health, `${r.name}: ${r.lastError}`).toBe('ok');

    type Alert = { labels: Record<string, string>; state: string };
    const alerts = async () => (await api<{ alerts: Alert[] }>('/api/v1/alerts')).alerts;
    const deadline = Date.now() + 10_000;
    // Both instances up and ready: nothing pending (absent() may have been pending before the first scrape).
    while ((await alerts()).some((al) => al.labels.alertname === 'ReadinessDown')) {
      if (Date.now() > deadline) throw new Error(`ReadinessDown active while both ready: ${JSON.stringify(await alerts())}`);
      await new Promise((r) => setTimeout(r, 250));
    }

    await b.kill();
    const target = `127.0.0.1:${b.port}`;
    for (;;) {
      const down = (await alerts()).find((al) => al.labels.alertname === 'ReadinessDown' && al.labels.instance === target);
      if (down) {
        expect(['pending', 'firing']).toContain(down.state);
        expect(down.labels).toMatchObject({ job: 'tether', severity: 'critical' });
        break;
      }
      if (Date.now() > deadline + 10_000) throw new Error(`ReadinessDown not pending for ${target}: ${JSON.stringify(await alerts())}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    // a stays ready: no alert for it
    expect((await alerts()).filter((al) => al.labels.alertname === 'ReadinessDown' && al.labels.instance === `127.0.0.1:${a.port}`)).toEqual([]);
  });
});
