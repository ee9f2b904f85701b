/**
 * @module server/client-ip
 * The client IP the limits apply to.
 */

/**
 * @param socketAddress - the TCP peer
 * @param forwardedFor - the `X-Forwarded-For` header, if any
 * @param trustProxy - TRUST_PROXY=1: take the right-most entry, the one our proxy appended
 */
export function clientIp(socketAddress: string | undefined, forwardedFor: string | undefined, trustProxy: boolean): string {
  if (trustProxy && forwardedFor) {
    const last = forwardedFor.split(',').at(-1)?.trim();
    if (last) return normalize(last);
  }
  return normalize(socketAddress ?? 'unknown');
}

/** `::ffff:127.0.0.2` and `127.0.0.2` are one client. */
function normalize(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
