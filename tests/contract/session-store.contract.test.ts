/**
 * SessionStore contract: every adapter behaves the same, so the embedded default cannot drift from
 * production.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { afterCommit } from '../../runtime/app/define-app.ts';
import { hashToken } from '../../runtime/auth/session-token.ts';
import { compareOffsets, offsetFollows } from '../../runtime/store/offsets.ts';
import type { CommitInput, SessionStore } from '../../runtime/ports/session-store.ts';
import { ADAPTERS, type AdapterSet } from './adapters.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(ADAPTERS)('SessionStore ($name)', (factory) => {
  let set: AdapterSet;
  let store: SessionStore;
  beforeAll(async () => {
    set = await factory.create();
    store = set.store;
  });
  afterAll(async () => {
    await set?.cleanup();
  });

  const newSession = async (state: unknown = { count: 0 }) => {
    const id = `s-${randomUUID()}`;
    const claim = await store.create({ id, tokenHash: hashToken('tok'), userId: `u-${id}`, state, instanceId: 'i1' });
    return { id, epoch: claim.epoch };
  };
  const commit = (id: string, epoch: number, over: Partial<CommitInput> = {}) =>
    store.commit({ sessionId: id, epoch, joins: [], leaves: [], sends: [], broadcasts: [], ...over });

  it('creates a session with epoch 1, no rooms and seq 0, and loads it back', async () => {
    const { id, epoch } = await newSession({ count: 4 });
    expect(epoch).toBe(1);
    expect(await store.load(id)).toEqual({ id, tokenHash: hashToken('tok'), userId: `u-${id}`, state: { count: 4 }, rooms: {}, epoch: 1, lastSeq: 0 });
    expect(await store.exists(id)).toBe(true);
    expect(await store.load('nobody')).toBeNull();
    expect(await store.exists('nobody')).toBe(false);
  });

  it('raises the epoch on every claim and fences commits from an older epoch', async () => {
    const { id } = await newSession();
    const claim = await store.claim(id, 'i2');
    expect(claim!.epoch).toBe(2);
    expect(await commit(id, 1, { state: { count: 99 } })).toEqual({ ok: false, reason: 'stale_epoch' });
    expect((await store.load(id))!.state).toEqual({ count: 0 });
    const ok = await commit(id, 2, { state: { count: 1 } });
    expect(ok.ok).toBe(true);
    expect((await store.load(id))!.state).toEqual({ count: 1 });
  });

  it('records the response of a request id with the commit, and recalls it', async () => {
    const { id, epoch } = await newSession();
    const result = await commit(id, epoch, { requestId: 'r1', state: { count: 1 }, response: { ok: true, reply: { count: 1 } } });
    expect(result).toMatchObject({ ok: true, response: { ok: true, data: { count: 1 } } });
    expect(await store.recalled(id, 'r1')).toEqual({ ok: true, data: { count: 1 } });
    expect(await store.recalled(id, 'r2')).toBeNull();
    await commit(id, epoch, { requestId: 'r3', response: { ok: false, error: { code: 'handler_error', message: 'no', detail: 'nope' } } });
    expect(await store.recalled(id, 'r3')).toEqual({ ok: false, error: { code: 'handler_error', message: 'no', detail: 'nope' } });
  });

  it('keeps only the latest DEDUPE_MAX request ids', async () => {
    const { id, epoch } = await newSession();
    for (const r of ['a', 'b', 'c', 'd']) await commit(id, epoch, { requestId: r, response: { ok: true, reply: r } });
    expect(await store.recalled(id, 'a')).toBeNull();
    expect(await store.recalled(id, 'd')).toEqual({ ok: true, data: 'd' });
  });

  it('commits several requests of one session issued together in order: the last state wins, the latest DEDUPE_MAX ids are kept', async () => {
    const { id, epoch } = await newSession();
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => commit(id, epoch, { requestId: `q${n}`, state: { count: n }, response: { ok: true, reply: n } })),
    );
    expect(results.map((r) => r.ok && r.response)).toEqual([1, 2, 3, 4, 5].map((n) => ({ ok: true, data: n })));
    expect((await store.load(id))!.state).toEqual({ count: 5 });
    expect(await store.recalled(id, 'q2')).toBeNull();
    expect(await store.recalled(id, 'q3')).toEqual({ ok: true, data: 3 });
    expect(await store.recalled(id, 'q5')).toEqual({ ok: true, data: 5 });
    // the claim hands the next owner exactly the ids still remembered
    expect((await store.claim(id, 'i2'))!.recentRequestIds.sort()).toEqual(['q3', 'q4', 'q5']);
  });

  it('tells request ids apart whatever characters they hold', async () => {
    const { id, epoch } = await newSession();
    const ids = ['7:a', '7', '1:7:a', ' ', 'x'.repeat(64), 'é:{"'];
    for (const r of ids) await commit(id, epoch, { requestId: r, response: { ok: true, reply: r } });
    for (const r of ids.slice(-3)) expect(await store.recalled(id, r)).toEqual({ ok: true, data: r });
    expect(await store.recalled(id, '1:7')).toBeNull();
    expect(await store.recalled(id, 'x'.repeat(63))).toBeNull();
  });

  it('commits a request naming rooms and sessions with lone surrogates without failing the requests committed with it', async () => {
    const a = await newSession();
    const b = await newSession();
    const odd = `room-${randomUUID()}-\ud800`;
    const [weird, plain] = await Promise.all([
      commit(a.id, a.epoch, { requestId: 'w', joins: [odd], sends: [{ to: 'nobody-\udc00', route: 'dm', data: '\ud800' }], broadcasts: [{ room: odd, route: 'm', data: 'x\udfff' }], response: { ok: true, reply: 'w' } }),
      commit(b.id, b.epoch, { requestId: 'p', state: { count: 1 }, response: { ok: true, reply: 'p' } }),
    ]);
    expect(weird.ok).toBe(true);
    expect(plain).toMatchObject({ ok: true, response: { ok: true, data: 'p' } });
    expect((await store.load(b.id))!.state).toEqual({ count: 1 });
  });

  it('forgets request ids after DEDUPE_TTL_S', async () => {
    const { id, epoch } = await newSession();
    await commit(id, epoch, { requestId: 'old', response: { ok: true, reply: 1 } });
    await sleep(1100);
    expect(await store.recalled(id, 'old')).toBeNull();
  });

  it('assigns direct seqs 1, 2, 3 per target and replays them after a seq', async () => {
    const a = await newSession();
    const b = await newSession();
    const r = await commit(a.id, a.epoch, { sends: [{ to: b.id, route: 'x', data: 1 }, { to: b.id, route: 'x', data: 2 }] });
    expect(r.ok && r.sent.map((m) => [m.to, m.seq])).toEqual([[b.id, 1], [b.id, 2]]);
    expect((await store.load(b.id))!.lastSeq).toBe(2);
    expect(await store.readOutbox(b.id, 0)).toEqual({ gap: false, messages: [{ to: b.id, seq: 1, route: 'x', data: 1 }, { to: b.id, seq: 2, route: 'x', data: 2 }] });
    expect(await store.readOutbox(b.id, 1)).toEqual({ gap: false, messages: [{ to: b.id, seq: 2, route: 'x', data: 2 }] });
    expect(await store.readOutbox(b.id, 2)).toEqual({ gap: false, messages: [] });
  });

  it('says gap when the outbox was trimmed past the asked seq, or the seq is beyond the last', async () => {
    const a = await newSession();
    const b = await newSession();
    for (let i = 1; i <= 5; i++) await commit(a.id, a.epoch, { sends: [{ to: b.id, route: 'x', data: i }] });
    const replay = await store.readOutbox(b.id, 0);
    expect(replay.gap).toBe(true);
    expect(replay.messages.map((m) => m.seq)).toEqual([3, 4, 5]);
    expect((await store.readOutbox(b.id, 2)).gap).toBe(false);
    expect(await store.readOutbox(b.id, 9)).toEqual({ gap: true, messages: [] });
  });

  it('drops acknowledged direct messages, only for the current epoch', async () => {
    const a = await newSession();
    for (let i = 1; i <= 3; i++) await commit(a.id, a.epoch, { sends: [{ to: a.id, route: 'x', data: i }] });
    await store.ack(a.id, 2, a.epoch + 5);
    expect((await store.readOutbox(a.id, 0)).messages).toHaveLength(3);
    await store.ack(a.id, 2, a.epoch);
    expect(await store.readOutbox(a.id, 2)).toEqual({ gap: false, messages: [{ to: a.id, seq: 3, route: 'x', data: 3 }] });
  });

  it('records joins with the room offset before the join, and leaves', async () => {
    const room = `room-${randomUUID()}`;
    const a = await newSession();
    const b = await newSession();
    await commit(b.id, b.epoch, { joins: [room] });
    const sent = await commit(b.id, b.epoch, { broadcasts: [{ room, route: 'm', data: 1 }] });
    const joined = await commit(a.id, a.epoch, { joins: [room] });
    expect(joined.ok && joined.rooms![room]).toBe(sent.ok && sent.broadcast[0]!.off);
    expect((await store.load(a.id))!.rooms).toEqual({ [room]: sent.ok && sent.broadcast[0]!.off });
    const left = await commit(a.id, a.epoch, { leaves: [room] });
    expect(left.ok && left.rooms).toEqual({});
  });

  it('gives room messages increasing, distinct offsets and replays after an offset', async () => {
    const room = `room-${randomUUID()}`;
    const a = await newSession();
    const joined = await commit(a.id, a.epoch, { joins: [room] });
    const start = joined.ok ? joined.rooms![room]! : '';
    const offs: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const r = await commit(a.id, a.epoch, { broadcasts: [{ room, route: 'm', data: i }] });
      offs.push(r.ok ? r.broadcast[0]!.off : '');
    }
    expect(new Set(offs).size).toBe(3);
    expect(compareOffsets(offs[0]!, offs[1]!)).toBeLessThan(0);
    expect(offsetFollows(offs[0]!, offs[1]!)).toBe(true);
    expect(offsetFollows(offs[0]!, offs[2]!)).toBe(false);
    expect(offsetFollows(start, offs[0]!)).toBe(true);
    expect(await store.readRoom(room, start)).toEqual({ gap: false, messages: offs.map((off, i) => ({ room, off, route: 'm', data: i + 1 })) });
    expect((await store.readRoom(room, offs[1]!)).messages.map((m) => m.data)).toEqual([3]);
  });

  it('says gap for a room offset that was trimmed or cannot be used', async () => {
    const room = `room-${randomUUID()}`;
    const a = await newSession();
    const joined = await commit(a.id, a.epoch, { joins: [room] });
    for (let i = 1; i <= 5; i++) await commit(a.id, a.epoch, { broadcasts: [{ room, route: 'm', data: i }] });
    const trimmed = await store.readRoom(room, joined.ok ? joined.rooms![room]! : '');
    expect(trimmed.gap).toBe(true);
    expect(trimmed.messages.map((m) => m.data)).toEqual([3, 4, 5]);
    expect(await store.readRoom(room, 'garbage')).toEqual({ gap: true, messages: [] });
    expect(compareOffsets('garbage', 'x:1')).toBeNull();
  });

  it('reports rooms only when the commit changed a membership', async () => {
    const a = await newSession();
    const plain = await commit(a.id, a.epoch, { state: { count: 1 } });
    expect(plain.ok && plain.rooms).toBeUndefined();
    const room = `room-${randomUUID()}`;
    const joined = await commit(a.id, a.epoch, { joins: [room] });
    expect(joined.ok && Object.keys(joined.rooms!)).toEqual([room]);
  });

  it('commits requests issued together each on its own, fencing each by its own epoch', async () => {
    const a = await newSession();
    const b = await newSession();
    await store.claim(b.id, 'i2');
    const [ra, rb] = await Promise.all([
      commit(a.id, a.epoch, { requestId: 'x', state: { count: 5 }, response: { ok: true, reply: 5 } }),
      commit(b.id, b.epoch, { requestId: 'x', state: { count: 6 }, response: { ok: true, reply: 6 } }),
    ]);
    expect(ra).toMatchObject({ ok: true, response: { ok: true, data: 5 } });
    expect(rb).toEqual({ ok: false, reason: 'stale_epoch' });
    expect((await store.load(b.id))!.state).toEqual({ count: 0 });
  });

  it('fences commits of one session issued together under two epochs, and refuses a missing session, each on its own', async () => {
    const a = await newSession();
    const b = await newSession();
    await store.claim(a.id, 'i2');
    // the old owner's and the new owner's requests in the same turn, a hook's commit without an id, another session
    const results = await Promise.all([
      commit(a.id, 1, { requestId: 'old1', state: { count: 1 }, response: { ok: true, reply: 1 } }),
      commit(a.id, 2, { requestId: 'new1', state: { count: 2 }, response: { ok: true, reply: 2 } }),
      commit(b.id, b.epoch, { requestId: 'b1', response: { ok: false, error: { code: 'handler_error', message: 'no' } } }),
      commit(a.id, 1, { requestId: 'old2', state: { count: 3 }, response: { ok: true, reply: 3 } }),
      commit(a.id, 2, { state: { count: 4 } }),
      commit(`s-${randomUUID()}`, 1, { requestId: 'gone', response: { ok: true, reply: 0 } }),
    ]);
    expect(results.map((r) => (r.ok ? 'ok' : r.reason))).toEqual(['stale_epoch', 'ok', 'ok', 'stale_epoch', 'ok', 'no_session']);
    expect((await store.load(a.id))!.state).toEqual({ count: 4 });
    expect(await store.recalled(a.id, 'new1')).toEqual({ ok: true, data: 2 });
    expect(await store.recalled(a.id, 'old1')).toBeNull();
    expect(await store.recalled(a.id, 'old2')).toBeNull();
    expect(await store.recalled(b.id, 'b1')).toEqual({ ok: false, error: { code: 'handler_error', message: 'no' } });
  });

  it('resolves an afterCommit reply with the offsets and seqs the commit assigned', async () => {
    const room = `room-${randomUUID()}`;
    const a = await newSession();
    const r = await commit(a.id, a.epoch, {
      requestId: 'ac',
      broadcasts: [{ room, route: 'm', data: 1 }],
      sends: [{ to: a.id, route: 'd', data: 1 }],
      response: { ok: true, reply: afterCommit((c) => ({ off: c.offsets[0], seq: c.seqs[0] })) },
    });
    expect(r.ok && r.response).toEqual({ ok: true, data: { off: r.ok && r.broadcast[0]!.off, seq: 1 } });
    expect(await store.recalled(a.id, 'ac')).toEqual(r.ok && r.response);
  });

  it('keeps an owned session forever and expires a released one SESSION_TTL_S later', async () => {
    const owned = await newSession();
    const released = await newSession();
    await store.release(released.id, released.epoch);
    await sleep(1200);
    expect(await store.exists(owned.id)).toBe(true);
    expect(await store.load(released.id)).toBeNull();
    expect(await store.claim(released.id, 'i1')).toBeNull();
  });

  it('ignores a release from an older epoch', async () => {
    const s = await newSession();
    await store.claim(s.id, 'i2');
    await store.release(s.id, s.epoch);
    await sleep(1200);
    expect(await store.exists(s.id)).toBe(true);
  });
});
