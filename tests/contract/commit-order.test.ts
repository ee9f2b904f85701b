/**
 * One session's commits reach Redis in the order they were issued, whichever way each goes: the
 * group commit (batched per loop turn, a small batch maybe a turn later) or, with
 * REDIS_COMMIT=split, the two-step commit of a request with messages or joins (which goes at once).
 * Otherwise an earlier request's state could overwrite a later one's (SPEC 3: a resume gets the
 * same state; committed requests form a prefix).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../runtime/auth/session-token.ts';
import type { CommitInput } from '../../runtime/ports/session-store.ts';
import { startRedisStore, type TestRedisStore } from '../helpers/redis-store.ts';

const limits = { sessionTtlS: 60, dedupeTtlS: 60, dedupeMax: 100, outboxMax: 100, roomHistoryMax: 100, roomTtlS: 60 };

describe.each(['single', 'split'] as const)('commit order of one session on Redis (%s commit)', (mode) => {
  let set: TestRedisStore;
  beforeAll(async () => {
    set = await startRedisStore(limits, mode);
  });
  afterAll(async () => {
    await set?.cleanup();
  });
  const c = (sessionId: string, over: Partial<CommitInput>): CommitInput => ({ sessionId, epoch: 1, joins: [], leaves: [], sends: [], broadcasts: [], ...over });
  const sessions = async (...ids: string[]) => {
    const tag = `${mode}-${Math.random().toString(36).slice(2)}`;
    const named = ids.map((id) => `${id}-${tag}`);
    for (const id of named) await set.store.create({ id, tokenHash: hashToken('t'), userId: id, state: { n: 0 }, instanceId: 'i' });
    return named;
  };

  it.each([
    ['sends a message', (self: string) => ({ sends: [{ to: self, route: 'm', data: 1 }] })],
    ['broadcasts', () => ({ broadcasts: [{ room: 'order-room', route: 'm', data: 1 }] })],
    ['joins a room', () => ({ joins: ['order-room-2'] })],
  ] as const)('keeps the later state when a plain commit is followed by one that %s, while another batch is out', async (_what, effects) => {
    const { store } = set;
    const [other, s] = await sessions('other', 's');
    const out = store.commit(c(other!, { requestId: 'o1', state: { n: 9 }, response: { ok: true, reply: 0 } }));
    await new Promise((r) => process.nextTick(r)); // that batch is out at Redis
    const first = store.commit(c(s!, { requestId: 'r1', state: { n: 1 }, response: { ok: true, reply: 1 } }));
    const second = store.commit(c(s!, { requestId: 'r2', state: { n: 2 }, ...effects(s!), response: { ok: true, reply: 2 } }));
    // the rest of this turn keeps the instance busy, as under load
    setImmediate(() => {
      const until = performance.now() + 5;
      while (performance.now() < until);
    });
    const results = await Promise.all([out, first, second]);
    expect(results.every((r) => r.ok)).toBe(true);
    expect((await store.load(s!))!.state).toEqual({ n: 2 });
  });

  it('keeps the later state when a commit with a message is followed by a plain one', async () => {
    const { store } = set;
    const [s] = await sessions('s');
    const first = store.commit(c(s!, { requestId: 'r1', state: { n: 1 }, sends: [{ to: s!, route: 'm', data: 1 }], response: { ok: true, reply: 1 } }));
    const second = store.commit(c(s!, { requestId: 'r2', state: { n: 2 }, response: { ok: true, reply: 2 } }));
    expect((await Promise.all([first, second])).every((r) => r.ok)).toBe(true);
    expect((await store.load(s!))!.state).toEqual({ n: 2 });
  });
});
