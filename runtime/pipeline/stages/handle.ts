/**
 * @module pipeline/stages/handle
 * Calls the pure handler. A HandlerError becomes a recorded `handler_error`; any other throw, or an
 * invalid effect, is a bug, answered `internal` with the details in the log only.
 */
import { HandlerError, isAfterCommit, UnauthorizedError } from '../../app/define-app.ts';
import { wireError } from '../../errors.ts';
import { handlerContext } from '../context.ts';
import type { PipelineDeps, PipelineRequest, Stage } from '../types.ts';
import { failWith } from './answers.ts';
import { partitionEffects } from './effects.ts';
import { ignoreRejection, isThenable, resultNotJson } from './result-check.ts';

export const handle: Stage = (req, deps) => {
  const { session } = req;
  try {
    const returned: unknown = req.route!.handle(session.state, req.input as never, handlerContext(session, deps.config.instanceId, deps.clock.now(), req.frame.id, (req.reads ?? {}) as never));
    if (isThenable(returned)) {
      ignoreRejection(returned);
      return bug(req, deps, 'the handler returned a promise: handlers are synchronous (declare reads for what they need)');
    }
    const result = (typeof returned === 'object' && returned !== null ? returned : {}) as NonNullable<typeof req.result>;
    req.result = result;
    // checked before anything is taken on: a bad effect or data must not move the cached state either
    if (req.route!.readOnly) {
      const problem = resultNotJson(undefined, result.reply, !isAfterCommit(result.reply), undefined);
      return problem ? bug(req, deps, problem) : undefined;
    }
    const effects = partitionEffects(result.effects);
    if ('invalid' in effects) return bug(req, deps, effects.invalid, 'handler returned an invalid effect');
    const problem = resultNotJson(result.state, result.reply, !isAfterCommit(result.reply), effects);
    if (problem) return bug(req, deps, problem);
    req.effects = effects;
    return undefined;
  } catch (err) {
    if (err instanceof HandlerError) {
      // Recorded like a success: the commit stage writes the exactly-once record with no changes.
      req.result = {};
      req.rejected = wireError('handler_error', err.message, err.detail === undefined ? undefined : { detail: err.detail });
      return undefined;
    }
    if (err instanceof UnauthorizedError) return failWith('unauthorized', err.message);
    deps.log.error({ err, route: req.frame.route }, 'handler threw');
    return failWith('internal', 'internal error');
  }
};

/** A bug in the handler's result: answered `internal`, the details in the log only, nothing taken on. */
function bug(req: PipelineRequest, deps: PipelineDeps, problem: string, what = 'handler returned something the runtime cannot take') {
  req.result = undefined;
  deps.log.error({ route: req.frame.route, problem }, what);
  return failWith('internal', 'internal error');
}
