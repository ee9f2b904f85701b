/**
 * @module actor/open-session
 * The `hello` decision: authenticate, then start a new session or resume (and claim) an existing one.
 * Nothing is written for a refused hello.
 */
import { verifyJwt } from '../auth/jwt.ts';
import { hashToken, newSessionId, newToken, tokenMatches } from '../auth/session-token.ts';
import type { CloseName } from '../errors.ts';
import type { Clock } from '../ports/clock.ts';
import type { SessionRecord, SessionStore } from '../ports/session-store.ts';
import type { HelloFrame } from '../protocol/frames.ts';
import type { SessionOutcome } from '../telemetry/metrics.ts';

export type Opened = {
  kind: 'open';
  record: SessionRecord;
  epoch: number;
  recentRequestIds: string[];
  token: string;
  resumed: boolean;
  outcome: SessionOutcome;
};
export type Refused = { kind: 'refuse'; close: CloseName; why: string; outcome?: SessionOutcome };

export interface OpenDeps {
  store: SessionStore;
  clock: Clock;
  instanceId: string;
  authSecret: string | undefined;
  initialState(): unknown;
}

/**
 * Decides what a `hello` opens.
 * @returns the claimed session, or the close to send
 * @throws when the store fails (the caller closes 1013)
 */
export async function openSession(hello: HelloFrame, deps: OpenDeps): Promise<Opened | Refused> {
  let sub: string | undefined;
  if (deps.authSecret !== undefined) {
    if (hello.auth === undefined) return { kind: 'refuse', close: 'policy', why: 'hello.auth is required', outcome: 'rejected' };
    if (hello.auth === null) return { kind: 'refuse', close: 'policy', why: 'hello.auth must be a JWT string', outcome: 'rejected' };
    const verdict = verifyJwt(hello.auth, deps.authSecret, deps.clock.now());
    if (!verdict.ok) return { kind: 'refuse', close: 'policy', why: verdict.reason, outcome: 'rejected' };
    sub = verdict.sub;
  }
  if (hello.session !== undefined) {
    const existing = await deps.store.load(hello.session);
    if (existing) {
      if (hello.token === undefined || !tokenMatches(hello.token, existing.tokenHash)) {
        return { kind: 'refuse', close: 'badToken', why: 'wrong resume token', outcome: 'rejected' };
      }
      if (sub !== undefined && sub !== existing.userId) return { kind: 'refuse', close: 'badToken', why: 'auth sub differs from the session user', outcome: 'rejected' };
      const claim = await deps.store.claim(hello.session, deps.instanceId);
      if (claim) return { kind: 'open', record: claim.record, epoch: claim.epoch, recentRequestIds: claim.recentRequestIds, token: hello.token, resumed: true, outcome: 'resumed' };
    }
  }
  const id = newSessionId();
  const token = newToken();
  const claim = await deps.store.create({ id, tokenHash: hashToken(token), userId: sub ?? id, state: deps.initialState(), instanceId: deps.instanceId });
  return { kind: 'open', record: claim.record, epoch: claim.epoch, recentRequestIds: [], token, resumed: false, outcome: hello.session === undefined ? 'new' : 'expired' };
}
