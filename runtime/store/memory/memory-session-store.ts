/**
 * @module store/memory/memory-session-store
 * The embedded SessionStore: everything in this process's memory. One instance only (or several
 * instances in one process sharing this object). Each method runs to completion without awaiting,
 * so every commit is atomic for free.
 */
import { randomBytes } from 'node:crypto';
import { isAfterCommit, resolveReply } from '../../app/define-app.ts';
import type { TetherConfig } from '../../config.ts';
import type { Clock } from '../../ports/clock.ts';
import type { DirectMessage, Replay, RoomMessage, StoredResponse } from '../../ports/messages.ts';
import { type Claim, type CommitInput, type CommitResult, type NewSession, type SessionRecord, type SessionStore, UncommittableError } from '../../ports/session-store.ts';
import { okResponseJson } from '../../protocol/encode.ts';
import { hasRoom, setRoom } from '../../protocol/room-record.ts';
import { formatOffset, newRoomEpoch, parseOffset } from '../offsets.ts';

export type StoreLimits = Pick<TetherConfig, 'sessionTtlS' | 'dedupeTtlS' | 'dedupeMax' | 'outboxMax' | 'roomHistoryMax' | 'roomTtlS'>;

interface StoredSession {
  record: SessionRecord;
  /** Null while owned: a live session never expires. */
  expiresAt: number | null;
  outbox: DirectMessage[];
  /** A record holds the response's JSON where the handler stage made it (a snapshot), else the response. */
  dedupe: Map<string, { response: StoredResponse; json: string | undefined; at: number }>;
}

interface RoomHistory {
  epoch: string;
  lastN: number;
  messages: RoomMessage[];
  expiresAt: number;
}

const SWEEP_INTERVAL_MS = 30_000;

export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, StoredSession>();
  private readonly rooms = new Map<string, RoomHistory>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly limits: StoreLimits, private readonly clock: Clock) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  async create(session: NewSession): Promise<Claim> {
    const record: SessionRecord = { id: session.id, tokenHash: session.tokenHash, userId: session.userId, state: session.state, rooms: {}, epoch: 1, lastSeq: 0 };
    this.sessions.set(session.id, { record, expiresAt: null, outbox: [], dedupe: new Map() });
    return { record: copy(record), epoch: 1, recentRequestIds: [] };
  }

  async load(sessionId: string): Promise<SessionRecord | null> {
    const s = this.live(sessionId);
    return s ? copy(s.record) : null;
  }

  async claim(sessionId: string, _instanceId: string): Promise<Claim | null> {
    const s = this.live(sessionId);
    if (!s) return null;
    s.record.epoch += 1;
    s.expiresAt = null;
    const horizon = this.clock.now() - this.limits.dedupeTtlS * 1000;
    const recentRequestIds = [...s.dedupe].filter(([, r]) => r.at > horizon).map(([id]) => id);
    return { record: copy(s.record), epoch: s.record.epoch, recentRequestIds };
  }

  async release(sessionId: string, epoch: number): Promise<void> {
    const s = this.live(sessionId);
    if (s && s.record.epoch === epoch) s.expiresAt = this.clock.now() + this.limits.sessionTtlS * 1000;
  }

  async exists(sessionId: string): Promise<boolean> {
    return this.live(sessionId) !== null;
  }

  async recalled(sessionId: string, requestId: string): Promise<StoredResponse | null> {
    const s = this.live(sessionId);
    const hit = s?.dedupe.get(requestId);
    if (!hit) return null;
    if (hit.at + this.limits.dedupeTtlS * 1000 <= this.clock.now()) {
      s!.dedupe.delete(requestId);
      return null;
    }
    return hit.json !== undefined ? (JSON.parse(hit.json) as StoredResponse) : hit.response;
  }

  async commit(input: CommitInput): Promise<CommitResult> {
    const s = this.live(input.sessionId);
    if (!s) return { ok: false, reason: 'no_session' };
    if (s.record.epoch !== input.epoch) return { ok: false, reason: 'stale_epoch' };
    const now = this.clock.now();
    const record = s.record;
    // All or nothing, as on Redis: what the commit will assign is worked out first, so that the
    // application's code (an afterCommit reply) and its data (JSON, as Redis stores it) can fail
    // before anything changes. Effects apply in the order Redis applies them: memberships (leaves
    // after joins), then direct messages, then room messages.
    const state = input.state === undefined ? undefined : input.stateJson !== undefined ? JSON.parse(input.stateJson) : jsonCopy(input.state);
    const plain = input.sends.length + input.broadcasts.length + input.joins.length + input.leaves.length === 0;
    const targets = plain ? NO_TARGETS : input.sends.map((send) => this.live(send.to));
    // the seq each send will take (0 for a target that expired after the handler's read: nobody is
    // left to tell, as on Redis); the last seq handed out per target so far
    const lastSeq = new Map<string, number>();
    const seqs = input.sends.map((send, i) => {
      const target = targets[i];
      if (!target) return 0;
      const seq = (lastSeq.get(send.to) ?? target.record.lastSeq) + 1;
      lastSeq.set(send.to, seq);
      return seq;
    });
    const rooms: Record<string, string> = plain ? record.rooms : { ...record.rooms };
    for (const room of input.joins) {
      if (!hasRoom(rooms, room)) {
        const history = this.roomHistory(room, now);
        setRoom(rooms, room, formatOffset(history.epoch, history.lastN));
      }
    }
    for (const room of input.leaves) delete rooms[room];
    const lastN = new Map<string, number>();
    const offsets = input.broadcasts.map((b) => {
      const history = this.roomHistory(b.room, now);
      const n = (lastN.get(b.room) ?? history.lastN) + 1;
      lastN.set(b.room, n);
      return formatOffset(history.epoch, n);
    });
    let response: StoredResponse | undefined;
    // the reply as JSON when the handle stage made it: what is recorded and sent, even if the
    // handler's object changes later (pipelined handlers that change one object in place)
    let responseJson: string | undefined;
    if (input.response) {
      if (!input.response.ok) response = { ok: false, error: input.response.error };
      else {
        let data: unknown;
        try {
          data = resolveReply(input.response.reply, { offsets, seqs });
        } catch (err) {
          throw new UncommittableError(`afterCommit threw: ${err instanceof Error ? err.message : String(err)}`);
        }
        // a plain reply was checked by the handle stage; what an afterCommit built is checked here
        if (isAfterCommit(input.response.reply)) jsonCopy(data);
        response = withData(data);
        if (input.response.replyJson !== undefined) responseJson = okResponseJson(input.response.replyJson);
      }
    }

    if (state !== undefined) record.state = state;
    record.rooms = rooms;
    const sent: DirectMessage[] = [];
    input.sends.forEach((send, i) => {
      const target = targets[i];
      if (!target) return;
      target.record.lastSeq = seqs[i]!;
      const msg: DirectMessage = { to: send.to, seq: seqs[i]!, route: send.route, data: jsonCopy(send.data) ?? null };
      target.outbox.push(msg);
      if (target.outbox.length > this.limits.outboxMax) target.outbox.splice(0, target.outbox.length - this.limits.outboxMax);
      sent.push(msg);
    });
    const broadcast: RoomMessage[] = [];
    input.broadcasts.forEach((b, i) => {
      const history = this.roomHistory(b.room, now);
      history.lastN += 1;
      const msg: RoomMessage = { room: b.room, off: offsets[i]!, route: b.route, data: jsonCopy(b.data) ?? null };
      history.messages.push(msg);
      if (history.messages.length > this.limits.roomHistoryMax) history.messages.splice(0, history.messages.length - this.limits.roomHistoryMax);
      history.expiresAt = now + this.limits.roomTtlS * 1000;
      broadcast.push(msg);
    });
    if (response && input.requestId !== undefined) this.remember(s, input.requestId, response, responseJson, now);
    const result: CommitResult = { ok: true, response, sent, broadcast };
    if (responseJson !== undefined) result.responseJson = responseJson;
    if (input.joins.length + input.leaves.length > 0) result.rooms = { ...record.rooms };
    return result;
  }

  async readOutbox(sessionId: string, afterSeq: number): Promise<Replay<DirectMessage>> {
    const s = this.live(sessionId);
    if (!s) return { gap: true, messages: [] };
    if (afterSeq > s.record.lastSeq) return { gap: true, messages: [] };
    const firstRetained = s.outbox[0]?.seq ?? s.record.lastSeq + 1;
    return { gap: afterSeq < firstRetained - 1, messages: s.outbox.filter((m) => m.seq > afterSeq) };
  }

  async ack(sessionId: string, seq: number, epoch: number): Promise<void> {
    const s = this.live(sessionId);
    if (!s || s.record.epoch !== epoch) return;
    let drop = 0;
    while (drop < s.outbox.length && s.outbox[drop]!.seq <= seq) drop++;
    if (drop > 0) s.outbox.splice(0, drop);
  }

  async readRoom(room: string, after: string): Promise<Replay<RoomMessage>> {
    const parsed = parseOffset(after);
    const history = this.liveRoom(room);
    // Joining creates a room's history, so a missing one has expired: whatever was in it is lost.
    if (!history) return { gap: true, messages: [] };
    if (!parsed || parsed.epoch !== history.epoch || parsed.n > history.lastN) return { gap: true, messages: [] };
    const firstRetained = history.messages.length > 0 ? parseOffset(history.messages[0]!.off)!.n : history.lastN + 1;
    const messages = history.messages.filter((m) => parseOffset(m.off)!.n > parsed.n);
    return { gap: parsed.n < firstRetained - 1, messages };
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }

  private live(sessionId: string): StoredSession | null {
    const s = this.sessions.get(sessionId);
    if (!s) return null;
    if (s.expiresAt !== null && s.expiresAt <= this.clock.now()) {
      this.sessions.delete(sessionId);
      return null;
    }
    return s;
  }

  private liveRoom(room: string): RoomHistory | null {
    const history = this.rooms.get(room);
    if (!history) return null;
    if (history.expiresAt <= this.clock.now()) {
      this.rooms.delete(room);
      return null;
    }
    return history;
  }

  private roomHistory(room: string, now: number): RoomHistory {
    let history = this.liveRoom(room);
    if (!history) {
      history = { epoch: newRoomEpoch(now, randomBytes(3).toString('hex')), lastN: 0, messages: [], expiresAt: now + this.limits.roomTtlS * 1000 };
      this.rooms.set(room, history);
    }
    return history;
  }

  private remember(s: StoredSession, requestId: string, response: StoredResponse, json: string | undefined, now: number): void {
    s.dedupe.delete(requestId);
    s.dedupe.set(requestId, { response, json, at: now });
    // Maps iterate in insertion order, so the first key is the oldest record.
    while (s.dedupe.size > this.limits.dedupeMax) s.dedupe.delete(s.dedupe.keys().next().value!);
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const [id, s] of this.sessions) if (s.expiresAt !== null && s.expiresAt <= now) this.sessions.delete(id);
    for (const [room, h] of this.rooms) if (h.expiresAt <= now) this.rooms.delete(room);
  }
}

/**
 * A copy as JSON carries it (what Redis stores): undefined for what JSON leaves out.
 * @throws UncommittableError for what JSON cannot carry (a BigInt, a cycle)
 */
function jsonCopy(value: unknown): unknown {
  // what JSON carries as it is needs no trip through it (the common reply: a string, a number)
  if (value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value) && !Object.is(value, -0))) return value;
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new UncommittableError(`not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  return json === undefined ? undefined : JSON.parse(json);
}

const NO_TARGETS: never[] = [];

function withData(data: unknown): StoredResponse {
  return data === undefined ? { ok: true } : { ok: true, data };
}

function copy(record: SessionRecord): SessionRecord {
  return { ...record, state: structuredClone(record.state), rooms: { ...record.rooms } };
}
