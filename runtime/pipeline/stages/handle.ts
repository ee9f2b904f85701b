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
import { partitionEffects } from './effects.ts';

export const handle: Stage = (req, deps) => {
  const { session } = req;
  try {
    req.result = req.route!.handle(session.state, req.input as never, handlerContext(session, deps.config.instanceId, deps.clock.now(), req.frame.id, (req.reads ?? {}) as never));
    if (typeof req.result !== 'object' || req.result === null) req.result = {};
    if (req.route!.readOnly) return undefined;
    // checked before anything is taken on: a bad effect must not move the cached state either
    const effects = partitionEffects(req.result.effects);
    if ('invalid' in effects) {
      deps.log.error({ route: req.frame.route, problem: effects.invalid }, 'handler returned an invalid effect');
      return failWith('internal', 'internal error');
    }
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
