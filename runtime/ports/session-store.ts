/**
 * @module ports/session-store
 * Sessions, their owner epoch, exactly-once records, direct outboxes and room histories.
 *
 * Every write that depends on who owns a session is fenced by the owner epoch: a commit from a
 * connection whose epoch is no longer current fails, so a stale owner never overwrites a newer one.
 */
import type { WireError } from '../errors.ts';
import type { DirectMessage, Replay, RoomMessage, StoredResponse } from './messages.ts';

export interface SessionRecord {
  id: string;
  /** SHA-256 of the resume token, hex. The token itself is never stored. */
  tokenHash: string;
  userId: string;
  state: unknown;
  /** Room memberships: room name to the room offset that was last before the join ('' for none). */
  rooms: Record<string, string>;
  /** Owner epoch: raised by every claim. */
  epoch: number;
  /** The last direct-message seq assigned to this session (0 for none). */
  lastSeq: number;
}

export interface NewSession {
  id: string;
  tokenHash: string;
  userId: string;
  state: unknown;
  instanceId: string;
}

export interface Claim {
  record: SessionRecord;
  /** The epoch this connection now owns. */
  epoch: number;
  /**
   * Request ids the store still remembers for this session. The owner keeps them in memory, so a
   * request id it has never seen skips the dedupe lookup: no round trip on the hot path.
   */
  recentRequestIds: string[];
}

/** The store answers but cannot be used (e.g. a Redis too old); `reason` is what `/ready` shows. */
export class StoreUnusableError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'StoreUnusableError';
  }
}

/**
 * A commit the store refused before writing anything, because of what the application handed it:
 * an `afterCommit` reply that threw, or a reply that JSON cannot carry. A bug, not an outage: the
 * request is answered `internal`; the other commits that went to the store with it are unaffected.
 */
export class UncommittableError extends Error {
  constructor(problem: string) {
    super(problem);
    this.name = 'UncommittableError';
  }
}

/** One request's (or hook's) outcome, written atomically and fenced by `epoch`. */
export interface CommitInput {
  sessionId: string;
  epoch: number;
  /** The request id to record for exactly-once; absent for hooks and unrecorded outcomes. */
  requestId?: string;
  /** The new state; absent keeps the stored one. */
  state?: unknown;
  /** `state` as JSON, when the caller has it already (else the store serializes `state`). */
  stateJson?: string;
  joins: string[];
  leaves: string[];
  sends: { to: string; route: string; data: unknown }[];
  broadcasts: { room: string; route: string; data: unknown }[];
  /** The response to record; `reply` may be an `afterCommit` reply, resolved with what the commit assigned. */
  response?: { ok: true; reply: unknown; /** a plain `reply` as JSON, when the caller has it already */ replyJson?: string } | { ok: false; error: WireError };
}

export type CommitResult =
  | {
      ok: true;
      response?: StoredResponse;
      /** `response` as JSON, when the store has it already (the `res` frame is built from it). */
      responseJson?: string;
      sent: DirectMessage[];
      broadcast: RoomMessage[];
      /** Rooms after the commit; absent when the commit changed no membership. */
      rooms?: Record<string, string>;
    }
  | { ok: false; reason: 'stale_epoch' | 'no_session' };

export interface SessionStore {
  /** Creates a session owned (epoch 1) by the caller; it does not expire while owned. */
  create(session: NewSession): Promise<Claim>;
  /** Reads a session, or null when it is unknown or expired. */
  load(sessionId: string): Promise<SessionRecord | null>;
  /** Takes ownership: raises the epoch and stops the expiry clock. Null when the session is gone. */
  claim(sessionId: string, instanceId: string): Promise<Claim | null>;
  /** Gives up ownership if `epoch` is still current: the session now expires SESSION_TTL_S later. */
  release(sessionId: string, epoch: number): Promise<void>;
  /** Whether the session exists (owned or within its TTL). */
  exists(sessionId: string): Promise<boolean>;
  /** The recorded response of a request id, or null (never processed, or forgotten). */
  recalled(sessionId: string, requestId: string): Promise<StoredResponse | null>;
  /** Commits state, membership, the exactly-once record and the messages, atomically. */
  commit(input: CommitInput): Promise<CommitResult>;
  /** Direct messages with seq > `afterSeq`; `gap` when the outbox no longer reaches back. */
  readOutbox(sessionId: string, afterSeq: number): Promise<Replay<DirectMessage>>;
  /** The client holds every direct message up to `seq`: they may be dropped. */
  ack(sessionId: string, seq: number, epoch: number): Promise<void>;
  /** Room messages after offset `after` (offsets have the shared format of store/offsets.ts); `gap` when history does not reach back or `after` is unusable. */
  readRoom(room: string, after: string): Promise<Replay<RoomMessage>>;
  /** Resolves when the store answers; rejects (quickly) when it cannot be reached, or with StoreUnusableError when it answers but cannot be used. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
