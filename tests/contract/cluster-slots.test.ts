/**
 * Redis Cluster readiness without a Cluster: with REDIS_COMMIT=split, every script call the store,
 * presence and limiter make declares keys of one hash slot only (Redis Cluster refuses a script
 * whose keys span slots with CROSSSLOT). Slots are computed as Redis Cluster does (CRC16 of the
 * hash tag, mod 16384) for every EVALSHA/EVAL of a workload that touches every script.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { afterCommit } from '../../runtime/app/define-app.ts';
import { hashToken } from '../../runtime/auth/session-token.ts';
import { createRedisClient, type RedisClient, timedCalls } from '../../runtime/store/redis/connection.ts';
import { RedisPresence } from '../../runtime/store/redis/redis-presence.ts';
import { RedisRateLimiter } from '../../runtime/store/redis/redis-rate-limiter.ts';
import { RedisSessionStore } from '../../runtime/store/redis/redis-session-store.ts';
import { createLogger } from '../../runtime/telemetry/logger.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';

/** CRC16-XMODEM, as Redis Cluster hashes keys. */
function crc16(text: string): number {
  let crc = 0;
  for (const byte of Buffer.from(text)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function keySlot(key: string): number {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(key) % 16384;
}

describe('Redis Cluster slots (REDIS_COMMIT=split)', () => {
  const limits = { sessionTtlS: 60, dedupeTtlS: 60, dedupeMax: 8, outboxMax: 100, roomHistoryMax: 100, roomTtlS: 60 };
  let redis: TestRedis;
  let client: RedisClient;
  const calls: { script: string; keys: string[] }[] = [];
  const call = timedCalls();

  beforeAll(async () => {
    redis = await startRedis();
    client = createRedisClient(redis.url, createLogger('silent', 'test'), 'test');
    await client.connect();
  });
  afterAll(async () => {
    call.stop();
    await client?.quit();
    await redis?.cleanup();
  });

  /** The client, recording the keys of every script call. */
  const recording = () =>
    new Proxy(client, {
      get(target, key, receiver) {
        if (key !== 'evalSha' && key !== 'eval') return Reflect.get(target, key, receiver) as unknown;
        return (script: string, options: { keys: string[]; arguments: string[] }) => {
          calls.push({ script: script.slice(0, 12), keys: options.keys });
          return key === 'evalSha' ? target.evalSha(script, options) : target.eval(script, options);
        };
      },
    });

  it('keeps the keys of every script call in one slot', async () => {
    const c = recording();
    const store = new RedisSessionStore(c, limits, call, 'split');
    const presence = new RedisPresence(c, 'slots', 60_000, call);
    const limiter = new RedisRateLimiter(c, call);
    const [a, b] = [`s-${randomUUID()}`, `s-${randomUUID()}`];
    const room = `room-${randomUUID()}`;
    for (const id of [a, b]) await store.create({ id, tokenHash: hashToken('t'), userId: id, state: 0, instanceId: 'slots' });
    await store.commit({ sessionId: a, epoch: 1, joins: [room], leaves: [], sends: [], broadcasts: [] });
    await Promise.all([
      store.commit({ sessionId: a, epoch: 1, requestId: 'x', state: 1, joins: [], leaves: [], sends: [{ to: b, route: 'dm', data: 1 }], broadcasts: [{ room, route: 'm', data: 2 }], response: { ok: true, reply: afterCommit((r) => r.offsets[0]) } }),
      store.commit({ sessionId: b, epoch: 1, requestId: 'y', state: 2, joins: [], leaves: [], sends: [], broadcasts: [], response: { ok: true, reply: 'plain' } }),
    ]);
    await store.commit({ sessionId: a, epoch: 1, joins: [], leaves: [room], sends: [], broadcasts: [] });
    await store.recalled(a, 'x');
    await store.recalled(a, 'never');
    await store.readOutbox(b, 0);
    await store.readRoom(room, (await store.readRoom(room, 'bad')).messages[0]?.off ?? 'bad');
    await store.ack(b, 1, 1);
    await store.claim(a, 'other');
    await store.release(a, 2);
    await presence.alive();
    await presence.add(room, a, a, 'slots', 2);
    await presence.list(room);
    await presence.remove(room, a, 2);
    // the limiter's buckets share the {rl} tag: one slot for any batch
    await Promise.all([
      limiter.check([{ scope: 'user', key: 'u1', limit: { rate: 10, burst: 10 } }, { scope: 'ip', key: '127.0.0.1', limit: { rate: 10, burst: 10 } }]),
      limiter.check([{ scope: 'route', key: 'u2:echo', limit: { rate: 10, burst: 10 } }]),
    ]);
    await Promise.all([store.close(), presence.close(), limiter.close()]);

    expect(calls.length).toBeGreaterThan(15);
    const crossSlot = calls.filter((x) => new Set(x.keys.map(keySlot)).size > 1);
    expect(crossSlot).toEqual([]);
  });

  it('would catch a call across slots (the check itself works)', () => {
    expect(keySlot('tether:{s:a}:session')).toBe(keySlot('tether:{s:a}:records'));
    expect(keySlot('tether:{s:a}:session')).not.toBe(keySlot('tether:{s:b}:session'));
    // the reference value Redis documents for CLUSTER KEYSLOT "somekey"
    expect(keySlot('somekey')).toBe(11058);
  });
});

