/**
 * @module store/redis/redis-two-step
 * The two-step commit Redis Cluster needs, where a script may only touch one slot:
 *   1. commit.lua in 'split' mode, on the sender's slot: epoch check, state, memberships, and the
 *      request's messages kept as one pending entry (its exactly-once record waits for them);
 *   2. deliver.lua per message, on the target's slot: appended to the outbox or room stream;
 *   3. finish.lua, on the sender's slot: the response recorded, with the seqs and offsets the
 *      messages got, and the pending entry dropped.
 * When an instance dies between the steps, the session's next owner finishes its pending entries
 * at claim, before it answers anything (`finishPending`). A session's entries are finished one
 * after the other, and each target remembers the last delivery it took from each sender, so a
 * message is never appended twice, not even by a stale owner racing the next one.
 * On one Redis the one-call commit does all three at once; `REDIS_COMMIT=split` runs this path there.
 */
import { randomBytes } from 'node:crypto';
import type { StoredResponse } from '../../ports/messages.ts';
import type { CommitInput, CommitResult } from '../../ports/session-store.ts';
import type { StoreLimits } from '../memory/memory-session-store.ts';
import { newRoomEpoch } from '../offsets.ts';
import { commitCall, commitResult, type CommitReply, committed, fillTemplate, layOut } from './commit-args.ts';
import type { RedisCall, RedisClient } from './connection.ts';
import { roomKeys, sessionKeys } from './keys.ts';
import { runScript } from './scripts.ts';

/** One message of a pending entry: direct ('s', target session) or room ('b', room). */
type Delivery = ['s' | 'b', string, string, string];

/** A pending entry as commit.lua stores it. */
interface PendingEntry {
  id: string;
  res: string;
  d: Delivery[];
}

export class TwoStepCommit {
  /** Per session, the finishing in progress: the next waits for it (deliveries stay in order). */
  private readonly finishing = new Map<string, Promise<unknown>>();
  /**
   * Sessions with an entry whose finishing failed (a Redis error or timeout): it is finished before
   * the session's next one, or a later delivery's mark would make it look delivered already.
   */
  private readonly unfinished = new Set<string>();

  constructor(private readonly client: RedisClient, private readonly limits: StoreLimits, private readonly call: RedisCall) {}

  async commit(input: CommitInput): Promise<CommitResult> {
    // The response as it is now (a handler may change its objects in place later); one that
    // cannot be laid out is refused by commitCall below
    let template = '';
    try {
      if (input.response) template = layOut(input)!.json;
    } catch {}
    // Without joins, step 1 goes out at once: a later request's commit of this session, issued
    // after this one, must not reach Redis first (its state would be overwritten by this older one).
    const joinOffsets = input.joins.length === 0 ? [] : await Promise.all(input.joins.map((room) => this.roomHead(room)));
    const { keys, args, finals, refused } = commitCall([input], this.limits, '', joinOffsets);
    if (refused[0]) throw refused[0];
    const [reply] = (await this.call(runScript(this.client, 'commit', keys, args))) as CommitReply[];
    if (reply === 1 || (reply![0] as string) !== 'pending') return commitResult(input, finals[0], reply!);
    const n = String(reply![1]);
    const roomsJson = reply![2] as string;
    const entry: PendingEntry = { id: input.requestId ?? '', res: template, d: deliveriesOf(input) };
    const { seqs, offs, response } = await this.inOrder(input.sessionId, async () => {
      if (this.unfinished.has(input.sessionId)) await this.finishEarlier(input.sessionId, Number(n));
      return this.finish(input.sessionId, n, entry);
    });
    return committed(input, seqs, offs, roomsJson, input.response ? response : undefined);
  }

  /** Finishes what a commit cut short left pending, oldest first (the claim's first job). */
  async finishPending(sessionId: string, entries: [n: string, json: string][]): Promise<void> {
    await this.inOrder(sessionId, () => this.finishInOrder(sessionId, entries));
  }

  /**
   * A re-sent request whose commit passed step 1 but was not finished (its finishing failed, or
   * is still under way): finishes it, and what is pending before it, so that its record exists.
   * @returns whether the request was pending
   */
  async finishPendingRequest(sessionId: string, requestId: string): Promise<boolean> {
    const mine = (await this.pendingEntries(sessionId)).find(([, json]) => (JSON.parse(json) as PendingEntry).id === requestId);
    if (!mine) return false;
    // read again once it is this job's turn: what finished meanwhile is no longer pending
    await this.inOrder(sessionId, () => this.finishEarlier(sessionId, Number(mine[0]) + 1));
    return true;
  }

  /** The session's pending entries older than `n`, finished in order. */
  private async finishEarlier(sessionId: string, n: number): Promise<void> {
    await this.finishInOrder(sessionId, (await this.pendingEntries(sessionId)).filter(([m]) => Number(m) < n));
  }

  private async pendingEntries(sessionId: string): Promise<[n: string, json: string][]> {
    return Object.entries(await this.call(this.client.hGetAll(sessionKeys(sessionId).pending)));
  }

  /** Steps 2 and 3 of each entry, oldest first; afterwards nothing of the session is left unfinished. */
  private async finishInOrder(sessionId: string, entries: [n: string, json: string][]): Promise<void> {
    entries.sort((a, b) => Number(a[0]) - Number(b[0]));
    for (const [n, json] of entries) await this.finish(sessionId, n, JSON.parse(json) as PendingEntry);
    this.unfinished.delete(sessionId);
  }

  /** Runs `job` after the session's finishing in progress, if any; a failed one marks the session. */
  private inOrder<T>(sessionId: string, job: () => Promise<T>): Promise<T> {
    const before = this.finishing.get(sessionId);
    const run = (before ? before.then(job, job) : job()).catch((err: unknown) => {
      this.unfinished.add(sessionId);
      throw err;
    });
    const settled = run.catch(() => {});
    this.finishing.set(sessionId, settled);
    void settled.then(() => {
      if (this.finishing.get(sessionId) === settled) this.finishing.delete(sessionId);
    });
    return run;
  }

  /** Steps 2 and 3 of one pending entry. */
  private async finish(sessionId: string, n: string, entry: PendingEntry) {
    const seqs: number[] = [];
    const offs: string[] = [];
    // in order: two messages of one request to one stream keep their order
    for (const [i, [kind, target, route, data]] of entry.d.entries()) {
      const at = { sender: sessionId, n, i };
      if (kind === 's') seqs.push((await this.deliver(kind, sessionKeys(target).session, sessionKeys(target).outbox, route, data, at)) as number);
      else offs.push((await this.deliver(kind, roomKeys(target).meta, roomKeys(target).stream, route, data, at)) as string);
    }
    const responseJson = entry.res === '' ? '' : fillTemplate(entry.res, seqs, offs);
    const k = sessionKeys(sessionId);
    await this.call(runScript(this.client, 'finish', [k.session, k.records, k.pending], [n, entry.id, responseJson, this.limits.dedupeMax]));
    const response = responseJson === '' ? undefined : (JSON.parse(responseJson) as StoredResponse);
    return { seqs, offs, response };
  }

  private deliver(kind: 's' | 'b', head: string, stream: string, route: string, data: string, at: { sender: string; n: string; i: number }): Promise<unknown> {
    const cap = kind === 's' ? this.limits.outboxMax : this.limits.roomHistoryMax;
    const args = [kind, route, data, cap, this.limits.roomTtlS * 1000, kind === 'b' ? freshRoomEpoch() : '', at.sender, at.n, at.i];
    return this.call(runScript(this.client, 'deliver', [head, stream], args));
  }

  private async roomHead(room: string): Promise<string> {
    return (await this.call(runScript(this.client, 'room-head', [roomKeys(room).meta], [freshRoomEpoch(), this.limits.roomTtlS * 1000]))) as string;
  }
}

function deliveriesOf(input: CommitInput): Delivery[] {
  return [
    ...input.sends.map((s): Delivery => ['s', s.to, s.route, JSON.stringify(s.data ?? null)]),
    ...input.broadcasts.map((b): Delivery => ['b', b.room, b.route, JSON.stringify(b.data ?? null)]),
  ];
}

function freshRoomEpoch(): string {
  return newRoomEpoch(Date.now(), randomBytes(3).toString('hex'));
}
