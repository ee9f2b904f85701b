/**
 * @module pipeline/stages/validate
 * Checks the input against the route's schema; the handler only ever sees valid input.
 */
import { describeIssues, type StandardResult } from '../../app/standard-schema.ts';
import type { Stage } from '../types.ts';
import { failWith } from './answers.ts';

export const validate: Stage = (req) => {
  if (req.validated) return undefined; // accepted already (see prefetchLimit)
  const schema = req.route!.input;
  if (!schema) {
    req.input = req.frame.data;
    req.validated = true;
    return undefined;
  }
  const result = schema['~standard'].validate(req.frame.data);
  if (result instanceof Promise) return result.then((r) => accept(req, r));
  return accept(req, result);
};

function accept(req: { input?: unknown; validated?: boolean }, result: StandardResult<unknown>) {
  if (result.issues) return failWith('bad_request', describeIssues(result.issues) || 'invalid input');
  req.input = result.value;
  req.validated = true;
  return undefined;
}
