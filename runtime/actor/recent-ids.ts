/**
 * @module actor/recent-ids
 * The request ids the store may remember for a session. The owner holds them (loaded at claim,
 * added to by every commit), so an id it has never seen needs no dedupe lookup. It keeps twice as
 * many as the store does: an id missing here is certainly missing there.
 */
export class RecentIds {
  private readonly ids = new Set<string>();

  constructor(initial: Iterable<string>, private readonly capacity: number) {
    for (const id of initial) this.add(id);
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    this.ids.delete(id);
    this.ids.add(id);
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value!);
  }
}
