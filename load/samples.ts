/**
 * Latency samples in a growable Float64Array (milliseconds), summarized by exact percentiles.
 * At ~100k req/s for 10 s that is ~8 MB, cheaper and more exact than an HDR histogram.
 */
export class Samples {
  private data: Float64Array;
  private n = 0;

  constructor(initialCapacity = 1 << 20) {
    this.data = new Float64Array(initialCapacity);
  }

  get count(): number {
    return this.n;
  }

  add(ms: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.n++] = ms;
  }

  /** Sorts in place; percentiles use the nearest-rank method. */
  summary(): LatencySummary {
    const n = this.n;
    if (n === 0) return { p50Ms: null, p95Ms: null, p99Ms: null, p999Ms: null, maxMs: null, meanMs: null };
    const sorted = this.data.subarray(0, n).sort();
    let sum = 0;
    for (let i = 0; i < n; i++) sum += sorted[i]!;
    const at = (q: number) => round(sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!);
    return { p50Ms: at(0.5), p95Ms: at(0.95), p99Ms: at(0.99), p999Ms: at(0.999), maxMs: round(sorted[n - 1]!), meanMs: round(sum / n) };
  }
}

export interface LatencySummary {
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  p999Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
}

/** Three decimals: microsecond resolution is plenty for a localhost benchmark. */
export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
