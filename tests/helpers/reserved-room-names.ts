/**
 * Room names that are also names JavaScript objects carry by inheritance (`constructor`,
 * `__proto__`, ...). They are valid names (1 to 128 characters), so a room by any of them must live
 * the whole life of a room: live delivery, presence, resume with replay, leave.
 */
import { expect } from 'vitest';
import { type Frame, RawClient } from './raw-client.ts';

export const RESERVED_ROOM_NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty'] as const;

const isMsg = (f: Frame) => f.t === 'msg';
const texts = (frames: Frame[]) => frames.map((f) => (f.data as { text: string }).text);
const members = async (client: RawClient, id: string, room: string) => new Set(((await client.request(id, 'presence.list', { room })).data as { members: string[] }).members);

/**
 * Alice joins `room` on `urlA`, Bob on `urlB`; both hear Bob's message live and are listed; Alice
 * resumes on `urlB` (with an empty `hello.rooms`, as SPEC allows) and gets the missed message
 * replayed and the next live; then she leaves and hears nothing more, and is no longer listed.
 */
export async function roomLivesItsWholeLife(room: string, urlA: string, urlB: string): Promise<void> {
  const { client: alice, welcome: wa } = await RawClient.hello(urlA);
  const { client: bob, welcome: wb } = await RawClient.hello(urlB);
  expect(await alice.request('j', 'chat.join', { room })).toMatchObject({ ok: true, data: { room } });
  expect(await bob.request('j', 'chat.join', { room })).toMatchObject({ ok: true, data: { room } });

  const sent = await bob.request('s1', 'chat.send', { room, text: 'live' });
  for (const c of [alice, bob]) expect(await c.next(isMsg)).toMatchObject({ room, off: (sent.data as { off: string }).off, data: { text: 'live' } });
  expect(await members(bob, 'p1', room)).toEqual(new Set([wa.session, wb.session]));

  alice.close();
  await alice.closed;
  await bob.request('s2', 'chat.send', { room, text: 'missed' });
  const back = await RawClient.hello(urlB, { session: wa.session, token: wa.token, seq: 0, rooms: {} });
  expect(back.welcome).toMatchObject({ t: 'welcome', resumed: true });
  await bob.request('s3', 'chat.send', { room, text: 'after resume' });
  // replayed from the join, then live: each once, in order
  expect(texts(await back.client.until(isMsg, 3))).toEqual(['live', 'missed', 'after resume']);

  expect(await back.client.request('l', 'chat.leave', { room })).toMatchObject({ ok: true, data: { room } });
  await bob.request('s4', 'chat.send', { room, text: 'after leave' });
  await bob.until(isMsg, 4);
  await back.client.request('barrier', 'echo', 0);
  expect(texts(back.client.all(isMsg))).toEqual(['live', 'missed', 'after resume']);
  // a leave's presence removal is not awaited by its res: allow it the second SPEC gives a close
  let listed = await members(bob, 'p2', room);
  for (let i = 0; listed.size > 1 && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 20));
    listed = await members(bob, `p2-${i}`, room);
  }
  expect(listed).toEqual(new Set([wb.session]));
  back.client.close();
  bob.close();
}
