/**
 * @module ports/bus
 * Instance-to-instance notifications. Messages are already stored when they are published; the bus
 * only says "look, something new", so a lost notification is repaired from the store.
 */
import type { DirectMessage, RoomMessage } from './messages.ts';

export type BusMessage =
  /** `at`: when the commit that caused it was published (ms since the epoch), for delivery latency. */
  | { kind: 'room'; msg: RoomMessage; at: number }
  | { kind: 'direct'; msg: DirectMessage; at: number }
  /** The session was claimed with `epoch`; an older owner must close (4001). */
  | { kind: 'takeover'; session: string; epoch: number };

export type BusListener = (message: BusMessage) => void;

/** Channel names, built in one place. */
export const channels = {
  room: (room: string) => `room:${room}`,
  session: (sessionId: string) => `session:${sessionId}`,
};

export interface Bus {
  /** One listener per channel per instance; the instance fans out to its own sockets. */
  subscribe(channel: string, listener: BusListener): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  publish(channel: string, message: BusMessage): Promise<void>;
  /** Whether subscriptions are live (the `pubsub` readiness check). */
  healthy(): boolean;
  /** Called after the bus reconnected: notifications sent meanwhile were lost, read the store. */
  onReconnect(listener: () => void): void;
  close(): Promise<void>;
}
