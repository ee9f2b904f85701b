/**
 * Artillery processor of the Tether load profiles (load/artillery/*.yml). Each scenario is one
 * `function` step that runs a whole virtual user with the client SDK (client/): Artillery's `ws`
 * engine cannot match a `res` to its `req`, so round trips, deliveries and resumes are measured here
 * and emitted as custom metrics (see harness.ts for the list). Artillery bundles this file with
 * esbuild (a `.ts` processor); this folder's package.json makes the bundle CommonJS.
 *
 * Knobs come from `config.variables` of the profile (defaults in brackets): `rooms` [8] shared chat
 * rooms, `iterations` [20] operations per chatter, `thinkMs` [400] between them, `pairMessages` [10],
 * `burstRequests` [10] and `burstIntervalMs` [100] per burst user, `expectRateLimited` [false].
 */
import { type ArtilleryContext, type ArtilleryEvents, jittered, num, type Peer, sleep, Vu } from './harness.ts';

// Every scenario is an `async function`: Artillery calls a plain function with a `done` callback
// and waits for it, but awaits the promise of an async one.

const textOf = (data: unknown): unknown => (data as { text?: unknown } | null)?.text;

/** `chat.send` and the expectation that the sender gets its own message (same offset) back. */
async function sendOwn(p: Peer, room: string, text: string): Promise<void> {
  const t0 = performance.now();
  const res = await p.request<{ off: string }>('chat.send', { room, text });
  if (!res.ok) return;
  const off = res.data.off;
  if (typeof off !== 'string') {
    p.vu.error('wrong_reply', `chat.send replied ${JSON.stringify(res.data)}`);
    return;
  }
  if (p.msgBeforeRes(room, off, res.id)) {
    p.vu.error('msg_before_res', `${room} @ ${off}: the message came before the res of the chat.send that caused it`);
    return;
  }
  p.expect(`own message ${text} (${room} @ ${off})`, (m) => 'room' in m && m.room === room && m.off === off, t0, 'tether.broadcast_ms');
}

async function checkCounter(p: Peer, expected: number): Promise<void> {
  const res = await p.request<{ count: number }>('counter.get');
  if (res.ok && res.data.count !== expected) p.vu.error('counter_mismatch', `counter.get = ${res.data.count}, expected ${expected} (session ${p.session})`);
}

/**
 * The bread and butter: one connection joins one of `rooms` shared rooms and does `iterations`
 * operations with `thinkMs` between them: echo (40%), counter.inc (30%, each count checked: runs
 * exactly once), chat.send (20%, its own copy must come back: fan-out to every member on both
 * instances), presence.list (10%, must list itself). Ends with counter.get.
 */
export async function chatter(context: ArtilleryContext, events: ArtilleryEvents): Promise<void> {
  await Vu.run(context, events, async (vu) => {
    const rooms = num(context.vars, 'rooms', 8);
    const iterations = num(context.vars, 'iterations', 20);
    const thinkMs = num(context.vars, 'thinkMs', 400);
    const p = vu.peer();
    await p.connect();
    const room = `lobby-${Math.floor(Math.random() * rooms)}`;
    await p.request('chat.join', { room });
    let count = 0;
    for (let i = 0; i < iterations; i++) {
      const r = Math.random();
      if (r < 0.4) {
        const input = { i, vu: vu.id, pad: 'x'.repeat(64) };
        const res = await p.request('echo', input);
        if (res.ok && JSON.stringify(res.data) !== JSON.stringify(input)) vu.error('wrong_reply', `echo returned ${JSON.stringify(res.data)}`);
      } else if (r < 0.7) {
        const res = await p.request<{ count: number }>('counter.inc', { by: 1 });
        if (res.ok) {
          count++;
          if (res.data.count !== count) {
            vu.error('counter_mismatch', `counter.inc returned ${res.data.count}, expected ${count}`);
            count = res.data.count;
          }
        }
      } else if (r < 0.9) {
        await sendOwn(p, room, `${vu.id}:${i}`);
      } else {
        const res = await p.request<{ members: string[] }>('presence.list', { room });
        if (res.ok && !res.data.members.includes(p.session)) vu.error('presence', `presence.list ${room} does not list its caller (${res.data.members.length} members)`);
      }
      await sleep(jittered(thinkMs));
    }
    await checkCounter(p, count);
    await p.settle();
  });
}

/**
 * Cross-instance delivery: two connections of one user, on different instances, share a private
 * room; A sends `pairMessages` messages, B must get every one, once, in order (and A its own); then
 * B sends A a direct message.
 */
export async function pair(context: ArtilleryContext, events: ArtilleryEvents): Promise<void> {
  await Vu.run(context, events, async (vu) => {
    const messages = num(context.vars, 'pairMessages', 10);
    const thinkMs = num(context.vars, 'thinkMs', 400);
    const a = vu.peer(0);
    const b = vu.peer(1);
    await Promise.all([a.connect(), b.connect()]);
    const room = `pair-${vu.id}`;
    await Promise.all([a.request('chat.join', { room }), b.request('chat.join', { room })]);
    const texts: string[] = [];
    for (let k = 0; k < messages; k++) {
      const text = `p${k}`;
      texts.push(text);
      b.expect(`${text} in ${room} (sent from another instance)`, (m) => 'room' in m && m.room === room && textOf(m.data) === text, performance.now(), 'tether.cross_instance_ms');
      await sendOwn(a, room, text);
      await sleep(jittered(thinkMs / 2));
    }
    a.expect('dm.message from the other peer', (m) => 'seq' in m && m.route === 'dm.message' && (m.data as { from?: unknown }).from === b.session);
    await b.request('dm.send', { to: a.session, text: 'hello from b' });
    await Promise.all([a.settle(), b.settle()]);
    const got = b.roomTexts(room);
    if (got.join(',') !== texts.join(',')) vu.error('order', `room ${room}: b got [${got.join(',')}], expected [${texts.join(',')}]`);
  });
}

/**
 * Reconnect and resume: A does counter.inc twice, sends a third one and drops its connection at
 * once (as a network failure would); the SDK reconnects to the other instance, resumes, and re-sends
 * the unanswered request, which must run exactly once. Meanwhile B (on that other instance) sends 3
 * messages to their room and one direct message: A must get all of them once, replayed or live.
 */
export async function resume(context: ArtilleryContext, events: ArtilleryEvents): Promise<void> {
  await Vu.run(context, events, async (vu) => {
    const thinkMs = num(context.vars, 'thinkMs', 400);
    const a = vu.peer(0);
    const b = vu.peer(1);
    await Promise.all([a.connect(), b.connect()]);
    const room = `resume-${vu.id}`;
    await Promise.all([a.request('chat.join', { room }), b.request('chat.join', { room })]);
    for (let k = 1; k <= 2; k++) {
      const res = await a.request<{ count: number }>('counter.inc', { by: 1 });
      if (res.ok && res.data.count !== k) vu.error('counter_mismatch', `counter.inc returned ${res.data.count}, expected ${k}`);
      await sleep(jittered(thinkMs));
    }
    const third = a.request<{ count: number }>('counter.inc', { by: 1 });
    a.drop();
    const texts = ['r0', 'r1', 'r2'];
    for (const text of texts) {
      a.expect(`${text} in ${room} (sent while it was away)`, (m) => 'room' in m && m.room === room && textOf(m.data) === text);
      await sendOwn(b, room, text);
    }
    a.expect('dm.message sent while it was away', (m) => 'seq' in m && m.route === 'dm.message' && (m.data as { from?: unknown }).from === b.session);
    await b.request('dm.send', { to: a.session, text: 'while you were away' });
    const res = await third;
    if (res.ok && res.data.count !== 3) vu.error('counter_mismatch', `re-sent counter.inc returned ${res.data.count}, expected 3 (exactly once)`);
    await a.welcomed();
    await sleep(jittered(thinkMs));
    await checkCounter(a, 3);
    await Promise.all([a.settle(), b.settle()]);
    const got = a.roomTexts(room);
    if (got.join(',') !== texts.join(',')) vu.error('order', `room ${room}: a got [${got.join(',')}] after resuming, expected [${texts.join(',')}]`);
  });
}

/**
 * Burst profiles: a short-lived connection sends `burstRequests` echo requests, one every
 * `burstIntervalMs` (on schedule, whatever the answers: a refused request is not retried), then
 * closes. Every request's send and answer times are recorded for run.ts's limiter check.
 */
export async function burst(context: ArtilleryContext, events: ArtilleryEvents): Promise<void> {
  await Vu.run(context, events, async (vu) => {
    const requests = num(context.vars, 'burstRequests', 10);
    const intervalMs = num(context.vars, 'burstIntervalMs', 100);
    const p = vu.peer();
    await p.connect();
    const start = performance.now();
    for (let k = 0; k < requests; k++) {
      await sleep(start + k * intervalMs - performance.now());
      const input = { k, vu: vu.id };
      const res = await p.request('echo', input);
      if (res.ok && JSON.stringify(res.data) !== JSON.stringify(input)) vu.error('wrong_reply', `echo returned ${JSON.stringify(res.data)}`);
    }
  });
}
