/**
 * @module pipeline/stages/reads
 * Performs the route's declared reads, so the handler gets shared state without doing I/O.
 */
import type { Read } from '../../app/reads.ts';
import type { Answer, PipelineDeps, PipelineRequest, Stage } from '../types.ts';
import { unavailable } from './answers.ts';

export const performReads: Stage = (req, deps) => {
  const declare = req.route!.reads;
  if (!declare) {
    req.reads = NO_READS;
    return undefined;
  }
  return readDeclared(req, deps, declare);
};

const NO_READS: Record<string, unknown> = Object.freeze({});

async function readDeclared(req: PipelineRequest, deps: PipelineDeps, declare: NonNullable<NonNullable<PipelineRequest['route']>['reads']>): Promise<Answer | undefined> {
  const declared = declare(req.input as never, { sessionId: req.session.id, userId: req.session.userId, rooms: Object.keys(req.session.rooms) });
  try {
    const entries = await Promise.all(Object.entries(declared).map(async ([name, r]) => [name, await perform(r, deps)] as const));
    req.reads = Object.fromEntries(entries);
    return undefined;
  } catch (err) {
    deps.log.warn({ err }, 'declared read failed');
    return unavailable();
  }
}

function perform(r: Read<unknown>, deps: PipelineDeps): Promise<unknown> {
  switch (r.kind) {
    case 'presence':
      return deps.presence.list(r.room);
    case 'sessionExists':
      return deps.store.exists(r.session);
  }
}
