/**
 * @module pipeline/stages/handle
 * Calls the pure handler. A HandlerError becomes a recorded `handler_error`; any other throw, or an
 * invalid effect, is a bug, answered `internal` with the details in the log only.
 */
import { HandlerError, UnauthorizedError } from '../../app/define-app.ts';
import { wireError } from '../../errors.ts';
import { handlerContext } from '../context.ts';
import type { Stage } from '../types.ts';
import { failWith } from './answers.ts';
import { checkReturned } from './result-check.ts';

export const handle: Stage = (req, deps) => {
  const { session } = req;
  try {
    const returned: unknown = req.route!.handle(session.state, req.input as never, handlerContext(session, deps.config.instanceId, deps.clock.now(), req.frame.id, (req.reads ?? {}) as never));
    // checked before anything is taken on: a bad effect or data must not move the cached state either
    const checked = checkReturned(returned, req.route!.readOnly === true);
    if ('problem' in checked) {
      deps.log.error({ route: req.frame.route, problem: checked.problem }, 'handler returned something the runtime cannot take');
      return failWith('internal', 'internal error');
    }
    req.result = checked.result;
    req.resultJson = checked.json;
    if (!req.route!.readOnly) req.effects = checked.effects;
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
