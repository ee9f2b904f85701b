/**
 * @module pipeline/stages/reads
 * Performs the route's declared reads, so the handler gets shared state without doing I/O.
 */
import type { Read } from '../../app/reads.ts';
import type { Answer, PipelineDeps, PipelineRequest, Stage } from '../types.ts';
import { failWith, unavailable } from './answers.ts';

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
  const declared: unknown = declare(req.input as never, { sessionId: req.session.id, userId: req.session.userId, rooms: Object.keys(req.session.rooms) });
  // what the app declared is checked first: a bad declaration is its bug (`internal`), not an outage
  const problem = badDeclaration(declared);
  if (problem) {
    deps.log.error({ route: req.frame.route, problem }, 'route declared reads the runtime cannot perform');
    return failWith('internal', 'internal error');
  }
  try {
    const entries = await Promise.all(Object.entries(declared as Record<string, Read<unknown>>).map(async ([name, r]) => [name, await perform(r, deps)] as const));
    req.reads = Object.fromEntries(entries);
    return undefined;
  } catch (err) {
    deps.log.warn({ err }, 'declared read failed');
    return unavailable();
  }
}

function badDeclaration(declared: unknown): string | undefined {
  if (typeof declared !== 'object' || declared === null) return 'reads() must return an object of named reads';
  for (const [name, r] of Object.entries(declared)) {
    const read = r as Partial<{ kind: string; room: unknown; session: unknown }> | null;
    if (read?.kind === 'presence' && typeof read.room === 'string') continue;
    if (read?.kind === 'sessionExists' && typeof read.session === 'string') continue;
    return `read "${name}" is not one the runtime knows (use read.presence or read.sessionExists)`;
  }
  return undefined;
}

function perform(r: Read<unknown>, deps: PipelineDeps): Promise<unknown> {
  switch (r.kind) {
    case 'presence':
      return deps.presence.list(r.room);
    case 'sessionExists':
      return deps.store.exists(r.session);
  }
}
