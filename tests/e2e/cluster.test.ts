/**
 * Three real server processes on one real Redis: every guarantee of SPEC section 3 across instances,
 * with the one-call commit and again with the two-step commit Redis Cluster needs (REDIS_COMMIT=split).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Frame, RawClient } from '../helpers/raw-client.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { RESERVED_ROOM_NAMES, roomLivesItsWholeLife } from '../helpers/reserved-room-names.ts';
import { type ServerProcess, startServer } from '../helpers/server-process.ts';

async function waitReady(node: ServerProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const res = await fetch(`${node.url}/ready`).catch(() => null);
    if (res?.status === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${node.instanceId} never became ready:\n${node.output()}`);
}

const isMsg = (f: Frame) => f.t === 'msg';
const text = (f: Frame) => (f.data as { text: string }).text;
let n = 0;
const uniqueRoom = () => `cluster-room-${++n}`;
async function disconnect(client: RawClient) {
  client.close();
  await client.closed;
}

describe.each(['single', 'split'])('three instances on one Redis (REDIS_COMMIT=%s)', (commitMode) => {
  let redis: TestRedis;
  let nodes: ServerProcess[];
  const env = () => ({ REDIS_URL: redis.url, HEARTBEAT_MS: '500', REDIS_COMMIT: commitMode });
  beforeAll(async () => {
    redis = await startRedis();
    nodes = await Promise.all([1, 2, 3].map((i) => startServer({ ...env(), INSTANCE_ID: `node-${i}` })));
    await Promise.all(nodes.map(waitReady));
  });
  afterAll(async () => {
    await Promise.all((nodes ?? []).map((n) => n.stop()));
    await redis?.cleanup();
  });

  it('serves sessions on every instance, each welcome naming its instance', async () => {
    for (const node of nodes) {
      const { client, welcome } = await RawClient.hello(node.wsUrl);
      expect(welcome.instance).toBe(node.instanceId);
      expect((await client.request('1', 'counter.inc', { by: 2 })).data).toEqual({ count: 2 });
      client.close();
    }
  });

  it('broadcasts to a room with members on all three instances, each message once', async () => {
    const room = uniqueRoom();
    const members = await Promise.all(nodes.map((node) => RawClient.hello(node.wsUrl)));
    for (const m of members) await m.client.request('j', 'chat.join', { room });
    for (const [i, m] of members.entries()) await m.client.request(`s${i}`, 'chat.send', { room, text: `from ${i}` });
    for (const m of members) {
      const got = await m.client.until(isMsg, 3);
      expect(got.map(text)).toEqual(['from 0', 'from 1', 'from 2']);
    }
    await members[0]!.client.request('barrier', 'echo', 0);
    for (const m of members) expect(m.client.all(isMsg)).toHaveLength(3);
    for (const m of members) m.client.close();
  });

  it('sends a direct message to a session on another instance', async () => {
    const { client: a, welcome: wa } = await RawClient.hello(nodes[0]!.wsUrl);
    const { client: b } = await RawClient.hello(nodes[1]!.wsUrl);
    await b.request('d', 'dm.send', { to: wa.session, text: 'across' });
    expect(await a.next(isMsg)).toMatchObject({ route: 'dm.message', seq: 1, data: { text: 'across' } });
    a.close();
    b.close();
  });

  it('resumes on another instance with the same state and rooms, replaying missed direct and room messages once', async () => {
    const room = uniqueRoom();
    const { client: alice, welcome: wa } = await RawClient.hello(nodes[0]!.wsUrl);
    const { client: bob } = await RawClient.hello(nodes[2]!.wsUrl);
    await alice.request('inc', 'counter.inc', { by: 11 });
    await alice.request('j', 'chat.join', { room });
    await bob.request('j', 'chat.join', { room });
    await bob.request('c1', 'chat.send', { room, text: 'seen' });
    const seen = await alice.next(isMsg);
    await disconnect(alice);
    await bob.request('d1', 'dm.send', { to: wa.session, text: 'dm while away' });
    await bob.request('c2', 'chat.send', { room, text: 'room while away' });

    const back = await RawClient.hello(nodes[1]!.wsUrl, { session: wa.session, token: wa.token, seq: 0, rooms: { [room]: seen.off } });
    expect(back.welcome).toMatchObject({ resumed: true, session: wa.session, seq: 1, instance: 'node-2' });
    expect((await back.client.until(isMsg, 2)).map(text)).toEqual(['dm while away', 'room while away']);
    expect((await back.client.request('g', 'counter.get')).data).toEqual({ count: 11 });
    await bob.request('c3', 'chat.send', { room, text: 'live' });
    await back.client.next((f) => isMsg(f) && text(f) === 'live');
    expect(back.client.all(isMsg).map(text)).toEqual(['dm while away', 'room while away', 'live']);
    back.client.close();
    bob.close();
  });

  it('handles a burst of one session in arrival order, each request on the state the previous one left', async () => {
    const { client } = await RawClient.hello(nodes[0]!.wsUrl);
    const room = uniqueRoom();
    for (let i = 1; i <= 200; i++) {
      if (i === 100) client.send({ t: 'req', id: 'join', route: 'chat.join', data: { room } });
      if (i === 101) client.send({ t: 'req', id: 'send', route: 'chat.send', data: { room, text: 'right after the join' } });
      client.send({ t: 'req', id: `i${i}`, route: 'counter.inc', data: {} });
    }
    const replies = await client.until((f) => f.t === 'res', 202, 10_000);
    const counts = replies.filter((r) => String(r.id).startsWith('i')).map((r) => (r.data as { count: number }).count);
    expect(counts).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(replies.map((r) => r.id).indexOf('join')).toBe(99);
    expect(replies.find((r) => r.id === 'send')?.ok).toBe(true);
    expect((await client.request('g', 'counter.get')).data).toEqual({ count: 200 });
    client.close();
  });

  it('takes a session over across instances: the old connection closes with 4001', async () => {
    const { client: first, welcome } = await RawClient.hello(nodes[0]!.wsUrl);
    await first.request('a', 'counter.inc', {});
    const second = await RawClient.hello(nodes[2]!.wsUrl, { session: welcome.session, token: welcome.token, seq: 0 });
    expect((await first.closed).code).toBe(4001);
    expect((await second.client.request('g', 'counter.get')).data).toEqual({ count: 1 });
    second.client.close();
  });

  it('runs a request id once even when it is re-sent to another instance', async () => {
    const { client, welcome } = await RawClient.hello(nodes[0]!.wsUrl);
    const first = await client.request('once', 'counter.inc', { by: 4 });
    await disconnect(client);
    const elsewhere = await RawClient.hello(nodes[1]!.wsUrl, { session: welcome.session, token: welcome.token, seq: 0 });
    expect(await elsewhere.client.request('once', 'counter.inc', { by: 4 })).toEqual(first);
    expect((await elsewhere.client.request('g', 'counter.get')).data).toEqual({ count: 4 });
    elsewhere.client.close();
  });

  it('lists presence across instances, each user once', async () => {
    const room = uniqueRoom();
    const members = await Promise.all(nodes.map((node) => RawClient.hello(node.wsUrl)));
    for (const m of members) await m.client.request('j', 'chat.join', { room });
    const listed = await members[1]!.client.request('p', 'presence.list', { room });
    expect(new Set((listed.data as { members: string[] }).members)).toEqual(new Set(members.map((m) => m.welcome.session)));
    await disconnect(members[2]!.client);
    const closedAt = Date.now();
    const expected = [members[0]!.welcome.session, members[1]!.welcome.session].sort();
    let listedNow: string[] = [];
    for (let i = 0; Date.now() - closedAt < 1000; i++) {
      listedNow = ((await members[0]!.client.request(`p2-${i}`, 'presence.list', { room })).data as { members: string[] }).members.sort();
      if (JSON.stringify(listedNow) === JSON.stringify(expected)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(listedNow).toEqual(expected);
    members[0]!.client.close();
    members[1]!.client.close();
  });

  // Another instance's messages can overtake this one's on pub/sub; the feed then reads the store,
  // which already holds the messages of a request not yet answered. Its res must still come first.
  it.each(['chat.send', 'dm.send'] as const)('sends the res of %s before the msg it caused, while another instance floods the same stream', { timeout: 30_000 }, async (route) => {
    const room = uniqueRoom();
    const { client: b, welcome } = await RawClient.hello(nodes[0]!.wsUrl);
    const { client: c } = await RawClient.hello(nodes[1]!.wsUrl);
    await b.request('j', 'chat.join', { room });
    await c.request('j', 'chat.join', { room });
    const data = (text: string) => (route === 'chat.send' ? { room, text } : { to: welcome.session, text });
    let flooding = true;
    const flood = (async () => {
      for (let i = 0; flooding; i++) await c.request(`f${i}`, route, data(`flood ${i}`));
    })();
    const count = 300;
    for (let i = 0; i < count; i++) await b.request(`own${i}`, route, data(`own ${i}`));
    flooding = false;
    await flood;
    await b.until((f) => f.t === 'msg' && text(f) === `own ${count - 1}`, 1);
    const late: string[] = [];
    for (let i = 0; i < count; i++) {
      const res = b.frames.findIndex((f) => f.t === 'res' && f.id === `own${i}`);
      const msg = b.frames.findIndex((f) => f.t === 'msg' && text(f) === `own ${i}`);
      if (res < 0 || msg < res) late.push(`own${i}`);
    }
    expect(late).toEqual([]);
    b.close();
    c.close();
  });

  // A join's res waits until this instance hears the room; the room's messages that arrive in that
  // wait must not overtake it: a client never gets a room's msg before it knows it joined.
  it('sends the res of a join before any msg of that room, while another instance floods the room', { timeout: 30_000 }, async () => {
    const room = uniqueRoom();
    const { client: c } = await RawClient.hello(nodes[1]!.wsUrl);
    await c.request('j', 'chat.join', { room });
    let flooding = true;
    const flood = (async () => {
      for (let i = 0; flooding; i++) await c.request(`f${i}`, 'chat.send', { room, text: `flood ${i}` });
    })();
    const early: number[] = [];
    for (let i = 0; i < 150; i++) {
      const { client: joiner } = await RawClient.hello(nodes[0]!.wsUrl);
      await joiner.request('j', 'chat.join', { room });
      await joiner.next(isMsg);
      const res = joiner.frames.findIndex((f) => f.t === 'res' && f.id === 'j');
      if (joiner.frames.findIndex(isMsg) < res) early.push(i);
      joiner.close();
    }
    flooding = false;
    await flood;
    expect(early).toEqual([]);
    c.close();
  });

  it.each(RESERVED_ROOM_NAMES)('runs a room named %s across instances: live, listed, replayed elsewhere, left', async (room) => {
    await roomLivesItsWholeLife(room, nodes[0]!.wsUrl, nodes[1]!.wsUrl);
  });

  it('takes a new instance into the cluster without restarting the others', async () => {
    const room = uniqueRoom();
    const extra = await startServer({ ...env(), INSTANCE_ID: 'node-4' });
    try {
      await waitReady(extra);
      const { client: a } = await RawClient.hello(nodes[0]!.wsUrl);
      const { client: d } = await RawClient.hello(extra.wsUrl);
      await a.request('j', 'chat.join', { room });
      await d.request('j', 'chat.join', { room });
      await d.request('s', 'chat.send', { room, text: 'from the new one' });
      expect(text(await a.next(isMsg))).toBe('from the new one');
      a.close();
      d.close();
    } finally {
      await extra.stop();
    }
  });
});
