/**
 * @module actor/ordered-feed
 * Delivers one stream (a session's direct messages, or one room) to one connection in order, each
 * message once. Live notifications may arrive twice, late, or overtake each other (pub/sub gives no
 * order across publishers); the feed drops what it already sent and, on a hole, reads what lies
 * between from the store, which is the single source of truth.
 *
 * Subclasses supply the stream's specifics as methods, not closures: a feed exists per connection
 * and room, and per-instance closures cost memory on every one of them.
 */
import type { Replay } from '../ports/messages.ts';

const RETRY_MS = 250;

export abstract class OrderedFeed<M, K> {
  private position: K | null = null;
  private paused = true;
  private fetching = false;
  private closed = false;
  private buffer: M[] | null = null;

  protected abstract key(message: M): K;
  /** Negative when `a` is older than `b`; null when not comparable (a restarted history). */
  protected abstract compare(a: K, b: K): number | null;
  /** Whether `b` directly follows `a`. */
  protected abstract follows(a: K, b: K): boolean;
  /** Messages after `after`, from the store. */
  protected abstract fetch(after: K): Promise<Replay<M>>;
  protected abstract send(message: M): void;
  protected abstract gap(): void;
  /** A fetch failed; the feed retries. */
  protected abstract fetchFailed(err: unknown): void;

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
      (this.buffer ??= []).push(message);
      return;
    }
    this.accept(message);
  }

  /** Reads the store for anything after our position that no notification announced (yet). */
  resync(): void {
    if (this.closed || this.paused || this.fetching || this.position === null) return;
    this.catchUp();
  }

  close(): void {
    this.closed = true;
    this.buffer = null;
  }

  private accept(message: M): void {
    const key = this.key(message);
    if (this.position === null) return this.deliver(message, key);
    const order = this.compare(this.position, key);
    if (order !== null && order >= 0) return; // already delivered
    if (order === null || this.follows(this.position, key)) return this.deliver(message, key);
    // A message overtook others: read everything after our position from the store, then go on.
    (this.buffer ??= []).unshift(message);
    this.catchUp();
  }

  private deliver(message: M, key: K): void {
    this.position = key;
    this.send(message);
  }

  private catchUp(): void {
    this.fetching = true;
    this.fetch(this.position as K).then(
      (replay) => this.caughtUp(replay),
      (err) => {
        this.fetchFailed(err);
        setTimeout(() => {
          if (this.closed) return;
          this.fetching = false;
          this.drain();
        }, RETRY_MS).unref();
      },
    );
  }

  private caughtUp(replay: Replay<M>): void {
    if (this.closed) return;
    if (replay.gap) this.gap();
    for (const m of replay.messages) {
      const key = this.key(m);
      const order = this.position === null ? null : this.compare(this.position, key);
      if (order === null || order < 0) this.deliver(m, key);
    }
    // If the store no longer has what the buffered message followed, deliver it anyway.
    if (replay.gap && replay.messages.length === 0) this.position = null;
    this.fetching = false;
    this.drain();
  }

  private drain(): void {
    const buffer = this.buffer;
    while (buffer && buffer.length > 0 && !this.fetching && !this.paused && !this.closed) this.accept(buffer.shift()!);
  }
}
