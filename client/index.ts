/**
 * @module client
 * The Tether client SDK (tether.v1, see docs/PROTOCOL.md), for Node and browsers, no dependency.
 *
 * @example
 * import WebSocket from 'ws'; // Node 20; browsers use their own WebSocket
 * import { TetherClient } from './client/index.ts';
 *
 * const client = new TetherClient('ws://localhost:8080/ws', { WebSocket });
 * client.on('msg', (m) => console.log(m.route, m.data));
 * client.on('state', (s) => console.log('state', s));
 * await client.connect();
 * await client.request('chat.join', { room: 'lobby' });
 * await client.request('chat.send', { room: 'lobby', text: 'hello' });
 */
export {
  TetherClient,
  type CloseEvent,
  type ConnectionState,
  type GapEvent,
  type RequestOptions,
  type ResumeState,
  type TetherClientOptions,
  type TetherEvents,
  type TetherMessage,
  type WebSocketConstructor,
  type WebSocketLike,
  type WelcomeEvent,
} from './client.ts';
export { Emitter, type Listener } from './emitter.ts';
export { TetherError, type ClientErrorCode, type TetherErrorCode } from './errors.ts';
