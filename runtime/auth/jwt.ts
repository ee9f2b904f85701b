/**
 * @module auth/jwt
 * HS256 JWT verification for `hello.auth` (and signing, for tests and tools). No dependency: the
 * format is three base64url parts and one HMAC.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export type JwtResult = { ok: true; sub: string } | { ok: false; reason: string };

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/**
 * Signs claims with HS256.
 * @example
 * signJwt({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 }, secret)
 */
export function signJwt(claims: Record<string, unknown>, secret: string): string {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/**
 * Verifies an HS256 JWT: signature, `alg`, `exp` (if present), `nbf` (if present) and a string `sub`.
 * @param nowMs - the current time
 */
export function verifyJwt(token: string, secret: string, nowMs: number): JwtResult {
  const parts = token.split('.');
  if (parts.length !== 3) return { ok: false, reason: 'not a JWT' };
  const [head, body, sig] = parts as [string, string, string];
  let header: unknown;
  let claims: unknown;
  try {
    header = JSON.parse(Buffer.from(head, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'unreadable JWT' };
  }
  if (typeof header !== 'object' || header === null || (header as { alg?: unknown }).alg !== 'HS256') return { ok: false, reason: 'JWT alg must be HS256' };
  const expected = createHmac('sha256', secret).update(`${head}.${body}`).digest();
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'bad JWT signature' };
  if (typeof claims !== 'object' || claims === null) return { ok: false, reason: 'JWT claims must be an object' };
  const { sub, exp, nbf } = claims as { sub?: unknown; exp?: unknown; nbf?: unknown };
  const nowS = nowMs / 1000;
  if (exp !== undefined && (typeof exp !== 'number' || exp <= nowS)) return { ok: false, reason: 'JWT expired' };
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > nowS)) return { ok: false, reason: 'JWT not yet valid' };
  if (typeof sub !== 'string' || sub.length === 0) return { ok: false, reason: 'JWT has no sub' };
  return { ok: true, sub };
}
