/**
 * Group commit's batching: calls made together go out together, in order, at most 256 per call;
 * a failed call fails its own batch only.
 */
import { describe, expect, it } from 'vitest';
import { LoopBatch, type Pending } from '../../runtime/store/redis/loop-batch.ts';

describe('LoopBatch', () => {
  it('hands over the calls of one turn in order, at most 256 at a time', async () => {
    const sizes: number[] = [];
    const seen: number[] = [];
    const batch = new LoopBatch<number, number>(async (items: Pending<number, number>[]) => {
      sizes.push(items.length);
      for (const p of items) {
        seen.push(p.input);
        p.resolve(p.input * 2);
      }
    });
    const results = await Promise.all(Array.from({ length: 600 }, (_, i) => batch.add(i)));
    expect(sizes).toEqual([256, 256, 88]);
    expect(seen).toEqual(Array.from({ length: 600 }, (_, i) => i));
    expect(results[599]).toBe(1198);
  });

  it('fails only the batch whose call failed', async () => {
    let calls = 0;
    const batch = new LoopBatch<number, number>(async (items: Pending<number, number>[]) => {
      if (calls++ === 0) throw new Error('redis call failed');
      for (const p of items) p.resolve(p.input);
    });
    const outcomes = await Promise.allSettled(Array.from({ length: 300 }, (_, i) => batch.add(i)));
    expect(outcomes.slice(0, 256).every((o) => o.status === 'rejected')).toBe(true);
    expect(outcomes.slice(256).every((o) => o.status === 'fulfilled')).toBe(true);
    // later calls go out again
    expect(await batch.add(7)).toBe(7);
  });
});
