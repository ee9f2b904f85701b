/**
 * The baseline for `npm run bench`: a plain `ws` WebSocketServer that echoes every frame back as it came.
 * Listens on 127.0.0.1 (PORT, default 0 = any free port) and prints `{"listening":<port>,"ws":"<version>"}` on stdout.
 * Exits on SIGTERM/SIGINT, and when its stdin closes (the orchestrating process went away).
 */
import { WebSocketServer, wsVersion } from './ws.ts';

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});

wss.on('listening', () => {
  const { port } = wss.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ listening: port, ws: wsVersion })}\n`);
});

const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
