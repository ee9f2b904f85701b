/**
 * The exactly-once records on Redis are trimmed lazily (commit.lua and finish.lua cut the list back
 * to DEDUPE_MAX only once it is DEDUPE_MAX/8, at least 16, longer): the list stays bounded, and
 * recall and claim still see exactly the last DEDUPE_MAX ids, never the older ones still in it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../runtime/auth/session-token.ts';
import type { RedisClient } from '../../runtime/store/redis/connection.ts';
import { sessionKeys } from '../../runtime/store/redis/keys.ts';
import type { RedisSessionStore } from '../../runtime/store/redis/redis-session-store.ts';
import { startRedisStore, type TestRedisStore } from '../helpers/redis-store.ts';

const DEDUPE_MAX = 20;
const MOST = DEDUPE_MAX + 16;
const limits = { sessionTtlS: 60, dedupeTtlS: 60, dedupeMax: DEDUPE_MAX, outboxMax: 100, roomHistoryMax: 100, roomTtlS: 60 };

describe.each(['single', 'split'] as const)('exactly-once records on Redis (%s commit)', (mode) => {
  let set: TestRedisStore;
  let client: RedisClient;
  let store: RedisSessionStore;
  beforeAll(async () => {
    set = await startRedisStore(limits, mode);
    ({ client, store } = set);
  });
  afterAll(async () => {
    await set?.cleanup();
  });

  it('keeps the list bounded while recall and claim see exactly the last DEDUPE_MAX ids', async () => {
    const id = `s-${randomUUID()}`;
    await store.create({ id, tokenHash: hashToken('t'), userId: id, state: { n: 0 }, instanceId: 'i1' });
    const target = `s-${randomUUID()}`;
    await store.create({ id: target, tokenHash: hashToken('t'), userId: target, state: {}, instanceId: 'i1' });
    const lengths: number[] = [];
    const ids = Array.from({ length: 3 * MOST }, (_, i) => `r${i}`);
    for (const [i, r] of ids.entries()) {
      // every third one sends a message, so split mode records it through finish.lua
      const sends = i % 3 === 0 ? [{ to: target, route: 'm', data: i }] : [];
      const result = await store.commit({ sessionId: id, epoch: 1, requestId: r, state: { n: i }, joins: [], leaves: [], sends, broadcasts: [], response: { ok: true, reply: i } });
      expect(result.ok).toBe(true);
      lengths.push(await client.lLen(sessionKeys(id).records));
    }
    expect(Math.max(...lengths)).toBeLessThanOrEqual(MOST);
    expect(lengths.at(-1)).toBeGreaterThan(DEDUPE_MAX); // trimmed lazily: older records are still in the list
    const last = ids.slice(-DEDUPE_MAX);
    const older = ids[ids.length - DEDUPE_MAX - 1]!;
    expect(await store.recalled(id, older)).toBeNull();
    expect(await store.recalled(id, last[0]!)).toEqual({ ok: true, data: ids.length - DEDUPE_MAX });
    expect(await store.recalled(id, last.at(-1)!)).toEqual({ ok: true, data: ids.length - 1 });
    expect((await store.claim(id, 'i2'))!.recentRequestIds.sort()).toEqual([...last].sort());
  });
});
