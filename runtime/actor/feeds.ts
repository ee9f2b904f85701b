/**
 * @module actor/feeds
 * The two kinds of ordered feed a connection holds: its session's direct messages (by seq) and one
 * feed per room it belongs to (by offset).
 */
import type { DirectMessage, Replay, RoomMessage } from '../ports/messages.ts';
import type { SessionStore } from '../ports/session-store.ts';
import { compareOffsets, offsetFollows } from '../store/offsets.ts';
import { OrderedFeed } from './ordered-feed.ts';

/** Where a feed's messages go: the connection. */
export interface FeedSink {
  readonly sessionId: string;
  sendDirect(message: DirectMessage): void;
  sendRoom(message: RoomMessage): void;
  sendGap(room?: string): void;
  feedFailed(err: unknown, room?: string): void;
}

export class DirectFeed extends OrderedFeed<DirectMessage, number> {
  constructor(private readonly store: SessionStore, private readonly sink: FeedSink) {
    super();
  }
  protected key(m: DirectMessage): number {
    return m.seq;
  }
  protected compare(a: number, b: number): number {
    return a - b;
  }
  protected follows(a: number, b: number): boolean {
    return b === a + 1;
  }
  protected fetch(after: number): Promise<Replay<DirectMessage>> {
    return this.store.readOutbox(this.sink.sessionId, after);
  }
  protected send(m: DirectMessage): void {
    this.sink.sendDirect(m);
  }
  protected gap(): void {
    this.sink.sendGap();
  }
  protected fetchFailed(err: unknown): void {
    this.sink.feedFailed(err);
  }
}

export class RoomFeed extends OrderedFeed<RoomMessage, string> {
  constructor(private readonly store: SessionStore, private readonly sink: FeedSink, private readonly room: string) {
    super();
  }
  protected key(m: RoomMessage): string {
    return m.off;
  }
  protected compare(a: string, b: string): number | null {
    return compareOffsets(a, b);
  }
  protected follows(a: string, b: string): boolean {
    return offsetFollows(a, b);
  }
  protected fetch(after: string): Promise<Replay<RoomMessage>> {
    return this.store.readRoom(this.room, after);
  }
  protected send(m: RoomMessage): void {
    this.sink.sendRoom(m);
  }
  protected gap(): void {
    this.sink.sendGap(this.room);
  }
  protected fetchFailed(err: unknown): void {
    this.sink.feedFailed(err, this.room);
  }
}
