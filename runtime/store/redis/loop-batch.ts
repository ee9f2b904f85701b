/**
 * @module store/redis/loop-batch
 * Collects calls and hands them over as one batch. While an earlier batch is still out at Redis
 * (the instance is busy), the flush waits for the loop's check phase (setImmediate), after every
 * socket read of this turn, so a batch holds what all connections sent at once, not just one
 * socket's frames. When nothing is out (a quiet instance), the flush goes as soon as the current
 * callback is done (nextTick), so a lone request does not wait behind the rest of the turn's I/O.
 * Neither adds a timer. A batch holds at most MAX_BATCH calls, so one script never keeps Redis busy
 * for long (a storm of thousands of requests in one turn goes out as several calls).
 */

export interface Pending<I, O> {
  input: I;
  resolve(output: O): void;
  reject(err: unknown): void;
}

const MAX_BATCH = 256;

export class LoopBatch<I, O> {
  private pending: Pending<I, O>[] = [];
  private inFlight = 0;

  constructor(private readonly flush: (batch: Pending<I, O>[]) => Promise<void>) {}

  add(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ input, resolve, reject });
      if (this.pending.length > 1) return;
      if (this.inFlight > 0) setImmediate(flushBatch, this);
      else process.nextTick(flushBatch, this);
    });
  }

  /** Hands the collected calls to `flush`, MAX_BATCH at a time, in order; one that throws fails its batch. */
  take(): void {
    const all = this.pending;
    this.pending = [];
    for (let i = 0; i < all.length; i += MAX_BATCH) {
      const batch = all.length <= MAX_BATCH ? all : all.slice(i, i + MAX_BATCH);
      this.inFlight++;
      this.flush(batch)
        .catch((err: unknown) => {
          for (const p of batch) p.reject(err);
        })
        .finally(() => this.inFlight--);
    }
  }
}

function flushBatch(batch: { take(): void }): void {
  batch.take();
}
