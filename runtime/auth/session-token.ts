/**
 * @module auth/session-token
 * Session ids and resume tokens (128+ bits of randomness each); only the token's hash is stored,
 * and comparisons take constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 128 bits, url-safe. */
export const newSessionId = (): string => randomBytes(16).toString('base64url');
/** 192 bits, url-safe. */
export const newToken = (): string => randomBytes(24).toString('base64url');

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** Whether `token` hashes to `storedHash`, in time independent of where they differ. */
export function tokenMatches(token: string, storedHash: string): boolean {
  const given = Buffer.from(hashToken(token), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return given.length === stored.length && timingSafeEqual(given, stored);
}
