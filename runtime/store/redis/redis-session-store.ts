/**
 * @module store/redis/redis-session-store
 * The SessionStore on Redis. Every method is one script call (or one command). While this instance
 * owns sessions it keeps their keys alive; once it lets go (or dies) they expire SESSION_TTL_S later.
 */
import { randomBytes } from 'node:crypto';
import { type Committed, resolveReply } from '../../app/define-app.ts';
import type { DirectMessage, Replay, RoomMessage, StoredResponse } from '../../ports/messages.ts';
import type { Claim, CommitInput, CommitResult, NewSession, SessionRecord, SessionStore } from '../../ports/session-store.ts';
import type { StoreLimits } from '../memory/memory-session-store.ts';
import { newRoomEpoch, parseOffset } from '../offsets.ts';
import type { RedisCall, RedisClient } from './connection.ts';
import { roomKeys, sessionKeys } from './keys.ts';
import { LoopBatch, type Pending } from './loop-batch.ts';
import { runScript } from './scripts.ts';

const KEEPALIVE_MAX_MS = 60_000;

export class RedisSessionStore implements SessionStore {
  private readonly owned = new Map<string, number>();
  private readonly commits = new LoopBatch<CommitInput, CommitResult>((batch) => this.flush(batch));
  private readonly keepalive: NodeJS.Timeout;

  constructor(private readonly client: RedisClient, private readonly limits: StoreLimits, private readonly call: RedisCall) {
    // Refresh well before the TTL runs out; a dead owner stops refreshing and its sessions expire.
    const every = Math.max(100, Math.min(KEEPALIVE_MAX_MS, (limits.sessionTtlS * 1000) / 3));
    this.keepalive = setInterval(() => void this.refreshOwned(), every);
    this.keepalive.unref();
  }

  async create(session: NewSession): Promise<Claim> {
    const keys = sessionKeys(session.id);
    await this.call(
      this.client
        .multi()
        .hSet(keys.session, { tok: session.tokenHash, uid: session.userId, st: JSON.stringify(session.state ?? null), rooms: '{}', ep: 1, seq: 0 })
        .pExpire(keys.session, this.ttlMs)
        .exec(),
    );
    this.owned.set(session.id, 1);
    return { record: { id: session.id, tokenHash: session.tokenHash, userId: session.userId, state: session.state, rooms: {}, epoch: 1, lastSeq: 0 }, epoch: 1, recentRequestIds: [] };
  }

  async load(sessionId: string): Promise<SessionRecord | null> {
    const f = await this.call(this.client.hGetAll(sessionKeys(sessionId).session));
    if (!f.ep) return null;
    return { id: sessionId, tokenHash: f.tok ?? '', userId: f.uid ?? '', state: JSON.parse(f.st ?? 'null'), rooms: JSON.parse(f.rooms ?? '{}'), epoch: Number(f.ep), lastSeq: Number(f.seq ?? 0) };
  }

  async claim(sessionId: string, _instanceId: string): Promise<Claim | null> {
    const k = sessionKeys(sessionId);
    const reply = (await this.call(runScript(this.client, 'claim', [k.session, k.records, k.outbox], [this.ttlMs, this.limits.dedupeTtlS * 1000]))) as unknown[] | null;
    if (!reply) return null;
    const [epoch, tok, uid, st, rooms, seq, ...recent] = reply as [number, string, string, string, string, number, ...string[]];
    this.owned.set(sessionId, epoch);
    return {
      record: { id: sessionId, tokenHash: tok, userId: uid, state: JSON.parse(st ?? 'null'), rooms: JSON.parse(rooms ?? '{}'), epoch, lastSeq: seq },
      epoch,
      recentRequestIds: recent,
    };
  }

  async release(sessionId: string, epoch: number): Promise<void> {
    if (this.owned.get(sessionId) === epoch) this.owned.delete(sessionId);
    const k = sessionKeys(sessionId);
    await this.call(runScript(this.client, 'release', [k.session, k.records, k.outbox], [epoch, this.ttlMs]));
  }

  async exists(sessionId: string): Promise<boolean> {
    return (await this.call(this.client.exists(sessionKeys(sessionId).session))) === 1;
  }

  async recalled(sessionId: string, requestId: string): Promise<StoredResponse | null> {
    const k = sessionKeys(sessionId);
    const json = (await this.call(runScript(this.client, 'recall', [k.records], [requestId, this.limits.dedupeTtlS * 1000]))) as string | null;
    return json ? (JSON.parse(json) as StoredResponse) : null;
  }

  /**
   * Group commit: commits issued in the same turn of the event loop go to Redis as one script
   * call, each still atomic and fenced on its own.
   */
  commit(input: CommitInput): Promise<CommitResult> {
    return this.commits.add(input);
  }

  private async flush(batch: Pending<CommitInput, CommitResult>[]): Promise<void> {
    const keys: string[] = [];
    const args: (string | number)[] = [
      this.limits.dedupeMax,
      this.limits.outboxMax,
      this.limits.roomHistoryMax,
      this.limits.roomTtlS * 1000,
      // only a batch that may create a room history needs a fresh epoch for it
      batch.some(({ input }) => input.broadcasts.length + input.joins.length > 0) ? newRoomEpoch(Date.now(), randomBytes(3).toString('hex')) : '',
      batch.length,
    ];
    const responses = batch.map(({ input }) => appendCommit(input, keys, args));
    const replies = (await this.call(runScript(this.client, 'commit', keys, args))) as (1 | unknown[])[];
    batch.forEach((entry, i) => entry.resolve(commitResult(entry.input, responses[i], replies[i]!)));
  }

  async readOutbox(sessionId: string, afterSeq: number): Promise<Replay<DirectMessage>> {
    const k = sessionKeys(sessionId);
    const reply = (await this.call(runScript(this.client, 'read-outbox', [k.session, k.outbox], [afterSeq]))) as unknown[];
    const messages: DirectMessage[] = [];
    for (let i = 1; i < reply.length; i += 3) messages.push({ to: sessionId, seq: reply[i] as number, route: reply[i + 1] as string, data: JSON.parse(reply[i + 2] as string) });
    return { gap: reply[0] === 1, messages };
  }

  async ack(sessionId: string, seq: number, epoch: number): Promise<void> {
    const k = sessionKeys(sessionId);
    await this.call(runScript(this.client, 'ack', [k.session, k.outbox], [epoch, seq]));
  }

  async readRoom(room: string, after: string): Promise<Replay<RoomMessage>> {
    const parsed = parseOffset(after);
    if (!parsed) return { gap: true, messages: [] };
    const r = roomKeys(room);
    const reply = (await this.call(runScript(this.client, 'read-room', [r.meta, r.stream], [parsed.epoch, parsed.n]))) as unknown[];
    const epoch = reply[1] as string;
    const messages: RoomMessage[] = [];
    for (let i = 2; i < reply.length; i += 3) messages.push({ room, off: `${epoch}:${reply[i]}`, route: reply[i + 1] as string, data: JSON.parse(reply[i + 2] as string) });
    return { gap: reply[0] === 1, messages };
  }

  async ping(): Promise<void> {
    await this.call(this.client.ping(), 1000);
  }

  async close(): Promise<void> {
    clearInterval(this.keepalive);
  }

  private get ttlMs(): number {
    return this.limits.sessionTtlS * 1000;
  }

  private async refreshOwned(): Promise<void> {
    if (this.owned.size === 0 || !this.client.isReady) return;
    const multi = this.client.multi();
    for (const id of this.owned.keys()) {
      const k = sessionKeys(id);
      for (const key of [k.session, k.records, k.outbox]) multi.pExpire(key, this.ttlMs);
    }
    await multi.execAsPipeline().catch(() => {});
  }
}

/**
 * Adds one commit's keys and arguments, in the layout commit.lua reads. Returns the response when
 * it is already final (nothing for the commit to fill in), so the script need not send it back.
 */
function appendCommit(input: CommitInput, keys: string[], args: (string | number)[]): StoredResponse | undefined {
  const k = sessionKeys(input.sessionId);
  keys.push(k.session, k.records);
  const response = input.response ? templateResponse(input.response, input.broadcasts.length, input.sends.length) : undefined;
  args.push(
    input.epoch,
    input.requestId ?? '',
    input.state === undefined ? '' : JSON.stringify(input.state),
    response ? JSON.stringify(response) : '',
    input.sends.length,
    input.broadcasts.length,
    input.joins.length,
    input.leaves.length,
  );
  for (const s of input.sends) {
    const t = sessionKeys(s.to);
    keys.push(t.session, t.outbox);
    args.push(s.to, s.route, JSON.stringify(s.data ?? null));
  }
  for (const b of input.broadcasts) {
    const r = roomKeys(b.room);
    keys.push(r.meta, r.stream);
    args.push(b.room, b.route, JSON.stringify(b.data ?? null));
  }
  for (const room of input.joins) {
    keys.push(roomKeys(room).meta);
    args.push(room);
  }
  for (const room of input.leaves) args.push(room);
  return input.sends.length + input.broadcasts.length === 0 ? response : undefined;
}

/** Reads one commit's reply from commit.lua. */
function commitResult(input: CommitInput, final: StoredResponse | undefined, reply: 1 | unknown[]): CommitResult {
  if (reply === 1) return input.response ? { ok: true, sent: [], broadcast: [], response: final! } : { ok: true, sent: [], broadcast: [] };
  const status = reply[0] as string;
  if (status !== 'ok') return { ok: false, reason: status === 'stale_epoch' ? 'stale_epoch' : 'no_session' };
  const responseJson = reply[1] as string;
  const nSeqs = reply[3] as number;
  const seqs = reply.slice(4, 4 + nSeqs) as number[];
  const offs = reply.slice(4 + nSeqs) as string[];
  const sent: DirectMessage[] = [];
  input.sends.forEach((s, i) => {
    if (seqs[i]! > 0) sent.push({ to: s.to, seq: seqs[i]!, route: s.route, data: s.data ?? null });
  });
  const broadcast: RoomMessage[] = input.broadcasts.map((b, i) => ({ room: b.room, off: offs[i]!, route: b.route, data: b.data ?? null }));
  const result: CommitResult = { ok: true, sent, broadcast };
  if (reply[2] !== '') result.rooms = JSON.parse(reply[2] as string) as Record<string, string>;
  if (input.response) result.response = final ?? (JSON.parse(responseJson) as StoredResponse);
  return result;
}

/**
 * The response to record, with what the commit will assign standing in as placeholders that the
 * commit script fills in (offsets and seqs only exist once the script has run).
 */
function templateResponse(response: NonNullable<CommitInput['response']>, broadcasts: number, sends: number): StoredResponse {
  if (!response.ok) return { ok: false, error: response.error };
  const placeholders: Committed = {
    offsets: Array.from({ length: broadcasts }, (_, i) => `@@tether:off:${i}@@`),
    seqs: Array.from({ length: sends }, (_, i) => `@@tether:seq:${i}@@` as unknown as number),
  };
  const data = resolveReply(response.reply, placeholders);
  return data === undefined ? { ok: true } : { ok: true, data };
}
