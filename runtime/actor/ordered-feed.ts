/**
 * @module actor/ordered-feed
 * Delivers one stream (a session's direct messages, or one room) to one connection in order, each
 * message once. Live notifications may arrive twice, late, or overtake each other (pub/sub gives no
 * order across publishers); the feed drops what it already sent and, on a hole, reads what lies
 * between from the store, which is the single source of truth.
 */
import type { Replay } from '../ports/messages.ts';

export interface FeedOps<M, K> {
  key(message: M): K;
  /** Negative when `a` is older than `b`; null when not comparable (a restarted history). */
  compare(a: K, b: K): number | null;
  /** Whether `b` directly follows `a`. */
  follows(a: K, b: K): boolean;
  /** Messages after `after`, from the store. */
  fetch(after: K): Promise<Replay<M>>;
  send(message: M): void;
  gap(): void;
  /** Called when a fetch failed; the feed retries. */
  onError(err: unknown): void;
}

const RETRY_MS = 250;

export class OrderedFeed<M, K> {
  private position: K | null = null;
  private paused = true;
  private fetching = false;
  private closed = false;
  private buffer: M[] = [];

  constructor(private readonly ops: FeedOps<M, K>) {}

  /** The last position delivered, or null before the first. */
  get last(): K | null {
    return this.position;
  }

  /** Starts live delivery from `position` (after replay), first draining what arrived meanwhile. */
  start(position: K | null): void {
    this.position = position;
    this.paused = false;
    this.drain();
  }

  /** A live message. */
  offer(message: M): void {
    if (this.closed) return;
    if (this.paused || this.fetching) {
      this.buffer.push(message);
      return;
    }
    this.accept(message);
  }

  close(): void {
    this.closed = true;
    this.buffer = [];
  }

  private accept(message: M): void {
    const key = this.ops.key(message);
    if (this.position === null) return this.deliver(message, key);
    const order = this.ops.compare(this.position, key);
    if (order !== null && order >= 0) return; // already delivered
    if (order === null || this.ops.follows(this.position, key)) return this.deliver(message, key);
    this.fillHole(message);
  }

  private deliver(message: M, key: K): void {
    this.position = key;
    this.ops.send(message);
  }

  /** Reads the store for anything after our position that no notification announced (yet). */
  resync(): void {
    if (this.closed || this.paused || this.fetching || this.position === null) return;
    this.catchUp();
  }

  /** A message overtook others: read everything after our position from the store, then go on. */
  private fillHole(trigger: M): void {
    this.buffer.unshift(trigger);
    this.catchUp();
  }

  private catchUp(): void {
    this.fetching = true;
    const from = this.position as K;
    this.ops.fetch(from).then(
      (replay) => {
        if (this.closed) return;
        if (replay.gap) this.ops.gap();
        for (const m of replay.messages) {
          const key = this.ops.key(m);
          const order = this.position === null ? null : this.ops.compare(this.position, key);
          if (order === null || order < 0) this.deliver(m, key);
        }
        // If the store no longer has what the trigger followed, deliver the trigger anyway.
        if (replay.gap && replay.messages.length === 0) this.position = null;
        this.fetching = false;
        this.drain();
      },
      (err) => {
        this.ops.onError(err);
        setTimeout(() => {
          if (this.closed) return;
          this.fetching = false;
          this.drain();
        }, RETRY_MS).unref();
      },
    );
  }

  private drain(): void {
    while (this.buffer.length > 0 && !this.fetching && !this.paused && !this.closed) this.accept(this.buffer.shift()!);
  }
}
