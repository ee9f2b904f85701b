/**
 * @module pipeline/compose
 * Runs stages in order until one answers. The one place the order of the pipeline is written down.
 */
import { wireError } from '../errors.ts';
import { commit } from './stages/commit.ts';
import { dedupe } from './stages/dedupe.ts';
import { handle } from './stages/handle.ts';
import { rateLimit } from './stages/rate-limit.ts';
import { performReads } from './stages/reads.ts';
import { findRoute } from './stages/route.ts';
import { validate } from './stages/validate.ts';
import type { Answer, PipelineDeps, PipelineRequest, Stage } from './types.ts';

/**
 * The request pipeline. Dedupe comes first, before the route and the schema: a re-sent id gets its
 * recorded `res` even when the new frame's body differs, and spends no tokens.
 */
export const STAGES: readonly Stage[] = [dedupe, findRoute, validate, rateLimit, performReads, handle, commit];

/**
 * Runs one request through the stages.
 * @returns the answer of the first stage that gives one
 */
export async function runPipeline(req: PipelineRequest, deps: PipelineDeps, stages: readonly Stage[] = STAGES): Promise<Answer> {
  for (const stage of stages) {
    let answer = stage(req, deps);
    if (answer instanceof Promise) answer = await answer;
    if (answer) return answer;
  }
  deps.log.error({ route: req.frame.route }, 'pipeline ended without an answer');
  return { kind: 'res', response: { ok: false, error: wireError('internal', 'internal error') } };
}
