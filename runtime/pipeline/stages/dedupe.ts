/**
 * @module pipeline/stages/dedupe
 * A request id this session already processed is answered from its record: not run, no tokens.
 * Only ids the owner knows the store may hold cost a lookup.
 */
import type { Answer, PipelineDeps, PipelineRequest, Stage } from '../types.ts';
import { unavailable } from './answers.ts';

export const dedupe: Stage = (req, deps) => (!req.unseenId && req.session.recorded.has(req.frame.id) ? recall(req, deps) : undefined);

/** The recorded `res` of an id this session may have run before (a synchronous miss costs no promise). */
async function recall(req: PipelineRequest, deps: PipelineDeps): Promise<Answer | undefined> {
  try {
    const recalled = await deps.store.recalled(req.session.id, req.frame.id);
    return recalled ? { kind: 'res', response: recalled } : undefined;
  } catch (err) {
    deps.log.warn({ err }, 'dedupe lookup failed');
    return unavailable();
  }
}
