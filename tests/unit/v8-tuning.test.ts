/**
 * The instance turns V8's allocation-site pretenuring off at start (runtime/server/v8-tuning.ts):
 * a per-request site tenured by chance made ~1 benchmark run in 10 cost ~40% more per request.
 * The switch is a runtime V8 flag, which a Node upgrade could freeze or rename; this checks it still
 * takes effect, with V8's own trace of its tenuring decisions, in a child process.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// Objects of one site that mostly outlive a young-generation GC: V8 tenures such a site, once its
// young generation is at full size (so the child starts it there).
const program = (disable: boolean) => `
${disable ? "const { disableAllocationSitePretenuring } = await import('./runtime/server/v8-tuning.ts'); disableAllocationSitePretenuring();" : ''}
function make(i) { return { a: i, b: [i, i + 1], c: { d: i } }; }
function churn() { let keep = []; for (let i = 0; i < 2e6; i++) { keep.push(make(i)); if (keep.length > 1e6) keep = []; } }
churn();
churn();
`;

function tenuringDecisions(disable: boolean): number {
  const run = spawnSync(process.execPath, ['--min-semi-space-size=16', '--trace-pretenuring-statistics', '--import', 'tsx', '--input-type=module', '-e', program(disable)], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  expect(run.status, run.stderr).toBe(0);
  return run.stdout.split('\n').filter((line) => /=> tenure$/.test(line.trim())).length;
}

describe('disableAllocationSitePretenuring', () => {
  it('stops V8 from tenuring allocation sites (which it does without it)', () => {
    expect(tenuringDecisions(false)).toBeGreaterThan(0);
    expect(tenuringDecisions(true)).toBe(0);
  });
});
