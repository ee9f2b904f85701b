/**
 * The publisher of bench-fanout, its own child process (IPC with the orchestrator).
 *
 * Connects to `url` and publishes to `room` at a fixed `rate` (open loop, on a schedule: message k is
 * due at start + k / rate, late timers catch up): first `warmupS` seconds of warm-up messages (negative
 * indices), then `durationS` seconds of measured ones (indices 0, 1, 2, ...). Each text is
 * `"<index> <epoch ms, µs precision>"`, the send time, read by the subscribers.
 *   tether:   `{"t":"hello"}`, `chat.join {room}` (chat.send needs membership), then
 *             `req` `chat.send {room, text}`, id `m<index>`; ok = `res` with `ok: true`
 *   socketio: `emit('publish', {room, text}, ack)`: the server does `io.to(room).emit(...)`
 * Reports `measure-start` (first measured send), `measure-end` (last measured send), then
 * `result` once every measured message is answered (or 5 s passed): which indices were ok.
 */
import { performance } from 'node:perf_hooks';
import { io, type Socket } from 'socket.io-client';
import { WebSocket } from '../ws.ts';
import { round, Samples, type LatencySummary } from '../samples.ts';

export interface PubConfig {
  mode: 'tether' | 'socketio';
  url: string;
  room: string;
  rate: number;
  warmupS: number;
  durationS: number;
  hardLimitS: number;
}

export interface PubResult {
  planned: number;
  sent: number;
  okIndices: number[];
  errors: number;
  unanswered: number;
  /** send → res/ack of each measured publish. */
  ackLatency: LatencySummary;
  /** Largest delay of a send behind its schedule, ms. */
  maxScheduleLagMs: number;
  /** Measured sends / (last send − first send + 1/rate), per second. */
  achievedRate: number;
  firstError?: string;
}

export type PubMessage = { type: 'measure-start' } | { type: 'measure-end' } | { type: 'result'; result: PubResult };

const now = () => performance.timeOrigin + performance.now();

export async function runPublisher(cfg: PubConfig, report: (m: PubMessage) => void): Promise<PubResult> {
  const ack = new Samples(1 << 12);
  const okIndices: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let outstanding = 0;
  let onIdle: (() => void) | undefined;
  const sentAt = new Map<number, number>();

  const answered = (index: number, ok: boolean, what?: string) => {
    outstanding--;
    if (index >= 0) {
      if (ok) {
        okIndices.push(index);
        const t = sentAt.get(index);
        if (t !== undefined) ack.add(performance.now() - t);
      } else {
        errors++;
        firstError ??= what ?? 'not ok';
      }
    }
    if (outstanding === 0) onIdle?.();
  };

  let publish: (index: number, text: string) => void;
  let close: () => void;
  if (cfg.mode === 'tether') {
    const ws = new WebSocket(cfg.url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      let state: 'hello' | 'join' | 'live' = 'hello';
      ws.once('open', () => ws.send('{"t":"hello"}'));
      ws.once('error', reject);
      ws.on('close', (code, reason) => {
        if (state !== 'live') reject(new Error(`publisher closed ${code} ${reason.toString()} before joining`));
      });
      ws.on('message', (data) => {
        const f = JSON.parse((data as Buffer).toString()) as { t?: string; id?: string; ok?: boolean; error?: unknown };
        if (state === 'hello' && f.t === 'welcome') {
          state = 'join';
          ws.send(JSON.stringify({ t: 'req', id: 'join', route: 'chat.join', data: { room: cfg.room } }));
        } else if (state === 'join' && f.t === 'res') {
          if (f.ok === true) {
            state = 'live';
            resolve();
          } else reject(new Error(`publisher join failed: ${JSON.stringify(f.error)}`));
        } else if (state === 'live' && f.t === 'res' && typeof f.id === 'string') {
          const index = Number(f.id.slice(1));
          answered(f.id[0] === 'w' ? -1 : index, f.ok === true, `chat.send failed: ${JSON.stringify(f.error)}`);
        }
        // Its own chat.message frames (the sender is a member) are ignored.
      });
    });
    publish = (index, text) => ws.send(JSON.stringify({ t: 'req', id: index < 0 ? `w${-index}` : `m${index}`, route: 'chat.send', data: { room: cfg.room, text } }));
    close = () => ws.close(1000, 'bench done');
  } else {
    const sock: Socket = io(cfg.url, { transports: ['websocket'], forceNew: true, reconnection: false });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', () => resolve());
      sock.once('connect_error', reject);
    });
    publish = (index, text) => sock.emit('publish', { room: cfg.room, text }, (r: unknown) => answered(index, r === true, `publish ack ${JSON.stringify(r)}`));
    close = () => sock.disconnect();
  }

  const warm = Math.round(cfg.warmupS * cfg.rate);
  const planned = Math.round(cfg.durationS * cfg.rate);
  const intervalMs = 1000 / cfg.rate;
  const start = performance.now() + 50;
  let k = 0; // 0 .. warm + planned - 1
  let sent = 0;
  let maxLag = 0;
  let firstMeasured = 0;
  let lastMeasured = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const t = performance.now();
      while (k < warm + planned && start + k * intervalMs <= t) {
        const due = start + k * intervalMs;
        const index = k - warm; // negative during warm-up
        if (index === 0) {
          report({ type: 'measure-start' });
          firstMeasured = performance.now();
        }
        const ts = now();
        if (index >= 0) {
          sentAt.set(index, performance.now());
          maxLag = Math.max(maxLag, performance.now() - due);
          sent++;
        }
        outstanding++;
        publish(index, `${index} ${ts.toFixed(3)}`);
        if (index === planned - 1) {
          lastMeasured = performance.now();
          report({ type: 'measure-end' });
        }
        k++;
      }
      if (k >= warm + planned) return resolve();
      setTimeout(tick, Math.max(0, start + k * intervalMs - performance.now()));
    };
    setTimeout(tick, Math.max(0, start - performance.now()));
  });
  if (outstanding > 0) {
    await new Promise<void>((resolve) => {
      onIdle = resolve;
      setTimeout(resolve, 5000);
    });
  }
  const unanswered = outstanding;
  close();
  okIndices.sort((a, b) => a - b);
  const result: PubResult = {
    planned,
    sent,
    okIndices,
    errors,
    unanswered,
    ackLatency: ack.summary(),
    maxScheduleLagMs: round(maxLag),
    achievedRate: round(sent / ((lastMeasured - firstMeasured) / 1000 + 1 / cfg.rate), 1),
  };
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}

if (process.argv[1]?.endsWith('fanout-pub.ts')) {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as PubConfig;
  setTimeout(() => {
    process.stderr.write('fanout-pub: hard time limit reached\n');
    process.exit(3);
  }, cfg.hardLimitS * 1000).unref();
  process.on('disconnect', () => process.exit(4));
  const report = (m: PubMessage, done?: () => void) => process.send!(m, undefined, {}, () => done?.());
  runPublisher(cfg, report).then(
    (result) => report({ type: 'result', result }, () => process.exit(0)),
    (err) => {
      process.stderr.write(`fanout-pub: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
