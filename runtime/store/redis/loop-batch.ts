/**
 * @module store/redis/loop-batch
 * Collects calls and hands them over as one batch. While an earlier batch is still out at Redis
 * (the instance is busy), the flush waits for the loop's check phase (setImmediate), after every
 * socket read of this turn, so a batch holds what all connections sent at once, not just one
 * socket's frames. When nothing is out (a quiet instance), the flush goes as soon as the current
 * callback is done (nextTick), so a lone request does not wait behind the rest of the turn's I/O.
 * Neither adds a timer. A batch holds at most MAX_BATCH calls, so one script never keeps Redis busy
 * for long (a storm of thousands of requests in one turn goes out as several calls).
 *
 * With `deferBelow`, a batch smaller than that, due while an earlier one is still out, waits another
 * loop turn (up to `maxDeferTurns`) to take in what the next turns bring: under load, turns get
 * short and each would otherwise send a small batch, and every call costs both processes a write, a
 * wake-up and a script run. A few turns at most (no timer; an idle loop spins through them at once),
 * so a request never waits on Redis's answer to another.
 */

export interface Pending<I, O> {
  input: I;
  resolve(output: O): void;
  reject(err: unknown): void;
}

const MAX_BATCH = 256;

export interface LoopBatchOptions {
  /** A batch smaller than this, due while another is out, waits another loop turn... */
  deferBelow?: number;
  /** ...up to this many turns (default 1). */
  maxDeferTurns?: number;
}

export class LoopBatch<I, O> {
  private pending: Pending<I, O>[] = [];
  private inFlight = 0;
  /** Turns the batch now collecting has waited already. */
  private deferred = 0;
  private readonly deferBelow: number;
  private readonly maxDeferTurns: number;

  constructor(
    private readonly flush: (batch: Pending<I, O>[]) => Promise<void>,
    options: LoopBatchOptions = {},
  ) {
    this.deferBelow = options.deferBelow ?? 0;
    this.maxDeferTurns = options.maxDeferTurns ?? 1;
  }

  add(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ input, resolve, reject });
      if (this.pending.length > 1) return;
      if (this.inFlight > 0) setImmediate(flushBatch, this);
      else process.nextTick(flushBatch, this);
    });
  }

  /** Hands over what is collected now, without waiting for the turn to end (keeps the order with a call made right after). */
  flushNow(): void {
    if (this.pending.length > 0) this.take();
  }

  /** The flush is due: go, or (a small batch while another is out) wait another turn first. */
  due(): void {
    if (this.pending.length === 0) return; // handed over already (flushNow)
    if (this.deferred < this.maxDeferTurns && this.inFlight > 0 && this.pending.length < this.deferBelow) {
      this.deferred++;
      setImmediate(flushBatch, this);
      return;
    }
    this.deferred = 0;
    this.take();
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

function flushBatch(batch: { due(): void }): void {
  batch.due();
}
