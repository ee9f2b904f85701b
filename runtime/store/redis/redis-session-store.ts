/**
 * @module store/redis/redis-session-store
 * The SessionStore on Redis. Every method is one script call (or one command). While this instance
 * owns sessions it keeps their keys alive; once it lets go (or dies) they expire SESSION_TTL_S later.
 */
import { randomBytes } from 'node:crypto';
import type { DirectMessage, Replay, RoomMessage, StoredResponse } from '../../ports/messages.ts';
import { type Claim, type CommitInput, type CommitResult, type NewSession, type SessionRecord, type SessionStore, StoreUnusableError } from '../../ports/session-store.ts';
import type { StoreLimits } from '../memory/memory-session-store.ts';
import { newRoomEpoch, parseOffset } from '../offsets.ts';
import { commitCall, type CommitReply, commitResult, isPlain, plainCommitCall } from './commit-args.ts';
import type { RedisCall, RedisClient } from './connection.ts';
import { roomKeys, sessionKeys } from './keys.ts';
import { LoopBatch, type Pending } from './loop-batch.ts';
import { TwoStepCommit } from './redis-two-step.ts';
import { runScript } from './scripts.ts';

/**
 * How a commit reaches Redis: 'single', one script for the sender's keys and every target (one
 * Redis); 'split', the two-step commit of redis-two-step.ts (Redis Cluster: one slot per script).
 */
export type CommitMode = 'single' | 'split';

const KEEPALIVE_MAX_MS = 60_000;

export class RedisSessionStore implements SessionStore {
  private readonly owned = new Map<string, number>();
  // Batches of fewer than 48 commits wait up to 3 loop turns while another is out (see LoopBatch):
  // on the Redis echo bench that took batches from ~20 to ~50 commits and the instance from ~11.5 to
  // ~10.8 us of CPU per request (one turn below 32: ~35 commits, and small batches in 2 runs of 5).
  private readonly commits = new LoopBatch<CommitInput, CommitResult>((batch) => this.flush(batch), { deferBelow: 48, maxDeferTurns: 3 });
  private readonly keepalive: NodeJS.Timeout;
  private readonly twoStep: TwoStepCommit;
  private unusable: string | undefined;

  constructor(
    private readonly client: RedisClient,
    private readonly limits: StoreLimits,
    private readonly call: RedisCall,
    private readonly mode: CommitMode = 'single',
  ) {
    this.twoStep = new TwoStepCommit(client, limits, call);
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
    const reply = (await this.call(runScript(this.client, 'claim', [k.session, k.records, k.outbox, k.pending], [this.ttlMs, this.limits.dedupeTtlS * 1000, this.limits.dedupeMax]))) as unknown[] | null;
    if (!reply) return null;
    const [epoch, tok, uid, st, rooms, seq, nRecent] = reply as [number, string, string, string, string, number, number];
    const recent = reply.slice(7, 7 + nRecent) as string[];
    const pending = reply.slice(7 + nRecent) as string[];
    // A two-step commit cut short (its instance died between the steps): finish it before the
    // session answers anything, and before the state below is handed out.
    if (pending.length > 0) {
      const entries: [string, string][] = [];
      for (let i = 0; i < pending.length; i += 2) entries.push([pending[i]!, pending[i + 1]!]);
      await this.twoStep.finishPending(sessionId, entries);
    }
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
    await this.call(runScript(this.client, 'release', [k.session, k.records, k.outbox, k.pending], [epoch, this.ttlMs]));
  }

  async exists(sessionId: string): Promise<boolean> {
    return (await this.call(this.client.exists(sessionKeys(sessionId).session))) === 1;
  }

  async recalled(sessionId: string, requestId: string): Promise<StoredResponse | null> {
    const k = sessionKeys(sessionId);
    const recall = async () => (await this.call(runScript(this.client, 'recall', [k.records], [requestId, this.limits.dedupeTtlS * 1000, this.limits.dedupeMax]))) as string | null;
    let json = await recall();
    // two-step: a request can have happened (step 1) without its record yet; finish it first
    if (!json && this.mode === 'split' && (await this.twoStep.finishPendingRequest(sessionId, requestId))) json = await recall();
    return json ? (JSON.parse(json) as StoredResponse) : null;
  }

  /**
   * Group commit: commits issued in the same turn of the event loop go to Redis as one script
   * call, each still atomic and fenced on its own.
   */
  commit(input: CommitInput): Promise<CommitResult> {
    // the two-step commit is needed only when a commit reaches beyond the sender's slot
    if (this.mode === 'split' && input.sends.length + input.broadcasts.length + input.joins.length > 0) {
      // the commits collected so far (maybe this session's earlier requests) go out first: Redis
      // must apply one session's commits in the order they were issued
      this.commits.flushNow();
      return this.twoStep.commit(input);
    }
    return this.commits.add(input);
  }

  private async flush(batch: Pending<CommitInput, CommitResult>[]): Promise<void> {
    if (this.mode === 'single') return this.commitTogether(batch);
    // on a Cluster one script call may only touch one slot: one call per session
    const bySession = new Map<string, Pending<CommitInput, CommitResult>[]>();
    for (const entry of batch) {
      const group = bySession.get(entry.input.sessionId);
      if (group) group.push(entry);
      else bySession.set(entry.input.sessionId, [entry]);
    }
    await Promise.all([...bySession.values()].map((group) => this.commitTogether(group).catch((err: unknown) => group.forEach((p) => p.reject(err)))));
  }

  /** One script call for a batch (commit-plain.lua when no commit has messages or memberships, else commit.lua); no two-step work here. */
  private async commitTogether(batch: Pending<CommitInput, CommitResult>[]): Promise<void> {
    const inputs = batch.map((p) => p.input);
    // only a batch that may create a room history needs a fresh epoch for it
    const roomEpoch = inputs.some((i) => i.broadcasts.length + i.joins.length > 0) ? newRoomEpoch(Date.now(), randomBytes(3).toString('hex')) : '';
    // most batches hold only plain commits (no messages, no memberships): the lighter script
    const plain = inputs.every(isPlain);
    const { keys, args, finals, refused, replyIndex, size } = plain ? plainCommitCall(inputs, this.limits) : commitCall(inputs, this.limits, roomEpoch);
    refused.forEach((err, i) => err && batch[i]!.reject(err));
    if (size === 0) return;
    // commit-plain.lua answers 1 for a batch that all went through
    const replies = (await this.call(runScript(this.client, plain ? 'commit-plain' : 'commit', keys, args))) as CommitReply[] | 1;
    batch.forEach((entry, i) => {
      if (!refused[i]) entry.resolve(commitResult(entry.input, finals[i], replies === 1 ? 1 : replies[replyIndex[i]!]!));
    });
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
    if (this.unusable !== undefined) throw new StoreUnusableError(this.unusable);
  }

  /** Why the connected server cannot be used (see redis-version.ts), or undefined once it can. */
  markUnusable(reason: string | undefined): void {
    this.unusable = reason;
  }

  async close(): Promise<void> {
    clearInterval(this.keepalive);
  }

  private get ttlMs(): number {
    return this.limits.sessionTtlS * 1000;
  }

  private async refreshOwned(): Promise<void> {
    if (this.owned.size === 0 || !this.client.isReady) return;
    // one command per key (pipelined by the client in one write): a MULTI would span slots on a Cluster
    const refreshes: Promise<unknown>[] = [];
    for (const id of this.owned.keys()) {
      const k = sessionKeys(id);
      for (const key of [k.session, k.records, k.outbox, k.pending]) refreshes.push(this.client.pExpire(key, this.ttlMs));
    }
    await Promise.all(refreshes).catch(() => {});
  }

}
