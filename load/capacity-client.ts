/**
 * A capacity load generator (child process of bench-capacity.ts). It opens idle sessions from
 * several 127.0.0.x source addresses, and when their instance dies, resumes every one of them on
 * another instance. It reads commands as JSON lines on stdin and reports as JSON lines on stdout.
 *
 * Commands: {"cmd":"open","url":..,"count":..,"addresses":[..]} → {"event":"opened","count":..,"ms":..}
 *           {"cmd":"failover","url":..}  (arms: on close, resume on url) → {"event":"resumed","count":..,"closedAt":..,"firstAt":..,"lastAt":..} (epoch ms)
 *           {"cmd":"close"} → exits
 */
import { createInterface } from 'node:readline';
import { WebSocket } from './ws.ts';

interface Session {
  ws: WebSocket;
  session: string;
  token: string;
}

const sessions: Session[] = [];
let failoverUrl: string | undefined;
let killedAt = 0;
let resumed = 0;
let firstResume = 0;
let lastResume = 0;
const CONCURRENCY = 400;

const send = (event: object) => process.stdout.write(`${JSON.stringify(event)}\n`);

function hello(url: string, localAddress: string, frame: object): Promise<{ ws: WebSocket; welcome: { session: string; token: string; resumed: boolean } }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { localAddress, perMessageDeflate: false });
    ws.once('open', () => ws.send(JSON.stringify(frame)));
    ws.once('error', reject);
    ws.once('message', (data) => {
      const welcome = JSON.parse(data.toString());
      if (welcome.t !== 'welcome') return reject(new Error(`expected welcome, got ${data.toString().slice(0, 100)}`));
      resolve({ ws, welcome });
    });
  });
}

async function withConcurrency<T>(items: T[], run: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await run(items[i]!, i);
      }
    }),
  );
}

function watch(s: Session, localAddress: string): void {
  s.ws.on('error', () => {});
  s.ws.once('close', () => {
    if (!failoverUrl) return;
    if (killedAt === 0) killedAt = Date.now();
    void resume(s, localAddress);
  });
}

async function resume(s: Session, localAddress: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      const { ws, welcome } = await hello(failoverUrl!, localAddress, { t: 'hello', session: s.session, token: s.token, seq: 0 });
      if (!welcome.resumed) throw new Error('not resumed');
      s.ws = ws;
      ws.on('error', () => {});
      const at = Date.now();
      if (resumed === 0) firstResume = at;
      lastResume = at;
      resumed++;
      if (resumed === sessions.length) send({ event: 'resumed', count: resumed, closedAt: killedAt, firstAt: firstResume, lastAt: lastResume });
      return;
    } catch {
      // a retry right away: the surviving instance may be briefly saturated by the storm
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 80));
    }
  }
  send({ event: 'resume-failed', session: s.session });
}

async function open(url: string, count: number, addresses: string[]): Promise<void> {
  const started = performance.now();
  const slots = Array.from({ length: count }, (_, i) => addresses[i % addresses.length]!);
  let failed = 0;
  await withConcurrency(slots, async (localAddress) => {
    try {
      const { ws, welcome } = await hello(url, localAddress, { t: 'hello' });
      const s = { ws, session: welcome.session, token: welcome.token };
      sessions.push(s);
      watch(s, localAddress);
    } catch {
      failed++;
    }
  });
  send({ event: 'opened', count: sessions.length, failed, ms: Math.round(performance.now() - started) });
}

for await (const line of createInterface({ input: process.stdin })) {
  const msg = JSON.parse(line) as { cmd: string; url?: string; count?: number; addresses?: string[] };
  if (msg.cmd === 'open') await open(msg.url!, msg.count!, msg.addresses!);
  else if (msg.cmd === 'failover') failoverUrl = msg.url;
  else if (msg.cmd === 'close') {
    for (const s of sessions) s.ws.terminate();
    process.exit(0);
  }
}
