/**
 * @module server/local-router
 * This instance's map of live sessions and room members, and its bus subscriptions. A bus message
 * is fanned out to local sockets here, once per instance, however many members it has.
 */
import type { Bus, BusMessage } from '../ports/bus.ts';
import { channels } from '../ports/bus.ts';
import type { DirectMessage, RoomMessage } from '../ports/messages.ts';
import type { Metrics } from '../telemetry/metrics.ts';

/** What the router needs of a connection. */
export interface Routable {
  readonly sessionId: string;
  readonly epoch: number;
  offerDirect(message: DirectMessage): void;
  offerRoom(message: RoomMessage): void;
  /** The session was claimed with `epoch` elsewhere (or here, by a newer connection). */
  takenOver(epoch: number): void;
  /** Notifications may have been lost: read the store for anything missed. */
  resync(): void;
}

export class LocalRouter {
  private readonly sessions = new Map<string, Set<Routable>>();
  private readonly rooms = new Map<string, Set<Routable>>();
  private readonly roomSubscriptions = new Map<string, Promise<void>>();
  private readonly onMessage = (message: BusMessage) => this.dispatch(message);

  constructor(private readonly bus: Bus, private readonly metrics: Pick<Metrics, 'delivered'>) {
    bus.onReconnect(() => {
      for (const set of this.sessions.values()) for (const conn of set) conn.resync();
    });
  }

  /** Registers the connection that owns a session; resolves once its channel is subscribed. */
  async addSession(conn: Routable): Promise<void> {
    let set = this.sessions.get(conn.sessionId);
    if (!set) {
      this.sessions.set(conn.sessionId, (set = new Set()));
      set.add(conn);
      await this.bus.subscribe(channels.session(conn.sessionId), this.onMessage);
    } else set.add(conn);
  }

  removeSession(conn: Routable): void {
    const set = this.sessions.get(conn.sessionId);
    if (!set?.delete(conn) || set.size > 0) return;
    this.sessions.delete(conn.sessionId);
    this.bus.unsubscribe(channels.session(conn.sessionId)).catch(() => {});
  }

  /** Adds a room member; resolves once this instance hears the room's notifications. */
  async joinRoom(room: string, conn: Routable): Promise<void> {
    let set = this.rooms.get(room);
    if (!set) this.rooms.set(room, (set = new Set()));
    set.add(conn);
    let subscribed = this.roomSubscriptions.get(room);
    if (!subscribed) {
      subscribed = this.bus.subscribe(channels.room(room), this.onMessage);
      this.roomSubscriptions.set(room, subscribed);
      subscribed.catch(() => this.roomSubscriptions.delete(room));
    }
    await subscribed;
  }

  leaveRoom(room: string, conn: Routable): void {
    const set = this.rooms.get(room);
    if (!set?.delete(conn) || set.size > 0) return;
    this.rooms.delete(room);
    this.roomSubscriptions.delete(room);
    this.bus.unsubscribe(channels.room(room)).catch(() => {});
  }

  /** Live sessions on this instance. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  private dispatch(message: BusMessage): void {
    switch (message.kind) {
      case 'room':
        for (const conn of this.rooms.get(message.msg.room) ?? []) conn.offerRoom(message.msg);
        this.metrics.delivered((Date.now() - message.at) / 1000);
        break;
      case 'direct':
        for (const conn of this.sessions.get(message.msg.to) ?? []) conn.offerDirect(message.msg);
        this.metrics.delivered((Date.now() - message.at) / 1000);
        break;
      case 'takeover':
        for (const conn of this.sessions.get(message.session) ?? []) if (conn.epoch < message.epoch) conn.takenOver(message.epoch);
        break;
    }
  }
}
