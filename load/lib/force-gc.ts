/**
 * Forces a full garbage collection in a process started with `--inspect=127.0.0.1:<port>`, through
 * the inspector protocol, so a memory reading shows live objects only. No hook in the runtime.
 */
import { WebSocket } from '../ws.ts';

export async function forceGc(inspectPort: number): Promise<void> {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  for (let i = 0; i < 2; i++) {
    await new Promise<void>((resolve) => {
      ws.send(JSON.stringify({ id: i + 1, method: 'HeapProfiler.collectGarbage' }));
      ws.once('message', () => resolve());
    });
  }
  ws.close();
}
