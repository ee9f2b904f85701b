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
 * The stages that decide a request, up to and including its handler. Dedupe comes first, before the
 * route and the schema: a re-sent id gets its recorded `res` even when the new frame's body
 * differs, and spends no tokens.
 */
export const DECIDE: readonly Stage[] = [dedupe, findRoute, validate, rateLimit, performReads, handle];

/** The whole pipeline: decide, then commit. */
export const STAGES: readonly Stage[] = [...DECIDE, commit];

/**
 * Runs a request through `stages` until one answers.
 * @returns that answer, or undefined when every stage let the request go on
 */
export async function runStages(req: PipelineRequest, deps: PipelineDeps, stages: readonly Stage[]): Promise<Answer | undefined> {
  for (const stage of stages) {
    let answer = stage(req, deps);
    if (answer instanceof Promise) answer = await answer;
    if (answer) return answer;
  }
  return undefined;
}

/** Runs one request through the whole pipeline. */
export async function runPipeline(req: PipelineRequest, deps: PipelineDeps): Promise<Answer> {
  const answer = await runStages(req, deps, STAGES);
  if (answer) return answer;
  deps.log.error({ route: req.frame.route }, 'pipeline ended without an answer');
  return { kind: 'res', response: { ok: false, error: wireError('internal', 'internal error') } };
}
