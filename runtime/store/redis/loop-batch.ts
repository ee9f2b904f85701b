/**
 * @module store/redis/loop-batch
 * Collects calls made during one turn of the event loop and hands them over as one batch. The
 * flush runs in the loop's check phase (setImmediate), after every socket read of this turn, so a
 * batch holds what all connections sent at once, not just one socket's frames; it adds no timer
 * and no wait beyond the end of the current turn.
 */

export interface Pending<I, O> {
  input: I;
  resolve(output: O): void;
  reject(err: unknown): void;
}

export class LoopBatch<I, O> {
  private pending: Pending<I, O>[] = [];

  constructor(private readonly flush: (batch: Pending<I, O>[]) => Promise<void>) {}

  add(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ input, resolve, reject });
      if (this.pending.length === 1) setImmediate(flushBatch, this);
    });
  }

  /** Hands the collected calls to `flush`; one that throws fails them all. */
  take(): void {
    const batch = this.pending;
    this.pending = [];
    this.flush(batch).catch((err: unknown) => {
      for (const p of batch) p.reject(err);
    });
  }
}

function flushBatch(batch: { take(): void }): void {
  batch.take();
}
