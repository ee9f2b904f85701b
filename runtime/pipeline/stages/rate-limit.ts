/**
 * @module pipeline/stages/rate-limit
 * Checks the user, IP and route buckets in one call; a refusal costs no tokens and changes nothing.
 */
import type { RateCheck } from '../../ports/rate-limiter.ts';
import type { Answer, PipelineDeps, Stage } from '../types.ts';
import { wireError } from '../../errors.ts';
import { unavailable } from './answers.ts';

export const rateLimit: Stage = (req, deps) => {
  if (req.prefetchedLimit) return req.prefetchedLimit;
  const checks: RateCheck[] = [];
  const { rlUser, rlIp } = deps.config;
  if (rlUser.rate > 0) checks.push({ scope: 'user', key: req.session.userId, limit: rlUser });
  if (rlIp.rate > 0) checks.push({ scope: 'ip', key: req.ip, limit: rlIp });
  const routeLimit = deps.routeLimit(req.frame.route);
  if (routeLimit && routeLimit.rate > 0) checks.push({ scope: 'route', key: `${req.session.userId}:${req.frame.route}`, limit: routeLimit });
  // no limit on: no promise either
  return checks.length === 0 ? undefined : decide(checks, deps);
};

async function decide(checks: RateCheck[], deps: PipelineDeps): Promise<Answer | undefined> {
  try {
    const decision = await deps.limiter.check(checks);
    if (decision.ok) return undefined;
    const error = wireError('rate_limited', `rate limit exceeded (${decision.scopes.join(', ')})`, { retryAfterMs: decision.retryAfterMs });
    return { kind: 'res', response: { ok: false, error }, strike: true, refusedBy: decision.scopes };
  } catch (err) {
    deps.log.warn({ err }, 'rate limiter unreachable');
    return unavailable();
  }
}
