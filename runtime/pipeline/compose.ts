/**
 * @module pipeline/compose
 * Runs stages in order until one answers. The one place the order of the pipeline is written down.
 */
import { dedupe } from './stages/dedupe.ts';
import { handle } from './stages/handle.ts';
import { rateLimit } from './stages/rate-limit.ts';
import { performReads } from './stages/reads.ts';
import { findRoute } from './stages/route.ts';
import { validate } from './stages/validate.ts';
import type { Answer, PipelineDeps, PipelineRequest, Stage } from './types.ts';

/**
 * The stages that decide a request, up to and including its handler; the actor then runs the
 * `commit` stage itself, so the next request can be decided while this one commits. Dedupe comes
 * first, before the route and the schema: a re-sent id gets its recorded `res` even when the new
 * frame's body differs, and spends no tokens.
 */
export const DECIDE: readonly Stage[] = [dedupe, findRoute, validate, rateLimit, performReads, handle];

/**
 * Runs a request through `stages` until one answers. Synchronous while the stages are: the first
 * stage that returns a promise makes the rest run after it.
 * @returns that answer, or undefined when every stage let the request go on
 */
export function runStages(req: PipelineRequest, deps: PipelineDeps, stages: readonly Stage[], from = 0): Answer | undefined | Promise<Answer | undefined> {
  for (let i = from; i < stages.length; i++) {
    const answer = stages[i]!(req, deps);
    if (answer instanceof Promise) return answer.then((a) => a ?? runStages(req, deps, stages, i + 1));
    if (answer) return answer;
  }
  return undefined;
}
