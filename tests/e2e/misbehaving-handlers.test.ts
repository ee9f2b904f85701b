/**
 * Handlers are user code, and user code has bugs. Whatever a handler or hook returns, the process
 * stays up, the request is answered `internal` (not recorded, nothing taken on), and the other
 * sessions, including those committed in the same group commit, are unaffected. Both stores behave
 * alike. Instances run in this process with a deliberately buggy app, rate limits on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { afterCommit, broadcast, createTether, defineApp, join, leave, loadConfig, route, send, type StandardSchemaV1, type Tether } from '../../runtime/index.ts';
import { type Frame, RawClient } from '../helpers/raw-client.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { TEST_ENV } from '../helpers/server-process.ts';

interface State {
  n: number;
}

/** A Standard Schema whose validate itself is broken. */
const brokenSchema = (validate: () => unknown): StandardSchemaV1<unknown, unknown> => ({ '~standard': { version: 1, vendor: 'test', validate: validate as never } });

const buggy = defineApp<State>({
  initialState: () => ({ n: 0 }),
  routes: {
    get: route({ readOnly: true, handle: (s: State) => ({ reply: s.n }) }),
    inc: route({ handle: (s: State) => ({ state: { n: s.n + 1 }, reply: s.n + 1 }) }),
    rooms: route({ readOnly: true, handle: (_s: State, _i, ctx) => ({ reply: [...ctx.rooms].sort() }) }),
    asyncThrow: route({ handle: (async () => Promise.reject(new Error('async bug'))) as never }),
    asyncOk: route({ handle: (async (s: State) => ({ state: { n: s.n + 100 } })) as never }),
    schemaThrows: route({ input: brokenSchema(() => { throw new Error('schema bug'); }), handle: () => ({ reply: 'never' }) }),
    schemaUndefined: route({ input: brokenSchema(() => undefined), handle: () => ({ reply: 'never' }) }),
    bigintState: route({ handle: (s: State) => ({ state: { n: s.n + 1, big: 1n } as never, reply: 'never' }) }),
    functionState: route({ handle: () => ({ state: (() => 1) as never, reply: 'never' }) }),
    circularReply: route({
      handle: (s: State) => {
        const reply: Record<string, unknown> = {};
        reply.self = reply;
        return { state: { n: s.n + 1 }, reply };
      },
    }),
    bigintMessage: route({ handle: (s: State, _i, ctx) => ({ state: { n: s.n + 1 }, effects: [send(ctx.sessionId, 'x', { big: 1n })] }) }),
    afterCommitThrows: route({
      handle: (s: State) => ({
        state: { n: s.n + 1 },
        effects: [broadcast('buggy-room', 'x', 1)],
        reply: afterCommit(() => {
          throw new Error('afterCommit bug');
        }),
      }),
    }),
    afterCommitBigint: route({ handle: (s: State) => ({ state: { n: s.n + 1 }, effects: [broadcast('buggy-room', 'x', 1)], reply: afterCommit(() => 1n) }) }),
    readsNull: route({ reads: (() => null) as never, handle: () => ({ reply: 'never' }) }),
    readsUnknown: route({ reads: (() => ({ who: { kind: 'telepathy' } })) as never, handle: () => ({ reply: 'never' }) }),
    readOnlyState: route({ readOnly: true, handle: () => ({ state: { n: 999 }, reply: 'looked' }) }),
    readOnlyBigint: route({ readOnly: true, handle: () => ({ reply: 1n }) }),
    joinAndAnnounce: route({ input: undefined, handle: (_s: State, room) => ({ effects: [join(room as string), broadcast(room as string, 'joined', 'me')] }) }),
    joinAndLeave: route({ handle: (_s: State, room) => ({ effects: [join(room as string), leave(room as string)] }) }),
    // impure: changes the state object in place and replies with it
    pushInPlace: route({
      handle: (s: State & { items?: string[] }, item) => {
        (s.items ??= []).push(item as string);
        return { state: s, reply: s };
      },
    }),
    // the same, with a message (the two-step commit on REDIS_COMMIT=split)
    pushInPlaceAndSend: route({
      handle: (s: State & { items?: string[] }, item, ctx) => {
        (s.items ??= []).push(item as string);
        return { state: s, reply: s, effects: [send(ctx.sessionId, 'pushed', item)] };
      },
    }),
    // a reply whose toJSON answers by its key (JSON calls it with 'data' inside a res)
    keyedReply: route({ readOnly: false, handle: () => ({ reply: { toJSON: (key: string) => `key:${key}` } }) }),
    sendToNobodyThenSelf: route({ handle: (_s: State, _i, ctx) => ({ effects: [send('no-such-session', 'x', 1), send(ctx.sessionId, 'x', 2)], reply: afterCommit((c) => c.seqs) }) }),
  },
  onConnect: (async () => Promise.reject(new Error('async hook bug'))) as never,
});

const isRes = (id: string) => (f: Frame) => f.t === 'res' && f.id === id;
const code = (f: Frame) => (f.error as { code: string } | undefined)?.code;

describe.each(['memory', 'redis', 'redis-split'] as const)('a buggy app on the %s store', (store) => {
  let redis: TestRedis | undefined;
  let tether: Tether;
  let url: string;
  beforeAll(async () => {
    if (store !== 'memory') redis = await startRedis();
    // rate limits on: the limiter's early check meets the broken schemas first
    const config = loadConfig({ ...TEST_ENV, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', RL_USER_RATE: '1000', RL_USER_BURST: '1000', ...(redis ? { REDIS_URL: redis.url, REDIS_COMMIT: store === 'redis-split' ? 'split' : 'single' } : {}) });
    tether = createTether(config, buggy);
    const { port } = await tether.start();
    url = `ws://127.0.0.1:${port}/ws`;
    for (let i = 0; i < 200 && (await fetch(`http://127.0.0.1:${port}/ready`).catch(() => null))?.status !== 200; i++) await new Promise((r) => setTimeout(r, 25));
  });
  afterAll(async () => {
    await tether?.stop();
    await redis?.cleanup();
  });

  it.each(['asyncThrow', 'asyncOk', 'schemaThrows', 'schemaUndefined', 'bigintState', 'functionState', 'circularReply', 'bigintMessage', 'afterCommitThrows', 'afterCommitBigint', 'readOnlyBigint', 'readsNull', 'readsUnknown'])(
    'answers %s internal, twice with the same id (not recorded), changing nothing, and stays up',
    async (routeName) => {
      const { client } = await RawClient.hello(url); // its async onConnect hook rejected: still served
      expect(await client.request('1', 'inc')).toMatchObject({ ok: true, data: 1 });
      for (const attempt of [1, 2]) {
        const answer = await client.request('bug', routeName, 'x');
        expect(code(answer), `attempt ${attempt}`).toBe('internal');
      }
      expect(await client.request('2', 'get')).toMatchObject({ ok: true, data: 1 });
      expect(await client.request('3', 'inc')).toMatchObject({ ok: true, data: 2 });
      await client.request('barrier', 'get');
      expect(client.all((f) => f.t === 'msg')).toEqual([]); // no message of a failed commit went out
      client.close();
    },
  );

  it('keeps the other sessions committed in the same turn unaffected by one session whose state JSON cannot carry', async () => {
    const sessions = await Promise.all([0, 1, 2, 3, 4].map(() => RawClient.hello(url)));
    const [bad, ...good] = sessions.map((s) => s.client);
    for (let i = 0; i < 40; i++) {
      bad!.send({ t: 'req', id: `b${i}`, route: 'bigintState' });
      for (const c of good) c.send({ t: 'req', id: `g${i}`, route: 'inc' });
    }
    for (const c of good) {
      const answers = await c.until((f) => f.t === 'res', 40);
      expect(answers.map((f) => f.data)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    }
    expect((await bad!.until((f) => f.t === 'res', 40)).every((f) => code(f) === 'internal')).toBe(true);
    for (const c of sessions) c.client.close();
  });

  it.each(['pushInPlace', 'pushInPlaceAndSend'])('records for each of several pipelined requests the state and reply its handler returned, although the handlers changed one object in place (%s)', async (routeName) => {
    const { client } = await RawClient.hello(url);
    const items = ['a', 'b', 'c', 'd', 'e'];
    for (const item of items) client.send({ t: 'req', id: item, route: routeName, data: item });
    const answers = await client.until((f) => f.t === 'res', items.length);
    const expected = items.map((_, i) => ({ n: 0, items: items.slice(0, i + 1) }));
    expect(answers.map((f) => f.data)).toEqual(expected);
    // re-sent: the recorded replies, not the object as it is now
    for (const [i, item] of items.entries()) expect(await client.request(item, routeName, item)).toMatchObject({ ok: true, data: expected[i] });
    client.close();
  });

  it('serializes a reply with a toJSON as JSON would inside the res, the same on every store', async () => {
    const { client } = await RawClient.hello(url);
    expect(await client.request('k', 'keyedReply')).toMatchObject({ ok: true, data: 'key:data' });
    expect(await client.request('k', 'keyedReply')).toMatchObject({ ok: true, data: 'key:data' }); // the record
    client.close();
  });

  it('ignores the state a read-only route returns', async () => {
    const { client } = await RawClient.hello(url);
    expect(await client.request('look', 'readOnlyState')).toMatchObject({ ok: true, data: 'looked' });
    expect(await client.request('inc', 'inc')).toMatchObject({ ok: true, data: 1 });
    client.close();
  });

  it('applies effects alike: a joiner hears what its own request broadcasts, join then leave leaves, a send to nobody keeps its seq place as 0', async () => {
    const { client } = await RawClient.hello(url);
    const room = `announce-${store}`;
    await client.request('j', 'joinAndAnnounce', room);
    expect(await client.next((f) => f.t === 'msg')).toMatchObject({ room, route: 'joined', data: 'me' });
    await client.request('jl', 'joinAndLeave', `left-${store}`);
    expect((await client.request('r', 'rooms')).data).toEqual([room]);
    expect((await client.request('s', 'sendToNobodyThenSelf')).data).toEqual([0, 1]);
    expect(client.frames.find(isRes('s'))).toBeDefined();
    client.close();
  });
});
