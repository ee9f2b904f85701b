/**
 * The two-step commit (REDIS_COMMIT=split, what Redis Cluster needs) when its instance dies between
 * the steps: the session's next owner finishes the deliveries at claim, before answering anything,
 * and nothing is appended twice. The "dead instance" here runs step 1 (and, in the second case, one
 * of the deliveries) exactly as redis-two-step.ts does, and then stops.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { afterCommit } from '../../runtime/app/define-app.ts';
import { hashToken } from '../../runtime/auth/session-token.ts';
import type { CommitInput } from '../../runtime/ports/session-store.ts';
import { commitCall } from '../../runtime/store/redis/commit-args.ts';
import type { RedisClient } from '../../runtime/store/redis/connection.ts';
import { roomKeys, sessionKeys } from '../../runtime/store/redis/keys.ts';
import { RedisSessionStore } from '../../runtime/store/redis/redis-session-store.ts';
import { runScript } from '../../runtime/store/redis/scripts.ts';
import { startRedisStore, type TestRedisStore } from '../helpers/redis-store.ts';

const limits = { sessionTtlS: 60, dedupeTtlS: 60, dedupeMax: 16, outboxMax: 100, roomHistoryMax: 100, roomTtlS: 60 };

describe('two-step commit: an instance dies between the steps', () => {
  let set: TestRedisStore;
  let client: RedisClient;
  let store: RedisSessionStore;
  beforeAll(async () => {
    set = await startRedisStore(limits, 'split');
    ({ client, store } = set);
  });
  afterAll(async () => {
    await set?.cleanup();
  });

  const newSession = async () => {
    const id = `s-${randomUUID()}`;
    await store.create({ id, tokenHash: hashToken('t'), userId: id, state: { n: 0 }, instanceId: 'i1' });
    return id;
  };

  /** Step 1 of a commit, as the instance that then dies ran it: returns the pending entry's number. */
  const stepOne = async (input: CommitInput, joinOffsets: string[] = []) => {
    const { keys, args } = commitCall([input], limits, '', joinOffsets);
    const [reply] = (await runScript(client, 'commit', keys, args)) as unknown[][];
    expect(reply![0]).toBe('pending');
    return String(reply![1]);
  };

  const setUp = async () => {
    const sender = await newSession();
    const target = await newSession();
    const room = `room-${randomUUID()}`;
    await store.commit({ sessionId: sender, epoch: 1, joins: [room], leaves: [], sends: [], broadcasts: [] });
    const input: CommitInput = {
      sessionId: sender,
      epoch: 1,
      requestId: 'r1',
      state: { n: 1 },
      joins: [],
      leaves: [],
      sends: [{ to: target, route: 'dm', data: { text: 'hi' } }],
      broadcasts: [{ room, route: 'chat', data: { text: 'all' } }],
      response: { ok: true, reply: afterCommit((c) => ({ seq: c.seqs[0], off: c.offsets[0] })) },
    };
    return { sender, target, room, input };
  };

  const streamLength = (key: string) => client.xLen(key);

  it('the next owner delivers every pending message once and records the response before it answers', async () => {
    const { sender, target, room, input } = await setUp();
    await stepOne(input);
    // the state is committed, the messages are not delivered yet, the request id is not answered
    expect(await streamLength(sessionKeys(target).outbox)).toBe(0);
    expect(await streamLength(roomKeys(room).stream)).toBe(0);

    const claim = await store.claim(sender, 'i2');
    expect(claim!.record.state).toEqual({ n: 1 });
    expect(await streamLength(sessionKeys(target).outbox)).toBe(1);
    expect(await streamLength(roomKeys(room).stream)).toBe(1);
    const replay = await store.readRoom(room, claim!.record.rooms[room]!);
    expect(replay.messages.map((m) => m.data)).toEqual([{ text: 'all' }]);
    expect((await store.readOutbox(target, 0)).messages.map((m) => [m.seq, m.data])).toEqual([[1, { text: 'hi' }]]);
    // the re-sent request gets the response with what the deliveries assigned
    expect(await store.recalled(sender, 'r1')).toEqual({ ok: true, data: { seq: 1, off: replay.messages[0]!.off } });
    expect(await client.hLen(sessionKeys(sender).pending)).toBe(0);

    // a later claim finds nothing left to do
    await store.claim(sender, 'i3');
    expect(await streamLength(sessionKeys(target).outbox)).toBe(1);
    expect(await streamLength(roomKeys(room).stream)).toBe(1);
  });

  it('a message delivered before the crash is not appended again', async () => {
    const { sender, target, room, input } = await setUp();
    const n = await stepOne(input);
    // the dead instance got as far as the first delivery (the direct message)
    const k = sessionKeys(target);
    await runScript(client, 'deliver', [k.session, k.outbox], ['s', 'dm', JSON.stringify({ text: 'hi' }), limits.outboxMax, limits.roomTtlS * 1000, '', sender, n, 0]);
    // meanwhile others wrote to the same streams
    await store.commit({ sessionId: target, epoch: 1, joins: [], leaves: [], sends: [{ to: target, route: 'dm', data: 'other' }], broadcasts: [] });

    await store.claim(sender, 'i2');
    expect((await store.readOutbox(target, 0)).messages.map((m) => m.data)).toEqual([{ text: 'hi' }, 'other']);
    expect(await streamLength(roomKeys(room).stream)).toBe(1);
    expect(await store.recalled(sender, 'r1')).toMatchObject({ ok: true, data: { seq: 1 } });
  });

  it('finishes several pending entries in order, each message once, each response with its own seq', async () => {
    const sender = await newSession();
    const target = await newSession();
    const dm = (id: string, text: string): CommitInput => ({
      sessionId: sender,
      epoch: 1,
      requestId: id,
      joins: [],
      leaves: [],
      sends: [{ to: target, route: 'dm', data: text }],
      broadcasts: [],
      response: { ok: true, reply: afterCommit((c) => ({ seq: c.seqs[0] })) },
    });
    const n1 = await stepOne(dm('a', 'first'));
    const n2 = await stepOne(dm('b', 'second'));
    // the dead instance delivered both messages but recorded neither response
    const k = sessionKeys(target);
    for (const [n, text] of [[n1, 'first'], [n2, 'second']] as const) {
      await runScript(client, 'deliver', [k.session, k.outbox], ['s', 'dm', JSON.stringify(text), limits.outboxMax, limits.roomTtlS * 1000, '', sender, n, 0]);
    }
    await store.claim(sender, 'i2');
    expect((await store.readOutbox(target, 0)).messages.map((m) => [m.seq, m.data])).toEqual([
      [1, 'first'],
      [2, 'second'],
    ]);
    expect(await store.recalled(sender, 'a')).toEqual({ ok: true, data: { seq: 1 } });
    expect(await store.recalled(sender, 'b')).toEqual({ ok: true, data: { seq: 2 } });
  });

  it('a stale owner that goes on with its deliveries after the next owner finished them appends nothing', async () => {
    const { sender, target, room, input } = await setUp();
    const n = await stepOne(input);
    const claim = await store.claim(sender, 'i2');
    const replay = await store.readRoom(room, claim!.record.rooms[room]!);
    // the old owner wakes up (a long pause) and runs its steps 2 and 3
    const k = sessionKeys(target);
    const r = roomKeys(room);
    const seq = await runScript(client, 'deliver', [k.session, k.outbox], ['s', 'dm', '"late"', limits.outboxMax, limits.roomTtlS * 1000, '', sender, n, 0]);
    const off = await runScript(client, 'deliver', [r.meta, r.stream], ['b', 'chat', '"late"', limits.roomHistoryMax, limits.roomTtlS * 1000, 'e-x', sender, n, 1]);
    // it is told what the first delivery got, and nothing is appended
    expect(seq).toBe(1);
    expect(off).toBe(replay.messages[0]!.off);
    expect(await streamLength(k.outbox)).toBe(1);
    expect(await streamLength(r.stream)).toBe(1);
    const s = sessionKeys(sender);
    expect(await runScript(client, 'finish', [s.session, s.records, s.pending], [n, 'r1', '{"ok":true}', limits.dedupeMax])).toBe(0);
    expect(await store.recalled(sender, 'r1')).toEqual({ ok: true, data: { seq: 1, off: replay.messages[0]!.off } });
  });

  it('a delivery that failed is made before the session delivers anything newer, so nothing is skipped', async () => {
    const sender = await newSession();
    const target = await newSession();
    // a client whose next deliver.lua call fails before it is sent (a dropped connection)
    let failDeliver = true;
    const flaky = new Proxy(client, {
      get(t, key, receiver) {
        if (key !== 'evalSha') return Reflect.get(t, key, receiver) as unknown;
        return (sha: string, options: { keys: string[]; arguments: string[] }) => {
          if (failDeliver && options.arguments.length === 9) {
            failDeliver = false;
            return Promise.reject(new Error('connection lost'));
          }
          return t.evalSha(sha, options);
        };
      },
    });
    const owner = new RedisSessionStore(flaky, limits, set.call, 'split');
    const dm = (id: string, text: string): CommitInput => ({ sessionId: sender, epoch: 1, requestId: id, joins: [], leaves: [], sends: [{ to: target, route: 'dm', data: text }], broadcasts: [], response: { ok: true, reply: {} } });
    await expect(owner.commit(dm('a', 'first'))).rejects.toThrow('connection lost');
    const later = await owner.commit(dm('b', 'second'));
    expect(later.ok && later.sent.map((m) => m.seq)).toEqual([2]);
    expect((await store.readOutbox(target, 0)).messages.map((m) => [m.seq, m.data])).toEqual([
      [1, 'first'],
      [2, 'second'],
    ]);
    expect(await store.recalled(sender, 'a')).toEqual({ ok: true, data: {} });
    await owner.close();
  });

  it('a re-sent request whose commit was cut short after step 1 gets its recorded response, not a second run', async () => {
    const { sender, target, room, input } = await setUp();
    await stepOne(input);
    // the same owner is asked about the id again (the client re-sent it after `unavailable`)
    const recalled = await store.recalled(sender, 'r1');
    const replay = await store.readRoom(room, (await store.load(sender))!.rooms[room]!);
    expect(recalled).toEqual({ ok: true, data: { seq: 1, off: replay.messages[0]!.off } });
    expect(await streamLength(sessionKeys(target).outbox)).toBe(1);
    expect(await client.hLen(sessionKeys(sender).pending)).toBe(0);
    expect(await store.recalled(sender, 'other')).toBeNull();
  });

  it('a stale owner cannot start a two-step commit after the claim', async () => {
    const { sender, input } = await setUp();
    await store.claim(sender, 'i2');
    expect(await store.commit(input)).toEqual({ ok: false, reason: 'stale_epoch' });
    expect(await client.hLen(sessionKeys(sender).pending)).toBe(0);
  });
});
