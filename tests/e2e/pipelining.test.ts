/**
 * Pipelined requests on one connection: a request that arrives while an earlier one is still
 * committing is decided (and its commit issued) at once, on the state the earlier one left, and the
 * answers still leave in request order, whichever commit comes back first. The instance runs in this
 * process on the real memory store; each commit's result is held back until the test lets it go.
 */
import { describe, expect, it } from 'vitest';
import { app } from '../../handlers/index.ts';
import { loadConfig } from '../../runtime/config.ts';
import type { CommitInput, CommitResult } from '../../runtime/ports/session-store.ts';
import { memoryPorts } from '../../runtime/server/ports.ts';
import { createTether } from '../../runtime/server/tether.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { TEST_ENV } from '../helpers/server-process.ts';

const waitFor = async (check: () => boolean, what: string) => {
  const deadline = Date.now() + 2000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('pipelined requests on one connection', () => {
  it('commits a request while the one before it is still committing, and answers both in order', async () => {
    const config = loadConfig({ ...TEST_ENV, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent' });
    const ports = memoryPorts(config);
    const commit = ports.store.commit.bind(ports.store);
    const held = new Map<string, () => void>();
    ports.store.commit = async (input: CommitInput): Promise<CommitResult> => {
      const result = await commit(input); // the store itself commits in order
      if (input.requestId) await new Promise<void>((release) => held.set(input.requestId!, release));
      return result;
    };
    const tether = createTether(config, app, { ports });
    const { port } = await tether.start();
    try {
      const { client } = await RawClient.hello(`ws://127.0.0.1:${port}/ws`);
      client.send({ t: 'req', id: 'a', route: 'counter.inc', data: { by: 1 } });
      await waitFor(() => held.has('a'), "a's commit");
      client.send({ t: 'req', id: 'b', route: 'counter.inc', data: { by: 10 } });
      // b is decided on a's state and committed while a's result is still held back
      await waitFor(() => held.has('b'), "b's commit while a's is held");
      held.get('b')!();
      await new Promise((r) => setTimeout(r, 50));
      expect(client.all((f) => f.t === 'res')).toEqual([]); // b may not overtake a
      held.get('a')!();
      await waitFor(() => client.all((f) => f.t === 'res').length === 2, 'both answers');
      expect(client.all((f) => f.t === 'res')).toEqual([
        { t: 'res', id: 'a', ok: true, data: { count: 1 } },
        { t: 'res', id: 'b', ok: true, data: { count: 11 } },
      ]);
      client.close();
    } finally {
      for (const release of held.values()) release();
      await tether.stop();
    }
  });
});
