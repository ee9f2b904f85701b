/**
 * The deployment files: compose.yml, Dockerfile, infra/redis.conf, infra/haproxy.cfg.
 * Docker does not run here, so compose.yml is read as data (with a small reader for the plain YAML
 * subset it is written in; no YAML dependency) and checked for what `docker compose up --scale
 * tether=N` needs. The HAProxy config is checked by the real `haproxy -c`, the Redis config by a real
 * `redis-server` loading it. Neither is ever skipped: a missing binary fails with how to install it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');

// ---------------------------------------------------------------------------------------------
// A reader for the YAML subset compose.yml is written in: block mappings, block sequences of
// scalars, `[a, b]`, `{}`, plain / 'single' / "double" quoted scalars, comments. Anything else
// (anchors, tags, multi-line strings, sequences of mappings) throws instead of being misread.

type Yaml = string | number | boolean | null | Yaml[] | { [key: string]: Yaml };
interface Line {
  no: number;
  indent: number;
  text: string;
}

/** Index of the first `#` that starts a comment (outside quotes, at the start or after a blank). */
function commentStart(s: string): number {
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) {
        if (quote === "'" && s[i + 1] === "'") i++;
        else quote = null;
      } else if (c === '\\' && quote === '"') i++;
    } else if (c === '"' || c === "'") {
      if (i === 0 || /[\s:[,-]/.test(s[i - 1]!)) quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(s[i - 1]!))) return i;
  }
  return -1;
}

/** Index of the `:` that separates a mapping key from its value, or -1. */
function keyColon(s: string): number {
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"') i++;
    } else if ((c === '"' || c === "'") && i === 0) quote = c;
    else if (c === ':' && (i === s.length - 1 || s[i + 1] === ' ')) return i;
  }
  return -1;
}

function splitFlow(s: string): string[] {
  const parts: string[] = [];
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"') i++;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === ',') {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts.map((p) => p.trim());
}

function scalar(raw: string, no: number): Yaml {
  const s = raw.trim();
  const fail = (why: string): never => {
    throw new Error(`compose.yml line ${no}: ${why}: ${s}`);
  };
  if (s.startsWith('"')) {
    if (!s.endsWith('"') || s.length < 2) fail('unterminated double-quoted string');
    return JSON.parse(s) as string;
  }
  if (s.startsWith("'")) {
    if (!s.endsWith("'") || s.length < 2) fail('unterminated single-quoted string');
    return s.slice(1, -1).replaceAll("''", "'");
  }
  if (s.startsWith('[')) {
    if (!s.endsWith(']')) fail('flow sequence must fit on one line');
    const inner = s.slice(1, -1).trim();
    return inner === '' ? [] : splitFlow(inner).map((p) => scalar(p, no));
  }
  if (s === '{}') return {};
  if (/^[{&*!|>%@`]/.test(s)) fail('unsupported YAML (keep compose.yml in the plain subset)');
  if (s === '' || s === '~' || s === 'null') return null;
  if (s === 'true') return true;
  if (s === 'false') return false;
  if (/^-?\d+$/.test(s)) return Number(s);
  if (/^-?\d+\.\d+$/.test(s)) return Number(s);
  return s;
}

function parseYamlSubset(text: string): Yaml {
  const lines: Line[] = [];
  text.split(/\r?\n/).forEach((rawLine, i) => {
    if (rawLine.includes('\t')) throw new Error(`compose.yml line ${i + 1}: tab character`);
    const cut = commentStart(rawLine);
    const body = (cut === -1 ? rawLine : rawLine.slice(0, cut)).trimEnd();
    if (body.trim() === '' || body.trim() === '---') return;
    lines.push({ no: i + 1, indent: body.length - body.trimStart().length, text: body.trim() });
  });
  let pos = 0;
  const isItem = (l: Line) => l.text === '-' || l.text.startsWith('- ');

  const block = (indent: number): Yaml => {
    const first = lines[pos]!;
    return isItem(first) ? sequence(first.indent) : mapping(indent);
  };
  const mapping = (indent: number): Yaml => {
    const out: { [key: string]: Yaml } = {};
    while (pos < lines.length) {
      const l = lines[pos]!;
      if (l.indent < indent) break;
      if (l.indent > indent || isItem(l)) throw new Error(`compose.yml line ${l.no}: unexpected indentation`);
      const c = keyColon(l.text);
      if (c === -1) throw new Error(`compose.yml line ${l.no}: expected "key: value"`);
      const key = String(scalar(l.text.slice(0, c), l.no));
      if (Object.hasOwn(out, key)) throw new Error(`compose.yml line ${l.no}: duplicate key ${key}`);
      const rest = l.text.slice(c + 1).trim();
      pos++;
      const next = lines[pos];
      if (rest !== '') out[key] = scalar(rest, l.no);
      else if (next && (next.indent > indent || (next.indent === indent && isItem(next)))) out[key] = block(next.indent);
      else out[key] = null;
    }
    return out;
  };
  const sequence = (indent: number): Yaml => {
    const out: Yaml[] = [];
    while (pos < lines.length) {
      const l = lines[pos]!;
      if (l.indent < indent || (l.indent === indent && !isItem(l))) break;
      if (l.indent > indent) throw new Error(`compose.yml line ${l.no}: unexpected indentation`);
      const item = l.text.slice(1).trim();
      pos++;
      if (item === '') {
        const next = lines[pos];
        out.push(next && next.indent > indent ? block(next.indent) : null);
      } else if (keyColon(item) !== -1 && !/^["'[]/.test(item)) {
        throw new Error(`compose.yml line ${l.no}: mappings inside sequences are not supported; use the mapping form`);
      } else out.push(scalar(item, l.no));
    }
    return out;
  };

  if (lines.length === 0) return null;
  const doc = block(lines[0]!.indent);
  if (pos !== lines.length) throw new Error(`compose.yml line ${lines[pos]!.no}: unexpected indentation`);
  return doc;
}

// ---------------------------------------------------------------------------------------------

type Obj = { [key: string]: Yaml };
const isObj = (v: Yaml | undefined): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: Yaml | undefined, what: string): Obj => {
  if (!isObj(v)) throw new Error(`${what} should be a mapping, got ${JSON.stringify(v)}`);
  return v;
};
const list = (v: Yaml | undefined): Yaml[] => (Array.isArray(v) ? v : v === undefined || v === null ? [] : [v]);
/** Compose `environment` in either form (`KEY: value` or `- KEY=value`). */
const envOf = (service: Obj): Record<string, string> => {
  const env = service.environment;
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((e) => {
      const s = String(e);
      const eq = s.indexOf('=');
      return eq === -1 ? [s, ''] : [s.slice(0, eq), s.slice(eq + 1)];
    }));
  }
  return Object.fromEntries(Object.entries(isObj(env) ? env : {}).map(([k, v]) => [k, v === null ? '' : String(v)]));
};
/** `test:` of a compose healthcheck as one string. */
const healthTest = (service: Obj): string => list(obj(service.healthcheck, 'healthcheck').test).map(String).join(' ');
/** Compose durations (`15s`, `1m30s`, `500ms`) in seconds. */
const seconds = (d: Yaml | undefined): number => {
  const s = String(d);
  const parts = [...s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== s) throw new Error(`not a duration: ${s}`);
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600 } as const;
  return parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2] as keyof typeof unit], 0);
};
/** `name args...` directives of a redis.conf, comments dropped. */
const directives = (text: string): Map<string, string> =>
  new Map(
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => {
        const [name = '', ...args] = l.split(/\s+/);
        return [name.toLowerCase(), args.join(' ')] as const;
      }),
  );

const compose = parseYamlSubset(read('compose.yml'));
const services = obj(obj(compose, 'compose.yml').services, 'services');
const service = (name: string) => obj(services[name], `services.${name}`);

describe('the YAML subset reader', () => {
  it('reads compose.yml exactly as a full YAML parser does (PyYAML, when python3 has it)', () => {
    const py = spawnSync('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)', join(root, 'compose.yml')], { encoding: 'utf8' });
    // The cross-check needs PyYAML; the reader's own behaviour is pinned below either way.
    if (py.status === 0) expect(compose).toEqual(JSON.parse(py.stdout));
    expect(parseYamlSubset('a:\n  b: "x: #y" # c\n  c:\n    - 1\n    - \'it\'\'s\'\n  d: [p, "q, r"]\n  e:\n')).toEqual({ a: { b: 'x: #y', c: [1, "it's"], d: ['p', 'q, r'], e: null } });
  });

  it('refuses what it does not understand instead of misreading it', () => {
    expect(() => parseYamlSubset('a: &x 1')).toThrow(/unsupported/);
    expect(() => parseYamlSubset('a: |\n  text')).toThrow(/unsupported/);
    expect(() => parseYamlSubset('a:\n  - b: 1')).toThrow(/mapping form/);
    expect(() => parseYamlSubset('a: 1\na: 2')).toThrow(/duplicate/);
  });
});

describe('compose.yml', () => {
  it('has the services redis, tether, lb, prometheus and grafana', () => {
    expect(Object.keys(services).sort()).toEqual(['grafana', 'lb', 'prometheus', 'redis', 'tether']);
  });

  it('redis: redis 7 with infra/redis.conf mounted and used, a ping healthcheck, no host port', () => {
    const redis = service('redis');
    expect(String(redis.image)).toMatch(/^redis:7/);
    const mount = list(redis.volumes).map(String).find((v) => v.startsWith('./infra/redis.conf:'));
    expect(mount, 'redis mounts ./infra/redis.conf').toBeDefined();
    const target = mount!.split(':')[1];
    expect(list(redis.command).map(String)).toEqual(['redis-server', target]);
    expect(healthTest(redis)).toMatch(/redis-cli ping/);
    expect(redis.ports).toBeUndefined();
  });

  it('tether: built from the Dockerfile, no fixed host port, so `--scale tether=N` works', () => {
    const tether = service('tether');
    const build = tether.build;
    const dockerfile = isObj(build) ? String(build.dockerfile ?? 'Dockerfile') : 'Dockerfile';
    expect(build).toBeDefined();
    expect(existsSync(join(root, dockerfile))).toBe(true);
    const df = read(dockerfile);
    expect(df).toMatch(/^FROM node:20-slim/m);
    expect(df).toMatch(/npm ci/);
    expect(df).toMatch(/^CMD \["node", "--import", "tsx", "runtime\/main\.ts"\]|^CMD \["npm", "start"\]/m);
    expect(tether.ports, 'tether must not publish a host port').toBeUndefined();
    expect(tether.network_mode).toBeUndefined();
    expect(tether.container_name, 'a fixed container name prevents scaling').toBeUndefined();
    expect(Number(obj(tether.deploy, 'tether.deploy').replicas)).toBeGreaterThanOrEqual(2);
  });

  it('tether: on Redis (the redis service), no fixed INSTANCE_ID, TRUST_PROXY behind the lb', () => {
    const env = envOf(service('tether'));
    const url = new URL(env.REDIS_URL ?? '');
    expect(url.protocol).toBe('redis:');
    expect(url.hostname).toBe('redis');
    expect(url.port || '6379').toBe('6379');
    expect(env, 'INSTANCE_ID must default to hostname-pid so replicas differ').not.toHaveProperty('INSTANCE_ID');
    expect(env.PORT).toBe('8080');
    expect(env.TRUST_PROXY).toBe('1');
  });

  it('tether: healthcheck is /ready through node fetch (the slim image has no curl)', () => {
    const tether = service('tether');
    const test = list(obj(tether.healthcheck, 'healthcheck').test).map(String);
    expect(test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
    const script = test.join(' ');
    expect(script).toContain(`fetch('http://127.0.0.1:${envOf(tether).PORT}/ready')`);
    expect(script).toMatch(/process\.exit\(r\.ok\s*\?\s*0\s*:\s*1\)/);
    expect(script).not.toMatch(/curl|wget/);
  });

  it('tether: waits for a healthy redis, and is given longer than DRAIN_TIMEOUT_MS to stop', () => {
    const tether = service('tether');
    const dependsOn = obj(tether.depends_on, 'tether.depends_on');
    expect(obj(dependsOn.redis, 'depends_on.redis').condition).toBe('service_healthy');
    const drainS = Number(envOf(tether).DRAIN_TIMEOUT_MS ?? 10000) / 1000;
    expect(seconds(tether.stop_grace_period)).toBeGreaterThan(drainS);
  });

  it('lb: HAProxy with infra/haproxy.cfg, publishing 8080, after tether', () => {
    const lb = service('lb');
    expect(String(lb.image)).toMatch(/^haproxy:2\.8/);
    expect(list(lb.volumes).map(String)).toContain('./infra/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro');
    expect(list(lb.ports).map(String)).toContain('8080:8080');
    const dependsOn = lb.depends_on;
    expect(Array.isArray(dependsOn) ? dependsOn : Object.keys(obj(dependsOn, 'lb.depends_on'))).toContain('tether');
    // The frontend listens where the port is published.
    expect(read('infra/haproxy.cfg')).toMatch(/^\s*bind\s+(\*|0\.0\.0\.0)?:8080\b/m);
  });
});

describe('compose.yml: metrics', () => {
  /** `./source:target[:ro]` mounts of a service, as [source, target]. */
  const mounts = (name: string) =>
    list(service(name).volumes)
      .map(String)
      .filter((v) => v.startsWith('./'))
      .map((v) => v.split(':').slice(0, 2) as [string, string]);

  it('prometheus: scrapes the tether replicas through Docker DNS on their port, publishing 9090', () => {
    const prometheus = service('prometheus');
    expect(String(prometheus.image)).toMatch(/^prom\/prometheus:v2\./);
    expect(list(prometheus.ports).map(String)).toContain('9090:9090');
    expect(mounts('prometheus')).toContainEqual(['./observability/prometheus.yml', '/etc/prometheus/prometheus.yml']);
    const config = read('observability/prometheus.yml');
    expect(config).toMatch(/^\s*-\s*names:\s*\[tether\]\s*$/m);
    expect(config).toMatch(new RegExp(`^\\s*port:\\s*${envOf(service('tether')).PORT}\\s*$`, 'm'));
  });

  it('prometheus: the config and its rule files, laid out as mounted, pass `promtool check config`', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-prom-'));
    try {
      const configTarget = '/etc/prometheus/prometheus.yml';
      for (const [source, target] of mounts('prometheus')) {
        // every mounted file lands next to the config, as in the container
        expect(target.startsWith('/etc/prometheus/'), `${target} is under /etc/prometheus`).toBe(true);
        writeFileSync(join(dir, target.slice('/etc/prometheus/'.length)), read(source.slice(2)));
      }
      const r = spawnSync('promtool', ['check', 'config', join(dir, configTarget.slice('/etc/prometheus/'.length))], { encoding: 'utf8' });
      if (r.error) throw new Error(`promtool is not on PATH (${r.error.message}). Install it: apt-get install prometheus (Debian/Ubuntu).`);
      const output = `${r.stdout}${r.stderr}`;
      expect(r.status, output).toBe(0);
      // a rule file the mounts missed would fail above; this one must have been loaded
      expect(output).toMatch(/SUCCESS: 1 rule files found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('grafana: provisioned with Prometheus as the default data source and the Tether dashboard', () => {
    const grafana = service('grafana');
    expect(String(grafana.image)).toMatch(/^grafana\/grafana:1\d\./);
    expect(list(grafana.ports).map(String)).toContain('3000:3000');
    const byTarget = new Map(mounts('grafana').map(([source, target]) => [target, source]));
    const datasources = [...byTarget].find(([target]) => target.startsWith('/etc/grafana/provisioning/datasources/'));
    const providers = [...byTarget].find(([target]) => target.startsWith('/etc/grafana/provisioning/dashboards/'));
    expect(datasources, 'a datasources provisioning file').toBeDefined();
    expect(providers, 'a dashboards provisioning file').toBeDefined();
    const ds = JSON.parse(read(datasources![1].slice(2))) as { datasources: { type: string; url: string; isDefault?: boolean }[] };
    expect(ds.datasources).toContainEqual(expect.objectContaining({ type: 'prometheus', url: 'http://prometheus:9090', isDefault: true }));
    const dash = JSON.parse(read(providers![1].slice(2))) as { providers: { type: string; options: { path: string } }[] };
    const folder = dash.providers.find((p) => p.type === 'file')!.options.path;
    const dashboardTarget = [...byTarget].find(([, source]) => source === './observability/grafana-dashboard.json')?.[0];
    expect(dashboardTarget, 'the dashboard is mounted').toBeDefined();
    expect(dashboardTarget!.startsWith(`${folder}/`), `${dashboardTarget} is in the provider folder ${folder}`).toBe(true);
  });
});

describe('infra/redis.conf', () => {
  const conf = directives(read('infra/redis.conf'));

  it('has the settings under which durable replies hold', () => {
    expect(conf.get('appendonly')).toBe('yes');
    expect(conf.get('appendfsync')).toBe('always');
    expect(conf.get('maxmemory-policy')).toBe('noeviction');
  });

  it('is accepted by a real redis-server, which then runs with those settings', async () => {
    if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
      throw new Error('redis-server is not on PATH. Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis).');
    }
    const dir = mkdtempSync(join(tmpdir(), 'tether-conf-'));
    const socket = join(dir, 'redis.sock');
    // The shipped file, with only the data directory and the network moved for the test (redis
    // changes into `dir` while reading the file, so /data must be replaced in the file itself).
    const shipped = read('infra/redis.conf');
    expect(shipped).toMatch(/^dir \/data$/m);
    writeFileSync(join(dir, 'redis.conf'), shipped.replace(/^dir \/data$/m, `dir ${dir}`));
    const child = spawn('redis-server', [join(dir, 'redis.conf'), '--port', '0', '--unixsocket', socket], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      const until = Date.now() + 10_000;
      while (!existsSync(socket)) {
        if (child.exitCode !== null) throw new Error(`redis-server refused infra/redis.conf:\n${output}`);
        if (Date.now() > until) throw new Error(`redis-server did not start:\n${output}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const client = createClient({ socket: { path: socket, reconnectStrategy: false } });
      client.on('error', () => {});
      await client.connect();
      try {
        const got = await client.configGet(['appendonly', 'appendfsync', 'maxmemory-policy']);
        expect(got).toEqual({ appendonly: 'yes', appendfsync: 'always', 'maxmemory-policy': 'noeviction' });
      } finally {
        await client.quit();
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('infra/haproxy.cfg', () => {
  const cfg = read('infra/haproxy.cfg');

  it('is valid for the real haproxy (`haproxy -c`), without warnings', () => {
    const r = spawnSync('haproxy', ['-c', '-f', join(root, 'infra/haproxy.cfg')], { encoding: 'utf8' });
    if (r.error) {
      throw new Error(`haproxy is not on PATH (${r.error.message}). Install it: apt-get install haproxy (Debian/Ubuntu) or brew install haproxy (macOS).`);
    }
    const output = `${r.stdout}${r.stderr}`;
    expect(r.status, output).toBe(0);
    expect(output).not.toMatch(/\[WARNING\]|\[ALERT\]/);
  });

  it('balances WebSockets on ready replicas found through Docker DNS', () => {
    expect(cfg).toMatch(/^\s*mode\s+http\b/m);
    expect(cfg).toMatch(/^\s*timeout\s+tunnel\s+\S+/m);
    expect(cfg).toMatch(/^\s*timeout\s+client\s+\S+/m);
    expect(cfg).toMatch(/^\s*timeout\s+server\s+\S+/m);
    expect(cfg).toMatch(/^\s*balance\s+leastconn\b/m);
    expect(cfg).toMatch(/^\s*option\s+httpchk\s+GET\s+\/ready\b/m);
    expect(cfg).toMatch(/^\s*http-check\s+expect\s+status\s+200\b/m);
    expect(cfg).toMatch(/^\s*option\s+forwardfor\b/m);
    expect(cfg).toMatch(/^\s*nameserver\s+\S+\s+127\.0\.0\.11:53\b/m);
    expect(cfg).toMatch(/^\s*server-template\s+\S+\s+\d+\s+tether:8080\b/m);
    expect(cfg).toMatch(/\binit-addr\s+none\b/);
  });
});
