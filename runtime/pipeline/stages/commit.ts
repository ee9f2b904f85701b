/**
 * @module pipeline/stages/commit
 * Writes the request's outcome in one atomic, epoch-fenced step: new state, memberships, the
 * exactly-once record and the messages it caused. Read-only routes skip it.
 */
import { type Committed, resolveReply } from '../../app/define-app.ts';
import { type CommitInput, type CommitResult, UncommittableError } from '../../ports/session-store.ts';
import type { Answer, PipelineDeps, PipelineRequest, Stage } from '../types.ts';
import { failWith, unavailable } from './answers.ts';

const NOTHING_COMMITTED: Committed = { offsets: [], seqs: [] };

// Not an async function: this runs for every request, and one promise (the store's) is enough.
export const commit: Stage = (req, deps) => {
  const result = req.result ?? {};
  if (req.route!.readOnly) {
    if (req.rejected) return { kind: 'res', response: { ok: false, error: req.rejected } };
    const data = resolveReply(result.reply, NOTHING_COMMITTED);
    return { kind: 'res', response: data === undefined ? { ok: true } : { ok: true, data } };
  }
  // sorted and checked by the handle stage; a rejected request takes no effect
  const effects = req.rejected ? undefined : req.effects;
  const input: CommitInput = {
    sessionId: req.session.id,
    epoch: req.session.epoch,
    requestId: req.frame.id,
    joins: effects?.joins ?? [],
    leaves: effects?.leaves ?? [],
    sends: effects?.sends ?? [],
    broadcasts: effects?.broadcasts ?? [],
    response: req.rejected ? { ok: false, error: req.rejected } : { ok: true, reply: result.reply, replyJson: req.resultJson?.reply },
  };
  if (!req.rejected && result.state !== undefined) {
    input.state = result.state;
    input.stateJson = req.resultJson?.state;
  }
  // Recorded before the outcome is known: a commit that timed out may still have happened, so a
  // retry of this id must look in the store.
  req.session.recorded.add(req.frame.id);
  let committing: Promise<CommitResult>;
  try {
    committing = deps.store.commit(input);
  } catch (err) {
    committing = Promise.reject(err);
  }
  return committing.then(
    (outcome) => answerOf(req, deps, outcome, effects?.close),
    (err: unknown) => {
      if (err instanceof UncommittableError) {
        // the application's bug, not an outage: nothing was written; the cached state went ahead
        // of the store when the request was decided, so the actor reloads it
        deps.log.error({ route: req.frame.route, problem: err.message }, 'handler result could not be committed');
        req.outcomeUnknown = true;
        return failWith('internal', 'internal error');
      }
      deps.log.warn({ err }, 'commit failed');
      req.outcomeUnknown = true;
      return unavailable();
    },
  );
};

function answerOf(req: PipelineRequest, deps: PipelineDeps, outcome: CommitResult, close: Extract<Answer, { kind: 'res' }>['close']): Answer {
  if (!outcome.ok) {
    if (outcome.reason === 'stale_epoch') return { kind: 'stale' };
    // Only a store that lost data (flushed, restarted without persistence, evicting) gets here:
    // the owner keeps its session alive while connected.
    deps.log.error({ session: req.session.id }, 'commit found no session: the store lost it');
    return { kind: 'lost' };
  }
  const answer: Answer = { kind: 'res', response: outcome.response!, commit: outcome };
  if (close) answer.close = close;
  return answer;
}
