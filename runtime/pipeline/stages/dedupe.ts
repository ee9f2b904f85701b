/**
 * @module pipeline/stages/dedupe
 * A request id this session already processed is answered from its record: not run, no tokens.
 */
import type { Stage } from '../types.ts';
import { unavailable } from './answers.ts';

export const dedupe: Stage = async (req, deps) => {
  try {
    const recalled = await deps.store.recalled(req.session.id, req.frame.id);
    return recalled ? { kind: 'res', response: recalled } : undefined;
  } catch (err) {
    deps.log.warn({ err }, 'dedupe lookup failed');
    return unavailable();
  }
};
