/**
 * @module store/memory/memory-bus
 * The embedded Bus: a hub in this process. Several instances in one process each get their own
 * `MemoryBus` from one hub, as several processes would each hold a Redis connection.
 */
import type { Bus, BusListener, BusMessage } from '../../ports/bus.ts';

export class MemoryBusHub {
  private readonly listeners = new Map<string, Set<BusListener>>();

  connect(): Bus {
    return new MemoryBus(this);
  }

  add(channel: string, listener: BusListener): void {
    let set = this.listeners.get(channel);
    if (!set) this.listeners.set(channel, (set = new Set()));
    set.add(listener);
  }

  remove(channel: string, listener: BusListener): void {
    const set = this.listeners.get(channel);
    if (!set) return;
    set.delete(listener);
    if (set.size === 0) this.listeners.delete(channel);
  }

  deliver(channel: string, message: BusMessage): void {
    const set = this.listeners.get(channel);
    if (!set) return;
    // Asynchronous like a real broker, so a publisher never re-enters its own listener.
    for (const listener of set) queueMicrotask(() => listener(message));
  }
}

class MemoryBus implements Bus {
  private readonly mine = new Map<string, BusListener>();

  constructor(private readonly hub: MemoryBusHub) {}

  async subscribe(channel: string, listener: BusListener): Promise<void> {
    const previous = this.mine.get(channel);
    if (previous) this.hub.remove(channel, previous);
    this.mine.set(channel, listener);
    this.hub.add(channel, listener);
  }

  async unsubscribe(channel: string): Promise<void> {
    const listener = this.mine.get(channel);
    if (!listener) return;
    this.mine.delete(channel);
    this.hub.remove(channel, listener);
  }

  async publish(channel: string, message: BusMessage): Promise<void> {
    this.hub.deliver(channel, message);
  }

  healthy(): boolean {
    return true;
  }

  /** An in-process bus never disconnects. */
  onReconnect(_listener: () => void): void {}

  async close(): Promise<void> {
    for (const [channel, listener] of this.mine) this.hub.remove(channel, listener);
    this.mine.clear();
  }
}
