/**
 * The root package's `ws` (the one Tether itself runs on), for the echo benchmark's generator and bare
 * server. load/ has its own node_modules (Artillery, Socket.IO) with older copies of `ws`; a plain
 * `import 'ws'` from here would pick one of those and the comparison would no longer be like for like.
 */
import { createRequire } from 'node:module';
import type * as Ws from 'ws';

const requireFromRoot = createRequire(new URL('../package.json', import.meta.url));
const ws = requireFromRoot('ws') as typeof Ws;

export const WebSocket = ws.WebSocket;
export type WebSocket = Ws.WebSocket;
export const WebSocketServer = ws.WebSocketServer;
/** The version actually loaded, reported by the bare server. */
export const wsVersion = (requireFromRoot('ws/package.json') as { version: string }).version;
