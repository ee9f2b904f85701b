/**
 * @module config
 * Environment variables (SPEC section 5) read and validated once into one typed object.
 */
import { isIP } from 'node:net';
import { hostname } from 'node:os';

export interface Limit {
  /** Tokens per second; 0 turns the limit off. */
  rate: number;
  burst: number;
}

export interface TetherConfig {
  port: number;
  host: string;
  redisUrl: string | undefined;
  /** 'split': the two-step commit Redis Cluster needs (docs/SCALE_OUT.md); 'single' on one Redis. */
  redisCommit: 'single' | 'split';
  instanceId: string;
  sessionTtlS: number;
  dedupeTtlS: number;
  dedupeMax: number;
  outboxMax: number;
  roomHistoryMax: number;
  roomTtlS: number;
  maxPayloadBytes: number;
  heartbeatMs: number;
  helloTimeoutMs: number;
  rlUser: Limit;
  rlIp: Limit;
  rlConn: Limit;
  /** Route overrides from `RL_ROUTE_<NAME>`, keyed by the env name part (`CHAT_SEND`). */
  rlRoutes: Record<string, Limit>;
  authSecret: string | undefined;
  trustProxy: boolean;
  drainTimeoutMs: number;
  abuseMaxStrikes: number;
  logLevel: string;
}

/** A configuration value that failed validation; the message names the variable. */
export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `expected an integer, got "${raw}"`);
  const value = Number(raw.trim());
  if (value < min || value > max) throw new ConfigError(name, `expected an integer from ${min} to ${max}, got ${value}`);
  return value;
}

/**
 * Node runs a timer of more than 2^31-1 ms after 1 ms instead: a longer wait than a day is taken as
 * a mistake in the value, not honoured as a surprise.
 */
const MAX_WAIT_MS = 86_400_000;
/** Expiries in seconds: ten years is far beyond any sensible one, and stays exact in Redis's ms. */
const MAX_TTL_S = 315_360_000;
/** Tokens per second and bucket sizes: beyond these a limit is no limit. */
const MAX_RATE = 1_000_000;
const MAX_BURST = 1_000_000_000;
/** A rate as people write it: decimal, no sign, no exponent, no hex. */
const RATE = /^\d+(?:\.\d+)?$/;

function num(env: Env, name: string, fallback: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw.trim());
  if (!RATE.test(raw.trim()) || value > max) throw new ConfigError(name, `expected a decimal number from 0 to ${max}, got "${raw}"`);
  return value;
}

function limit(env: Env, prefix: string, rate: number, burst: number): Limit {
  const r = num(env, `${prefix}_RATE`, rate, MAX_RATE);
  const b = int(env, `${prefix}_BURST`, burst, 0, MAX_BURST);
  if (r > 0 && b < 1) throw new ConfigError(`${prefix}_BURST`, 'must be at least 1 while the rate is above 0');
  return { rate: r, burst: b };
}

/** Parses a `rate:burst` pair as used by `RL_ROUTE_<NAME>`. */
export function parseLimitPair(name: string, raw: string): Limit {
  const match = /^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+)\s*$/.exec(raw);
  if (!match) throw new ConfigError(name, `expected "rate:burst" such as "5:10", got "${raw}"`);
  const rate = Number(match[1]);
  const burst = Number(match[2]);
  if (rate > MAX_RATE || burst > MAX_BURST) throw new ConfigError(name, `expected a rate up to ${MAX_RATE} and a burst up to ${MAX_BURST}, got "${raw}"`);
  if (rate > 0 && burst < 1) throw new ConfigError(name, 'burst must be at least 1 while the rate is above 0');
  return { rate, burst };
}

/**
 * Reads the configuration from an environment.
 * @param env - usually `process.env`
 * @returns the validated configuration
 * @throws ConfigError naming the first bad variable
 * @example
 * const config = loadConfig({ PORT: '9000' });
 */
export function loadConfig(env: Env = process.env): TetherConfig {
  const rlRoutes: Record<string, Limit> = {};
  for (const [key, value] of Object.entries(env)) {
    if (key.startsWith('RL_ROUTE_') && value !== undefined) rlRoutes[key.slice('RL_ROUTE_'.length)] = parseLimitPair(key, value);
  }
  const redisUrl = env.REDIS_URL?.trim() || undefined;
  if (redisUrl !== undefined) checkRedisUrl(redisUrl);
  const host = env.HOST?.trim() || '0.0.0.0';
  if (!isIP(host) && !HOSTNAME.test(host)) throw new ConfigError('HOST', `expected an IP address or a host name, got "${host}"`);
  const redisCommit = env.REDIS_COMMIT?.trim() || 'single';
  if (redisCommit !== 'single' && redisCommit !== 'split') throw new ConfigError('REDIS_COMMIT', `expected single or split, got "${redisCommit}"`);
  const trustProxy = env.TRUST_PROXY?.trim() ?? '0';
  if (trustProxy !== '0' && trustProxy !== '1' && trustProxy !== '') throw new ConfigError('TRUST_PROXY', `expected 0 or 1, got "${trustProxy}"`);
  const logLevel = env.LOG_LEVEL?.trim() || 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) throw new ConfigError('LOG_LEVEL', `expected a pino level, got "${logLevel}"`);
  const authSecret = env.AUTH_SECRET === undefined || env.AUTH_SECRET === '' ? undefined : env.AUTH_SECRET;
  return {
    port: int(env, 'PORT', 8080, 0, 65535),
    host,
    redisUrl,
    redisCommit,
    instanceId: env.INSTANCE_ID?.trim() || `${hostname()}-${process.pid}`,
    sessionTtlS: int(env, 'SESSION_TTL_S', 3600, 1, MAX_TTL_S),
    dedupeTtlS: int(env, 'DEDUPE_TTL_S', 300, 1, MAX_TTL_S),
    dedupeMax: int(env, 'DEDUPE_MAX', 256, 1),
    outboxMax: int(env, 'OUTBOX_MAX', 1000, 1),
    roomHistoryMax: int(env, 'ROOM_HISTORY_MAX', 1000, 1),
    roomTtlS: int(env, 'ROOM_TTL_S', 86400, 1, MAX_TTL_S),
    maxPayloadBytes: int(env, 'MAX_PAYLOAD_BYTES', 65536, 64, 100 * 1024 * 1024),
    heartbeatMs: int(env, 'HEARTBEAT_MS', 25000, 10, MAX_WAIT_MS),
    helloTimeoutMs: int(env, 'HELLO_TIMEOUT_MS', 5000, 10, MAX_WAIT_MS),
    rlUser: limit(env, 'RL_USER', 50, 100),
    rlIp: limit(env, 'RL_IP', 200, 400),
    rlConn: limit(env, 'RL_CONN', 20, 40),
    rlRoutes,
    authSecret,
    trustProxy: trustProxy === '1',
    drainTimeoutMs: int(env, 'DRAIN_TIMEOUT_MS', 10000, 0, MAX_WAIT_MS),
    abuseMaxStrikes: int(env, 'ABUSE_MAX_STRIKES', 100, 0),
    logLevel,
  };
}

/** A DNS name (labels of letters, digits and inner hyphens). */
const HOSTNAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** `redis://` or `rediss://`, a host, and a port that is a number when given. */
function checkRedisUrl(raw: string): void {
  const bad = (why: string) => new ConfigError('REDIS_URL', `${why}, got "${raw}"`);
  if (!/^rediss?:\/\//.test(raw)) throw bad('expected redis://host:port');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw bad('not a valid URL');
  }
  if (url.hostname === '') throw bad('no host');
}

/** The env name part of a route: `chat.send` becomes `CHAT_SEND`. */
export function routeEnvName(route: string): string {
  return route.replace(/\./g, '_').toUpperCase();
}
