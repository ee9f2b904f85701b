/**
 * @module actor/held-stream
 * Keeps a request's own messages behind its `res` on its own connection (SPEC: the `res` "goes out
 * before any `msg` the request caused on the same connection").
 *
 * Normally the connection announces a request's messages only after sending its `res`. But a feed
 * that finds a hole (another instance's message overtook ours on pub/sub) reads the store, and the
 * store already holds the messages of a request whose commit has not been answered yet. So while
 * a request that writes into a stream (a room it broadcasts to, or its own session's outbox) is
 * unanswered, the stream's frames past what has been answered wait here. Commits of one session
 * happen in order, so once a request is answered every message up to its own is safe to send:
 * another member's message waits at most for this connection's next answer.
 *
 * A join holds its room the same way: the room's feed starts before the join's `res` can go (the
 * `res` waits until this instance hears the room), and the messages it hears meanwhile must not
 * reach the client before the `res` that tells it it is a member.
 */

interface Held<K> {
  /** null for a `gap` frame: it caused nothing and only keeps its place */
  key: K | null;
  frame: string;
  isMsg: boolean;
}

export type Send = (frame: string, isMsg: boolean) => void;

export class HeldStream<K> {
  /** unanswered requests of this connection that write into the stream */
  private holds = 0;
  /** the newest key an answered request wrote; undefined before the first */
  private released: K | undefined;
  private readonly queue: Held<K>[] = [];

  /** @param compare - negative when `a` is older than `b`; null when not comparable */
  constructor(private readonly compare: (a: K, b: K) => number | null) {}

  /** A request that writes into the stream is on its way to the store. */
  hold(): void {
    this.holds++;
  }

  /**
   * That request is answered (its `res` is out), having written up to `key` (undefined: nothing
   * known, e.g. the commit failed). Sends what may go now.
   */
  release(key: K | undefined, send: Send): void {
    this.holds--;
    if (key !== undefined && (this.released === undefined || (this.compare(this.released, key) ?? -1) < 0)) this.released = key;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (this.holds > 0 && head.key !== null && !this.mayPass(head.key)) return;
      this.queue.shift();
      send(head.frame, head.isMsg);
    }
  }

  /** A frame for the stream (`key` null for a gap): sent now, or queued to keep the order. */
  offer(key: K | null, frame: string, isMsg: boolean, send: Send): void {
    if (this.queue.length === 0 && (this.holds === 0 || key === null || this.mayPass(key))) return send(frame, isMsg);
    this.queue.push({ key, frame, isMsg });
  }

  /** Nothing held and nothing waiting: the stream needs no tracking. */
  get idle(): boolean {
    return this.holds === 0 && this.queue.length === 0;
  }

  private mayPass(key: K): boolean {
    if (this.released === undefined) return false;
    const order = this.compare(key, this.released);
    return order !== null && order <= 0;
  }
}
