/**
 * @module pipeline/stages/route
 * Finds the declared route for the request.
 */
import type { AnyRoute, Stage } from '../types.ts';
import { failWith } from './answers.ts';

export const findRoute: Stage = (req, deps) => {
  if (req.route) return undefined; // found already (see prefetchLimit)
  const name = req.frame.route;
  const route = Object.hasOwn(deps.app.routes, name) ? (deps.app.routes[name] as AnyRoute) : undefined;
  if (!route) return failWith('unknown_route', `no route named "${name.slice(0, 64)}"`);
  req.route = route;
  return undefined;
};
