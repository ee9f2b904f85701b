/**
 * @module server/create-ports
 * Chooses the adapters from the configuration: Redis when REDIS_URL is set, else the embedded store.
 */
import type { TetherConfig } from '../config.ts';
import { memoryPorts, type TetherPorts } from './ports.ts';

export async function createPorts(config: TetherConfig): Promise<TetherPorts> {
  if (config.redisUrl !== undefined) {
    throw new Error('REDIS_URL is set, but the Redis adapters are not built yet (see the scale-out issue); unset it to run on the embedded store');
  }
  return memoryPorts(config);
}
