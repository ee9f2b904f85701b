/**
 * @module actor/recent-ids
 * The request ids the store may remember for a session. The owner holds them (loaded at claim,
 * added to by every commit), so an id it has never seen needs no dedupe lookup. It keeps twice as
 * many as the store does: an id missing here is certainly missing there.
 */
export class RecentIds {
  /** id -> the number of its latest add */
  private readonly ids = new Map<string, number>();
  /** the ids of the last `capacity` adds, by add number modulo capacity */
  private readonly ring: (string | undefined)[];
  private adds = 0;

  constructor(initial: Iterable<string>, capacity: number) {
    this.ring = new Array<string | undefined>(Math.max(1, capacity));
    for (const id of initial) this.add(id);
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  /** Adds an id as the newest; the oldest falls out once capacity is reached (an id added again counts from its latest add). */
  add(id: string): void {
    const n = this.adds++;
    const slot = n % this.ring.length;
    const oldest = this.ring[slot];
    if (oldest !== undefined && this.ids.get(oldest) === n - this.ring.length) this.ids.delete(oldest);
    this.ring[slot] = id;
    this.ids.set(id, n);
  }
}
