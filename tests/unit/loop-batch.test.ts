/**
 * Group commit's batching: calls made together go out together, in order, at most 256 per call;
 * a failed call fails its own batch only; a small batch due while another is out waits one loop
 * turn for more, never longer.
 */
import { describe, expect, it } from 'vitest';
import { LoopBatch, type LoopBatchOptions, type Pending } from '../../runtime/store/redis/loop-batch.ts';

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

  const nextTurns = (n: number) => new Promise<void>((resolve) => {
    const step = (left: number) => (left === 0 ? resolve() : setImmediate(() => step(left - 1)));
    step(n);
  });

  /** A LoopBatch whose first call stays out until `release`; records each call's inputs. */
  const withFirstCallHeld = (options: LoopBatchOptions = {}) => {
    const calls: number[][] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const batch = new LoopBatch<number, number>(
      async (items: Pending<number, number>[]) => {
        calls.push(items.map((p) => p.input));
        if (calls.length === 1) await held;
        for (const p of items) p.resolve(p.input);
      },
      options,
    );
    return { batch, calls, release };
  };

  it('lets a small batch that is due while another is out wait one loop turn for more', async () => {
    const { batch, calls, release } = withFirstCallHeld({ deferBelow: 4 });
    const first = batch.add(0); // nothing out: goes at once
    await nextTurns(1);
    expect(calls).toEqual([[0]]);
    const second = batch.add(1);
    setImmediate(() => void batch.add(2)); // the next turn's request joins it
    await nextTurns(1);
    expect(calls).toEqual([[0]]);
    await nextTurns(2);
    expect(calls).toEqual([[0], [1, 2]]); // one turn later, not until the first call came back
    release();
    expect(await Promise.all([first, second])).toEqual([0, 1]);
    // a batch of deferBelow or more goes at the end of its own turn
    const held = withFirstCallHeld({ deferBelow: 2 });
    void held.batch.add(0);
    await nextTurns(1);
    void held.batch.add(1);
    void held.batch.add(2);
    await nextTurns(1);
    expect(held.calls).toEqual([[0], [1, 2]]);
    held.release();
  });

  it('lets a small batch wait up to maxDeferTurns turns while another is out, then sends it', async () => {
    const { batch, calls, release } = withFirstCallHeld({ deferBelow: 100, maxDeferTurns: 3 });
    void batch.add(0);
    await nextTurns(1);
    void batch.add(1); // due at the end of this turn, then waits 3 more
    setImmediate(() => setImmediate(() => void batch.add(2))); // two turns later: joins
    await nextTurns(3);
    expect(calls).toEqual([[0]]);
    await nextTurns(2);
    expect(calls).toEqual([[0], [1, 2]]); // sent although the first call is still out
    release();
  });

  it('sends a small batch at the end of its turn when told nothing else', async () => {
    const { batch, calls, release } = withFirstCallHeld();
    void batch.add(0);
    await nextTurns(1);
    void batch.add(1);
    await nextTurns(1);
    expect(calls).toEqual([[0], [1]]);
    release();
  });
});
