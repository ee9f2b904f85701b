/**
 * @module store/redis/redis-presence
 * Presence on Redis: one hash per room (session -> epoch|instance|user), read through each
 * instance's heartbeat, so members of a killed instance vanish once its heartbeat runs out.
 */
import type { Presence } from '../../ports/presence.ts';
import type { RedisCall, RedisClient } from './connection.ts';
import { instancesKey, roomKeys } from './keys.ts';
import { runScript } from './scripts.ts';

export class RedisPresence implements Presence {
  private readonly heartbeat: NodeJS.Timeout;

  /**
   * @param heartbeatMs - how often this instance says it is alive; it counts as dead two intervals
   *   after the last time it did
   */
  constructor(private readonly client: RedisClient, private readonly instanceId: string, private readonly heartbeatMs: number, private readonly call: RedisCall) {
    this.heartbeat = setInterval(() => void this.alive().catch(() => {}), heartbeatMs);
    this.heartbeat.unref();
  }

  /** Says this instance is alive; called at start and then every heartbeat. */
  async alive(): Promise<void> {
    await this.call(runScript(this.client, 'instance-alive', [instancesKey], [this.instanceId, 2 * this.heartbeatMs]));
  }

  async add(room: string, sessionId: string, userId: string, instanceId: string, epoch: number): Promise<void> {
    await this.call(runScript(this.client, 'presence-add', [roomKeys(room).presence], [sessionId, epoch, instanceId, userId]));
  }

  async remove(room: string, sessionId: string, epoch: number): Promise<void> {
    await this.call(runScript(this.client, 'presence-remove', [roomKeys(room).presence], [sessionId, epoch]));
  }

  /** Two calls, each on one slot (Redis Cluster): the live instances, then the room's members on them. */
  async list(room: string): Promise<string[]> {
    const alive = (await this.call(runScript(this.client, 'instances-alive', [instancesKey], []))) as string[];
    return (await this.call(runScript(this.client, 'presence-list', [roomKeys(room).presence], alive))) as string[];
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    if (this.client.isReady) await runScript(this.client, 'instance-alive', [instancesKey], [this.instanceId, 0]).catch(() => {});
  }
}
