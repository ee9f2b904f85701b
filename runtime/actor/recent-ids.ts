/**
 * @module actor/recent-ids
 * The request ids the store may remember for a session. The owner holds them (loaded at claim,
 * added to by every commit), so an id it has never seen needs no dedupe lookup. It keeps twice as
 * many as the store does: an id missing here is certainly missing there.
 */
export class RecentIds {
  /** id -> the number of its latest add */
  private readonly ids = new Map<string, number>();
  /** the ids of the last `capacity` adds, by add number modulo capacity; grows as ids come (most sessions send few) */
  private readonly ring: string[] = [];
  private adds = 0;
  private readonly capacity: number;

  constructor(initial: Iterable<string>, capacity: number) {
    this.capacity = Math.max(1, capacity);
    for (const id of initial) this.add(id);
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  /** Adds an id as the newest; the oldest falls out once capacity is reached (an id added again counts from its latest add). */
  add(id: string): void {
    const n = this.adds++;
    if (this.ring.length < this.capacity) this.ring.push(id);
    else {
      const slot = n % this.capacity;
      const oldest = this.ring[slot]!;
      if (this.ids.get(oldest) === n - this.capacity) this.ids.delete(oldest);
      this.ring[slot] = id;
    }
    this.ids.set(id, n);
  }
}
