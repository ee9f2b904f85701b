/**
 * @module pipeline/stages/rate-limit
 * Checks the user, IP and route buckets in one call; a refusal costs no tokens and changes nothing.
 */
import type { RateCheck, RateDecision } from '../../ports/rate-limiter.ts';
import type { Answer, PipelineDeps, PipelineRequest, Stage } from '../types.ts';
import { wireError } from '../../errors.ts';
import { unavailable } from './answers.ts';
import { findRoute } from './route.ts';
import { validate } from './validate.ts';

/**
 * Starts the rate-limit decision as soon as the frame arrives (it does not depend on state), so its
 * round trip overlaps earlier requests; the rateLimit stage then takes it. Only for a request that
 * will reach that stage: one with a declared route and valid input (an `unknown_route` or
 * `bad_request` answer comes before the limiter and spends no tokens). An asynchronous schema is
 * left to the pipeline.
 */
export function prefetchLimit(req: PipelineRequest, deps: PipelineDeps): void {
  let checked;
  try {
    checked = findRoute(req, deps) ?? validate(req, deps);
  } catch {
    return; // a schema that throws is a bug: the pipeline meets it again and answers `internal`
  }
  if (checked instanceof Promise) {
    checked.catch(() => {}); // the pipeline validates it again and answers
    return;
  }
  if (checked) return;
  req.prefetchedLimit = { answer: rateLimit(req, deps) };
}

export const rateLimit: Stage = (req, deps) => {
  if (req.prefetchedLimit) return req.prefetchedLimit.answer;
  const checks: RateCheck[] = [];
  const { rlUser, rlIp } = deps.config;
  if (rlUser.rate > 0) checks.push({ scope: 'user', key: req.session.userId, limit: rlUser });
  if (rlIp.rate > 0) checks.push({ scope: 'ip', key: req.ip, limit: rlIp });
  const routeLimit = deps.routeLimit(req.frame.route);
  if (routeLimit && routeLimit.rate > 0) checks.push({ scope: 'route', key: `${req.session.userId}:${req.frame.route}`, limit: routeLimit });
  // no limit on: no promise either
  return checks.length === 0 ? undefined : decide(checks, deps);
};

/** The limiter's answer; synchronous when the limiter is (the embedded one). */
function decide(checks: RateCheck[], deps: PipelineDeps): Answer | undefined | Promise<Answer | undefined> {
  let decision: RateDecision | Promise<RateDecision>;
  try {
    decision = deps.limiter.check(checks);
  } catch (err) {
    return unreachable(err, deps);
  }
  if (decision instanceof Promise) return decision.then(answerTo, (err: unknown) => unreachable(err, deps));
  return answerTo(decision);
}

function answerTo(decision: RateDecision): Answer | undefined {
  if (decision.ok) return undefined;
  const error = wireError('rate_limited', `rate limit exceeded (${decision.scopes.join(', ')})`, { retryAfterMs: decision.retryAfterMs });
  return { kind: 'res', response: { ok: false, error }, strike: true, refusedBy: decision.scopes };
}

function unreachable(err: unknown, deps: PipelineDeps): Answer {
  deps.log.warn({ err }, 'rate limiter unreachable');
  return unavailable();
}
