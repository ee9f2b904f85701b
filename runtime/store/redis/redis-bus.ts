/**
 * @module store/redis/redis-bus
 * The Bus on Redis sharded pub/sub (SSUBSCRIBE / SPUBLISH: on a Cluster each channel lives on the
 * shard of its slot; on a single Redis it behaves like plain pub/sub). node-redis re-subscribes
 * after a reconnect; listeners of `onReconnect` then read the store for what they missed.
 */
import type { Bus, BusListener, BusMessage } from '../../ports/bus.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { RedisCall, RedisClient } from './connection.ts';
import { channelName } from './keys.ts';

export class RedisBus implements Bus {
  /** Channel (as named on Redis) to its listener. One shared Redis listener dispatches by channel. */
  private readonly listeners = new Map<string, BusListener>();
  private readonly onRedisMessage = (message: string, channel: string) => {
    const listener = this.listeners.get(channel);
    if (!listener) return;
    try {
      listener(JSON.parse(message) as BusMessage);
    } catch (err) {
      this.log.error({ err, channel }, 'bad bus message');
    }
  };
  private readonly reconnectListeners: (() => void)[] = [];
  private lostConnection = false;

  constructor(private readonly publisher: RedisClient, private readonly subscriber: RedisClient, private readonly log: Logger, private readonly call: RedisCall) {
    subscriber.on('error', () => (this.lostConnection = true));
    subscriber.on('ready', () => {
      if (!this.lostConnection) return;
      this.lostConnection = false;
      // Notifications published while we were away are gone: let everyone catch up from the store.
      setTimeout(() => this.reconnectListeners.forEach((l) => l()), 50).unref();
    });
  }

  async subscribe(channel: string, listener: BusListener): Promise<void> {
    const name = channelName(channel);
    const had = this.listeners.has(name);
    this.listeners.set(name, listener);
    if (!had) await this.call(this.subscriber.sSubscribe(name, this.onRedisMessage));
  }

  async unsubscribe(channel: string): Promise<void> {
    const name = channelName(channel);
    if (!this.listeners.delete(name)) return;
    if (this.subscriber.isReady) await this.call(this.subscriber.sUnsubscribe(name, this.onRedisMessage));
  }

  async publish(channel: string, message: BusMessage): Promise<void> {
    await this.call(this.publisher.sPublish(channelName(channel), JSON.stringify(message)));
  }

  healthy(): boolean {
    return this.subscriber.isReady;
  }

  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
