/**
 * @module pipeline/context
 * The `ctx` a handler or lifecycle hook is called with: everything impure, read once.
 */
import { randomUUID } from 'node:crypto';
import type { HandlerContext } from '../app/define-app.ts';
import type { SessionView } from './types.ts';

export function handlerContext<R>(session: SessionView, instanceId: string, now: number, requestId: string, reads: R): HandlerContext<R> {
  return { sessionId: session.id, userId: session.userId, instanceId, requestId, rooms: Object.keys(session.rooms), reads, now, id: randomUUID };
}
