/**
 * @module server/v8-tuning
 * V8 settings for a process whose heap is mostly short-lived request objects.
 *
 * Allocation-site pretenuring lets V8 allocate the objects of a code site straight in the old
 * generation once it sees most of them survive a young-generation GC. Under pipelined load that
 * judgement is a coin toss: if the first sample of a hot per-request site happens to be taken while
 * a few hundred requests are in flight, nearly all of them are alive and V8 tenures the site for
 * good. From then on every request's objects sit in the old generation, where (dead or not) they keep
 * the young objects they point to alive through each scavenge: scavenges take ~3.5 ms instead of
 * ~0.8, a major GC runs every ~0.8 s, and the instance does ~40% more work per request for the rest
 * of its life. Measured in `npm run bench:redis` with --trace-pretenuring-statistics: about 1 run in
 * 10 fell into that state; with pretenuring off none of 24 did (docs/LOAD_TESTING.md).
 */
import { setFlagsFromString } from 'node:v8';

/** Turns allocation-site pretenuring off for this process; call it before the process takes load. */
export function disableAllocationSitePretenuring(): void {
  setFlagsFromString('--no-allocation-site-pretenuring');
}
