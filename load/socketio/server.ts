/**
 * The peer under comparison: a Socket.IO 4.8 server with @socket.io/redis-adapter 8.3 (node-redis 5
 * clients) on REDIS_URL, listening on 127.0.0.1:PORT. Prints `{"listening":<port>}` on stdout once the
 * adapter's subscriber is connected. Exits on SIGTERM/SIGINT and when its stdin closes.
 *
 * Events (all with an ack, the Socket.IO equivalent of Tether's `res`):
 *   echo (data, ack)          → ack(data)                                  (bench-redis-echo)
 *   join (room, ack)          → socket.join(room); ack(room)               (bench-fanout subscribers)
 *   publish ({room, text}, ack) → io.to(room).emit('chat.message', {room, text}); ack(true)
 *                                                                          (bench-fanout publisher, through the adapter)
 * Defaults otherwise: no per-message deflate, the default ping interval, in-memory connection state.
 */
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const port = Number(process.env.PORT ?? 0);
const redisUrl = process.env.REDIS_URL;
if (!redisUrl) {
  process.stderr.write('socketio server: REDIS_URL is required\n');
  process.exit(1);
}

const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
pub.on('error', (err) => process.stderr.write(`socketio server: redis pub: ${String(err)}\n`));
sub.on('error', (err) => process.stderr.write(`socketio server: redis sub: ${String(err)}\n`));
await Promise.all([pub.connect(), sub.connect()]);

const httpServer = createServer();
const io = new Server(httpServer, {
  adapter: createAdapter(pub, sub),
  serveClient: false,
  transports: ['websocket', 'polling'],
});

io.on('connection', (s) => {
  s.on('echo', (data: unknown, ack: (x: unknown) => void) => ack(data));
  s.on('join', (room: string, ack?: (x: unknown) => void) => {
    void s.join(room);
    ack?.(room);
  });
  s.on('publish', (m: { room: string; text: string }, ack?: (x: unknown) => void) => {
    io.to(m.room).emit('chat.message', { room: m.room, text: m.text });
    ack?.(true);
  });
});

// The adapter subscribes asynchronously: give it a moment, then confirm with a round trip.
await new Promise((r) => setTimeout(r, 100));
await pub.ping();

httpServer.listen(port, '127.0.0.1', () => {
  const { port: actual } = httpServer.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ listening: actual })}\n`);
});

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 2000).unref();
  io.close(() => {
    Promise.allSettled([pub.quit(), sub.quit()]).finally(() => process.exit(0));
  });
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
