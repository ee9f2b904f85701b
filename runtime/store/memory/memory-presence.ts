/**
 * @module store/memory/memory-presence
 * The embedded Presence registry.
 */
import type { Presence } from '../../ports/presence.ts';

export class MemoryPresence implements Presence {
  private readonly rooms = new Map<string, Map<string, { userId: string; epoch: number }>>();

  async add(room: string, sessionId: string, userId: string, _instanceId: string, epoch: number): Promise<void> {
    let members = this.rooms.get(room);
    if (!members) this.rooms.set(room, (members = new Map()));
    const current = members.get(sessionId);
    if (!current || current.epoch <= epoch) members.set(sessionId, { userId, epoch });
  }

  async remove(room: string, sessionId: string, epoch: number): Promise<void> {
    const members = this.rooms.get(room);
    const current = members?.get(sessionId);
    if (!members || !current || current.epoch > epoch) return;
    members.delete(sessionId);
    if (members.size === 0) this.rooms.delete(room);
  }

  async list(room: string): Promise<string[]> {
    return [...new Set([...(this.rooms.get(room)?.values() ?? [])].map((m) => m.userId))];
  }

  async close(): Promise<void> {}
}
