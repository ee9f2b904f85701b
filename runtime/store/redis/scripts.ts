/**
 * @module store/redis/scripts
 * Loads the Lua scripts in ./scripts once and calls them by SHA, reloading after a Redis restart
 * emptied the script cache.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RedisClient } from './connection.ts';

const dir = new URL('./scripts/', import.meta.url);

export type ScriptName = 'claim' | 'commit' | 'commit-plain' | 'deliver' | 'finish' | 'room-head' | 'recall' | 'read-outbox' | 'read-room' | 'ack' | 'release' | 'rate-limit' | 'presence-add' | 'presence-remove' | 'presence-list' | 'instance-alive' | 'instances-alive';

interface Script {
  source: string;
  sha: string;
}

const cache = new Map<ScriptName, Script>();

function load(name: ScriptName): Script {
  let script = cache.get(name);
  if (!script) {
    const source = readFileSync(new URL(`${name}.lua`, dir), 'utf8');
    script = { source, sha: createHash('sha1').update(source).digest('hex') };
    cache.set(name, script);
  }
  return script;
}

/** Runs a script by SHA; on NOSCRIPT (a restarted Redis) it loads it and runs it again. */
export async function runScript(client: RedisClient, name: ScriptName, keys: string[], args: (string | number)[]): Promise<unknown> {
  const script = load(name);
  const options = { keys, arguments: args.map(String) };
  try {
    return await client.evalSha(script.sha, options);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return client.eval(script.source, options);
  }
}
