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

/** An in-process instance whose commits' results wait for the test; ids in `failing` fail with an unknown outcome. */
function instance(failing: string[] = []) {
  const config = loadConfig({ ...TEST_ENV, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent' });
  const ports = memoryPorts(config);
  const commit = ports.store.commit.bind(ports.store);
  const held = new Map<string, () => void>();
  const tried = new Set<string>();
  ports.store.commit = async (input: CommitInput): Promise<CommitResult> => {
    if (input.requestId) tried.add(input.requestId);
    if (input.requestId && failing.includes(input.requestId)) throw new Error('connection lost');
    const result = await commit(input); // the store itself commits in order
    if (input.requestId) await new Promise<void>((release) => held.set(input.requestId!, release));
    return result;
  };
  return { tether: createTether(config, app, { ports }), held, tried };
}

type Held = Map<string, () => void>;

/** Runs `body` with a client that said hello to such an instance; stops the instance after. */
async function withClient(failing: string[], body: (client: RawClient, held: Held, tried: Set<string>) => Promise<void>) {
  const { tether, held, tried } = instance(failing);
  const { port } = await tether.start();
  try {
    const { client } = await RawClient.hello(`ws://127.0.0.1:${port}/ws`);
    await body(client, held, tried);
    client.close();
  } finally {
    for (const release of held.values()) release();
    await tether.stop();
  }
}

describe('pipelined requests on one connection', () => {
  it('commits a request while the one before it is still committing, and answers both in order', async () => {
    await withClient([], async (client, held) => {
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
    });
  });

  it('after a commit whose outcome is unknown, decides the next request on the state reloaded from the store', async () => {
    await withClient(['b'], async (client, held, tried) => {
      client.send({ t: 'req', id: 'a', route: 'counter.inc', data: { by: 1 } });
      await waitFor(() => held.has('a'), "a's commit");
      client.send({ t: 'req', id: 'b', route: 'counter.inc', data: { by: 10 } });
      await waitFor(() => tried.has('b'), "b's failed commit");
      await new Promise((r) => setTimeout(r, 20));
      // c comes after b's commit failed, while a's answer is still held: it must not build on b's count
      client.send({ t: 'req', id: 'c', route: 'counter.inc', data: { by: 100 } });
      await new Promise((r) => setTimeout(r, 20));
      held.get('a')!();
      await waitFor(() => held.has('c'), "c's commit");
      held.get('c')!();
      await waitFor(() => client.all((f) => f.t === 'res').length === 3, 'three answers');
      const answers = client.all((f) => f.t === 'res');
      expect(answers[0]).toEqual({ t: 'res', id: 'a', ok: true, data: { count: 1 } });
      expect(answers[1]).toMatchObject({ t: 'res', id: 'b', ok: false, error: { code: 'unavailable' } });
      expect(answers[2]).toEqual({ t: 'res', id: 'c', ok: true, data: { count: 101 } });
    });
  });
});
