/**
 * The guarantees of SPEC section 3 on one instance (embedded store), through raw frames.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Frame, RawClient } from '../helpers/raw-client.ts';
import { type ServerProcess, startServer } from '../helpers/server-process.ts';
import { RESERVED_ROOM_NAMES, roomLivesItsWholeLife } from '../helpers/reserved-room-names.ts';

let server: ServerProcess;
let small: ServerProcess;
beforeAll(async () => {
  [server, small] = await Promise.all([startServer(), startServer({ OUTBOX_MAX: '3', ROOM_HISTORY_MAX: '3' })]);
});
afterAll(async () => {
  await Promise.all([server?.stop(), small?.stop()]);
});

const isMsg = (f: Frame) => f.t === 'msg';
let roomCounter = 0;
const uniqueRoom = () => `room-${process.pid}-${++roomCounter}`;

async function disconnect(client: RawClient): Promise<void> {
  client.close();
  await client.closed;
}

describe('resume', () => {
  it('resumes with the same state, rooms and token, and welcome.seq is the last direct seq', async () => {
    const room = uniqueRoom();
    const { client, welcome } = await RawClient.hello(server.wsUrl);
    await client.request('1', 'counter.inc', { by: 7 });
    await client.request('2', 'chat.join', { room });
    await client.request('3', 'dm.send', { to: welcome.session, text: 'note to self' });
    await client.next(isMsg);
    await disconnect(client);

    const again = await RawClient.hello(server.wsUrl, { session: welcome.session, token: welcome.token, seq: 1, rooms: {} });
    expect(again.welcome).toMatchObject({ session: welcome.session, token: welcome.token, resumed: true, seq: 1 });
    expect((await again.client.request('4', 'counter.get')).data).toEqual({ count: 7 });
    const sent = await again.client.request('5', 'chat.send', { room, text: 'still a member' });
    expect(sent.ok).toBe(true);
    again.client.close();
  });

  it('replays missed direct messages in seq order, then room messages in offset order, nothing twice', async () => {
    const room = uniqueRoom();
    const { client: alice, welcome: a } = await RawClient.hello(server.wsUrl);
    const { client: bob } = await RawClient.hello(server.wsUrl);
    await alice.request('j', 'chat.join', { room });
    await bob.request('j', 'chat.join', { room });
    await bob.request('d0', 'dm.send', { to: a.session, text: 'dm 1' });
    const firstDm = await alice.next(isMsg);
    expect(firstDm).toMatchObject({ route: 'dm.message', seq: 1 });
    await bob.request('c0', 'chat.send', { room, text: 'room 1' });
    const firstRoom = await alice.next((f) => isMsg(f) && f.room === room);
    await disconnect(alice);

    for (let i = 2; i <= 4; i++) {
      await bob.request(`d${i}`, 'dm.send', { to: a.session, text: `dm ${i}` });
      await bob.request(`c${i}`, 'chat.send', { room, text: `room ${i}` });
    }
    const resumed = await RawClient.hello(server.wsUrl, { session: a.session, token: a.token, seq: 1, rooms: { [room]: firstRoom.off } });
    const replayed = await resumed.client.until(isMsg, 6);
    expect(replayed.map((m) => (m.data as { text: string }).text)).toEqual(['dm 2', 'dm 3', 'dm 4', 'room 2', 'room 3', 'room 4']);
    expect(replayed.slice(0, 3).map((m) => m.seq)).toEqual([2, 3, 4]);
    const offs = replayed.slice(3).map((m) => m.off);
    expect(new Set(offs).size).toBe(3);
    // then live traffic, once
    await bob.request('live', 'chat.send', { room, text: 'live' });
    await resumed.client.next((f) => isMsg(f) && (f.data as { text: string }).text === 'live');
    expect(resumed.client.all(isMsg)).toHaveLength(7);
    expect(resumed.client.all((f) => f.t === 'gap')).toHaveLength(0);
    resumed.client.close();
    bob.close();
  });

  it('replays a room missing from hello.rooms from the moment the session joined it', async () => {
    const room = uniqueRoom();
    const { client: alice, welcome: a } = await RawClient.hello(server.wsUrl);
    const { client: bob } = await RawClient.hello(server.wsUrl);
    await bob.request('j', 'chat.join', { room });
    await bob.request('before', 'chat.send', { room, text: 'before alice joined' });
    await alice.request('j', 'chat.join', { room });
    await bob.request('after', 'chat.send', { room, text: 'after alice joined' });
    await alice.next(isMsg);
    await disconnect(alice);
    const resumed = await RawClient.hello(server.wsUrl, { session: a.session, token: a.token, seq: 0 });
    const [m] = await resumed.client.until(isMsg, 1);
    expect((m!.data as { text: string }).text).toBe('after alice joined');
    await resumed.client.request('x', 'echo', 'barrier');
    expect(resumed.client.all(isMsg)).toHaveLength(1);
    resumed.client.close();
    bob.close();
  });

  it('an absent hello.seq replays every retained direct message', async () => {
    const { client, welcome } = await RawClient.hello(server.wsUrl);
    await client.request('1', 'dm.send', { to: welcome.session, text: 'one' });
    await client.request('2', 'dm.send', { to: welcome.session, text: 'two' });
    await client.until(isMsg, 2);
    await disconnect(client);
    const resumed = await RawClient.hello(server.wsUrl, { session: welcome.session, token: welcome.token });
    expect((await resumed.client.until(isMsg, 2)).map((m) => m.seq)).toEqual([1, 2]);
    resumed.client.close();
  });

  it('ack lets the server drop delivered direct messages', async () => {
    const { client, welcome } = await RawClient.hello(server.wsUrl);
    for (const n of [1, 2, 3]) await client.request(`${n}`, 'dm.send', { to: welcome.session, text: `m${n}` });
    await client.until(isMsg, 3);
    client.send({ t: 'ack', seq: 2 });
    await client.request('barrier', 'echo', 0);
    await disconnect(client);
    const resumed = await RawClient.hello(server.wsUrl, { session: welcome.session, token: welcome.token, seq: 2 });
    expect((await resumed.client.until(isMsg, 1)).map((m) => m.seq)).toEqual([3]);
    expect(resumed.client.all((f) => f.t === 'gap')).toHaveLength(0);
    resumed.client.close();
  });
});

describe('gap', () => {
  it('sends gap before the retained direct messages when the outbox no longer reaches back', async () => {
    const { client, welcome } = await RawClient.hello(small.wsUrl);
    await disconnect(client);
    const { client: other } = await RawClient.hello(small.wsUrl);
    for (let i = 1; i <= 5; i++) await other.request(`d${i}`, 'dm.send', { to: welcome.session, text: `m${i}` });
    const resumed = await RawClient.hello(small.wsUrl, { session: welcome.session, token: welcome.token, seq: 0 });
    await resumed.client.until(isMsg, 3);
    const after = resumed.client.frames.slice(1, 5);
    expect(after[0]).toEqual({ t: 'gap' });
    expect(after.slice(1).map((m) => m.seq)).toEqual([3, 4, 5]);
    resumed.client.close();
    other.close();
  });

  it('sends gap with the room before its retained messages when room history no longer reaches back', async () => {
    const room = uniqueRoom();
    const { client: alice, welcome: a } = await RawClient.hello(small.wsUrl);
    await alice.request('j', 'chat.join', { room });
    await disconnect(alice);
    const { client: bob } = await RawClient.hello(small.wsUrl);
    await bob.request('j', 'chat.join', { room });
    for (let i = 1; i <= 5; i++) await bob.request(`c${i}`, 'chat.send', { room, text: `m${i}` });
    const resumed = await RawClient.hello(small.wsUrl, { session: a.session, token: a.token, seq: 0 });
    await resumed.client.until(isMsg, 3);
    const after = resumed.client.frames.slice(1, 5);
    expect(after[0]).toEqual({ t: 'gap', room });
    expect(after.slice(1).map((m) => (m.data as { text: string }).text)).toEqual(['m3', 'm4', 'm5']);
    resumed.client.close();
    bob.close();
  });

  it('answers an unusable room offset with gap for that room, then live messages', async () => {
    const room = uniqueRoom();
    const { client, welcome } = await RawClient.hello(server.wsUrl);
    await client.request('j', 'chat.join', { room });
    await disconnect(client);
    const resumed = await RawClient.hello(server.wsUrl, { session: welcome.session, token: welcome.token, seq: 0, rooms: { [room]: 'garbage-offset' } });
    expect(await resumed.client.next((f) => f.t === 'gap')).toEqual({ t: 'gap', room });
    await resumed.client.request('s', 'chat.send', { room, text: 'live' });
    expect((await resumed.client.next(isMsg)).data).toMatchObject({ text: 'live' });
    resumed.client.close();
  });

  it('answers a hello.seq above the last seq (the store lost data) with gap', async () => {
    const { client, welcome } = await RawClient.hello(server.wsUrl);
    await disconnect(client);
    const resumed = await RawClient.hello(server.wsUrl, { session: welcome.session, token: welcome.token, seq: 50 });
    expect(await resumed.client.next()).toEqual({ t: 'gap' });
    await resumed.client.request('d', 'dm.send', { to: welcome.session, text: 'next' });
    expect((await resumed.client.next(isMsg)).seq).toBe(1);
    resumed.client.close();
  });
});

describe('one owner', () => {
  it('closes the old connection with 4001 when the session is resumed elsewhere, and drops its queued requests', async () => {
    const { client: first, welcome } = await RawClient.hello(server.wsUrl);
    await first.request('a', 'counter.inc', {});
    const second = await RawClient.hello(server.wsUrl, { session: welcome.session, token: welcome.token, seq: 0 });
    const closed = await first.closed;
    expect(closed.code).toBe(4001);
    expect(closed.reason).toMatch(/taken over/);
    expect(second.welcome.resumed).toBe(true);
    expect((await second.client.request('g', 'counter.get')).data).toEqual({ count: 1 });
    second.client.close();
  });

  it('delivers direct messages only to the new owner after a takeover', async () => {
    const { client: first, welcome } = await RawClient.hello(server.wsUrl);
    const second = await RawClient.hello(server.wsUrl, { session: welcome.session, token: welcome.token, seq: 0 });
    await first.closed;
    const { client: sender } = await RawClient.hello(server.wsUrl);
    await sender.request('d', 'dm.send', { to: welcome.session, text: 'to the owner' });
    expect((await second.client.next(isMsg)).data).toMatchObject({ text: 'to the owner' });
    expect(first.all(isMsg)).toHaveLength(0);
    second.client.close();
    sender.close();
  });
});

describe('order', () => {
  it('handles the requests of one session one at a time, in arrival order', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    for (let i = 1; i <= 100; i++) client.send({ t: 'req', id: `i${i}`, route: 'counter.inc', data: { by: 1 } });
    const replies = await client.until((f) => f.t === 'res', 100);
    expect(replies.map((r) => r.id)).toEqual(Array.from({ length: 100 }, (_, i) => `i${i + 1}`));
    expect(replies.map((r) => (r.data as { count: number }).count)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    client.close();
  });

  it('queues requests sent right behind the hello instead of refusing them', async () => {
    const client = await RawClient.connect(server.wsUrl);
    client.send({ t: 'hello' });
    client.send({ t: 'req', id: 'eager', route: 'echo', data: 'fast' });
    expect((await client.next((f) => f.t === 'res')).data).toBe('fast');
    client.close();
  });

  it('sends the res of a request before the msg it caused on the same connection', async () => {
    const room = uniqueRoom();
    const { client } = await RawClient.hello(server.wsUrl);
    await client.request('j', 'chat.join', { room });
    client.send({ t: 'req', id: 's', route: 'chat.send', data: { room, text: 'hi' } });
    const [res, msg] = [await client.next(), await client.next()];
    expect(res).toMatchObject({ t: 'res', id: 's', ok: true });
    expect(msg).toMatchObject({ t: 'msg', route: 'chat.message', room, off: (res.data as { off: string }).off, data: { room, text: 'hi' } });
    client.close();
  });
});

describe('exactly-once requests', () => {
  it('does not run a re-sent id again and sends the stored res, even with a different body', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    const first = await client.request('same', 'counter.inc', { by: 5 });
    const again = await client.request('same', 'counter.inc', { by: 100 });
    expect(again).toEqual(first);
    const otherRoute = await client.request('same', 'echo', 'different');
    expect(otherRoute).toEqual(first);
    expect((await client.request('g', 'counter.get')).data).toEqual({ count: 5 });
    client.close();
  });

  it('records handler_error answers, so a re-sent id gets the same rejection', async () => {
    const { client } = await RawClient.hello(server.wsUrl);
    const room = uniqueRoom();
    const first = await client.request('x', 'chat.send', { room, text: 'not a member yet' });
    await client.request('j', 'chat.join', { room });
    const again = await client.request('x', 'chat.send', { room, text: 'now a member' });
    expect(again).toEqual(first);
    expect(client.all(isMsg)).toHaveLength(0);
    client.close();
  });

  it('remembers request ids across a resume', async () => {
    const { client, welcome } = await RawClient.hello(server.wsUrl);
    await client.request('once', 'counter.inc', { by: 3 });
    await disconnect(client);
    const resumed = await RawClient.hello(server.wsUrl, { session: welcome.session, token: welcome.token, seq: 0 });
    expect((await resumed.client.request('once', 'counter.inc', { by: 3 })).data).toEqual({ count: 3 });
    expect((await resumed.client.request('g', 'counter.get')).data).toEqual({ count: 3 });
    resumed.client.close();
  });
});

describe('rooms and presence', () => {
  it('broadcasts chat.message to every member, the sender included, with from = the sender user id', async () => {
    const room = uniqueRoom();
    const members = await Promise.all([1, 2, 3].map(() => RawClient.hello(server.wsUrl)));
    for (const m of members) await m.client.request('j', 'chat.join', { room });
    const res = await members[0]!.client.request('s', 'chat.send', { room, text: 'hello all' });
    for (const m of members) {
      const msg = await m.client.next(isMsg);
      expect(msg).toEqual({ t: 'msg', route: 'chat.message', room, off: (res.data as { off: string }).off, data: { room, from: members[0]!.welcome.session, text: 'hello all' } });
    }
    for (const m of members) m.client.close();
  });

  it('joins and leaves idempotently; a member who left gets nothing more', async () => {
    const room = uniqueRoom();
    const { client: a } = await RawClient.hello(server.wsUrl);
    const { client: b } = await RawClient.hello(server.wsUrl);
    expect((await a.request('j1', 'chat.join', { room })).data).toEqual({ room });
    expect((await a.request('j2', 'chat.join', { room })).data).toEqual({ room });
    await b.request('j', 'chat.join', { room });
    expect((await a.request('l1', 'chat.leave', { room })).data).toEqual({ room });
    expect((await a.request('l2', 'chat.leave', { room })).data).toEqual({ room });
    await b.request('s', 'chat.send', { room, text: 'after a left' });
    await b.next(isMsg);
    await a.request('barrier', 'echo', 0);
    expect(a.all(isMsg)).toHaveLength(0);
    a.close();
    b.close();
  });

  it('lists live members once each and forgets a member within a second of its socket closing', async () => {
    const room = uniqueRoom();
    const { client: a, welcome: wa } = await RawClient.hello(server.wsUrl);
    const { client: b, welcome: wb } = await RawClient.hello(server.wsUrl);
    await a.request('j', 'chat.join', { room });
    await b.request('j', 'chat.join', { room });
    const listed = await a.request('p', 'presence.list', { room });
    expect(new Set((listed.data as { members: string[] }).members)).toEqual(new Set([wa.session, wb.session]));
    const closedAt = Date.now();
    await disconnect(b);
    let members: string[] = [];
    for (;;) {
      members = ((await a.request(`p${Date.now()}`, 'presence.list', { room })).data as { members: string[] }).members;
      if (members.length === 1 || Date.now() - closedAt > 1000) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(members).toEqual([wa.session]);
    a.close();
  });
});

describe('room names JavaScript objects inherit', () => {
  it.each(RESERVED_ROOM_NAMES)('a room named %s is heard live, listed, replayed on resume and left like any other', async (room) => {
    await roomLivesItsWholeLife(room, server.wsUrl, server.wsUrl);
  });
});
