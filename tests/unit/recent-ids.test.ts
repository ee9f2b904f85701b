/**
 * The owner's memory of recorded request ids: bounded, oldest out first, an id added again counts
 * from its latest add (so it never falls out here before the store forgets it).
 */
import { describe, expect, it } from 'vitest';
import { RecentIds } from '../../runtime/actor/recent-ids.ts';

describe('RecentIds', () => {
  it('keeps the latest ids up to its capacity', () => {
    const ids = new RecentIds(['a', 'b', 'c'], 3);
    expect(['a', 'b', 'c'].every((id) => ids.has(id))).toBe(true);
    ids.add('d');
    expect(ids.has('a')).toBe(false);
    expect(['b', 'c', 'd'].every((id) => ids.has(id))).toBe(true);
  });

  it('counts an id added again from its latest add', () => {
    const ids = new RecentIds(['a', 'b', 'c', 'd'], 3);
    ids.add('b');
    ids.add('e');
    ids.add('f');
    expect(ids.has('b')).toBe(true);
    expect(['c', 'd', 'a'].some((id) => ids.has(id))).toBe(false);
    expect(ids.has('e') && ids.has('f')).toBe(true);
    ids.add('g');
    expect(ids.has('b')).toBe(false);
  });
});
