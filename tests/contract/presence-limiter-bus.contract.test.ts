/**
 * Presence, RateLimiter and Bus contracts, for every adapter.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BusMessage } from '../../runtime/ports/bus.ts';
import { ADAPTERS, type AdapterSet } from './adapters.ts';

describe.each(ADAPTERS)('Presence, RateLimiter and Bus ($name)', (factory) => {
  let set: AdapterSet;
  beforeAll(async () => {
    set = await factory.create();
  });
  afterAll(async () => {
    await set?.cleanup();
  });

  it('lists each user once, and a stale connection cannot remove a newer one', async () => {
    const room = `p-${randomUUID()}`;
    await set.presence.add(room, 's1', 'alice', set.instanceId, 1);
    await set.presence.add(room, 's2', 'alice', set.instanceId, 1);
    await set.presence.add(room, 's3', 'bob', set.instanceId, 1);
    expect((await set.presence.list(room)).sort()).toEqual(['alice', 'bob']);
    await set.presence.add(room, 's3', 'bob', set.instanceId, 2);
    await set.presence.remove(room, 's3', 1);
    expect((await set.presence.list(room)).sort()).toEqual(['alice', 'bob']);
    await set.presence.remove(room, 's3', 2);
    await set.presence.remove(room, 's1', 1);
    expect(await set.presence.list(room)).toEqual(['alice']);
    expect(await set.presence.list(`empty-${randomUUID()}`)).toEqual([]);
  });

  it('admits burst requests at once, then refuses with retryAfterMs, taking no tokens when refused', async () => {
    const key = randomUUID();
    const limit = { rate: 10, burst: 3 };
    for (let i = 0; i < 3; i++) expect(await set.limiter.check([{ scope: 'user', key, limit }])).toEqual({ ok: true });
    const refused = await set.limiter.check([{ scope: 'user', key, limit }]);
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.scopes).toEqual(['user']);
      expect(refused.retryAfterMs).toBeGreaterThan(0);
      expect(refused.retryAfterMs).toBeLessThanOrEqual(100);
      await new Promise((r) => setTimeout(r, refused.retryAfterMs + 5));
    }
    expect(await set.limiter.check([{ scope: 'user', key, limit }])).toEqual({ ok: true });
  });

  it('decides checks issued together in order: exactly burst of them pass', async () => {
    const key = randomUUID();
    const limit = { rate: 1, burst: 3 };
    const decisions = await Promise.all(Array.from({ length: 7 }, () => set.limiter.check([{ scope: 'user', key, limit }])));
    expect(decisions.filter((d) => d.ok)).toHaveLength(3);
    expect(decisions.slice(0, 3).every((d) => d.ok)).toBe(true);
  });

  it('takes tokens from no scope when any scope refuses', async () => {
    const user = randomUUID();
    const ip = randomUUID();
    const tight = { rate: 1, burst: 1 };
    const loose = { rate: 1, burst: 2 };
    expect(await set.limiter.check([{ scope: 'ip', key: ip, limit: tight }])).toEqual({ ok: true });
    const refused = await set.limiter.check([{ scope: 'user', key: user, limit: loose }, { scope: 'ip', key: ip, limit: tight }]);
    expect(refused).toMatchObject({ ok: false, scopes: ['ip'] });
    // the user bucket was not charged: both of its tokens are still there
    expect(await set.limiter.check([{ scope: 'user', key: user, limit: loose }])).toEqual({ ok: true });
    expect(await set.limiter.check([{ scope: 'user', key: user, limit: loose }])).toEqual({ ok: true });
  });

  it('delivers a published message to every subscribed bus, and stops after unsubscribe', async () => {
    const channel = `c-${randomUUID()}`;
    const got: [string, BusMessage][] = [];
    const [a, b] = set.buses;
    await a.subscribe(channel, (m) => got.push(['a', m]));
    await b.subscribe(channel, (m) => got.push(['b', m]));
    const message: BusMessage = { kind: 'takeover', session: 's', epoch: 2 };
    await a.publish(channel, message);
    for (let i = 0; i < 100 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(got.map(([who]) => who).sort()).toEqual(['a', 'b']);
    expect(got[0]![1]).toEqual(message);
    await b.unsubscribe(channel);
    got.length = 0;
    await a.publish(channel, message);
    for (let i = 0; i < 100 && got.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 30));
    expect(got.map(([who]) => who)).toEqual(['a']);
    expect(a.healthy() && b.healthy()).toBe(true);
  });
});
