/**
 * Summarizes a V8 `.cpuprofile` (from `node --cpu-prof`, e.g. `npm run bench -- --only tether --cpu-prof DIR`):
 * the hottest functions by self time and by inclusive time, and self time per file.
 *
 *   node --import tsx load/profile-summary.ts FILE.cpuprofile [--top 25] [--filter runtime/]
 *
 * `--filter` keeps only functions whose script URL contains the string (inclusive time is still
 * computed over whole stacks, so `runtime/` shows how much each runtime function costs with callees).
 */
import { readFileSync } from 'node:fs';

process.stdout.on('error', () => process.exit(0)); // e.g. piped into head

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a));
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
if (!file) {
  process.stderr.write('usage: node --import tsx load/profile-summary.ts FILE.cpuprofile [--top N] [--filter STR]\n');
  process.exit(2);
}
const top = Number(flag('top') ?? 25);
const filter = flag('filter');

const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map<number, ProfileNode>();
const parent = new Map<number, number>();
for (const n of profile.nodes) byId.set(n.id, n);
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const root = process.cwd();
const short = (url: string) => url.replace(/^file:\/\//, '').replace(`${root}/`, '').replace(/^.*node_modules\//, 'node_modules/');
const keyOf = (cf: CallFrame) => `${cf.functionName || '(anonymous)'} ${short(cf.url)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;

const self = new Map<string, number>();
const total = new Map<string, number>();
const perFile = new Map<string, number>();
let all = 0;
let idle = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
  let node = byId.get(profile.samples[i]!)!;
  all += dt;
  const leafName = node.callFrame.functionName;
  if (leafName === '(idle)') idle += dt;
  const leaf = keyOf(node.callFrame);
  self.set(leaf, (self.get(leaf) ?? 0) + dt);
  const f = short(node.callFrame.url) || node.callFrame.functionName;
  perFile.set(f, (perFile.get(f) ?? 0) + dt);
  const seen = new Set<string>();
  for (;;) {
    const k = keyOf(node.callFrame);
    if (!seen.has(k)) {
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + dt);
    }
    const p = parent.get(node.id);
    if (p === undefined) break;
    node = byId.get(p)!;
  }
}

const busy = all - idle;
const pct = (us: number) => `${((us / busy) * 100).toFixed(1).padStart(5)}%`;
const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
const keep = (k: string) => !k.startsWith('(idle)') && !k.startsWith('(root)') && (!filter || k.includes(filter));
const show = (title: string, m: Map<string, number>) => {
  process.stdout.write(`\n${title}\n`);
  const rows = [...m].filter(([k]) => keep(k)).sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [k, v] of rows) process.stdout.write(`${pct(v)} ${ms(v)}  ${k}\n`);
};

process.stdout.write(`${file}: ${(all / 1e6).toFixed(2)} s sampled, ${(idle / 1e6).toFixed(2)} s idle; percentages are of busy time (${(busy / 1e6).toFixed(2)} s)\n`);
show('self time by function', self);
show('inclusive time by function', total);
show('self time by file', new Map([...perFile].filter(([k]) => keep(k))));
