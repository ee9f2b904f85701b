/**
 * @module server/create-ports
 * Chooses the adapters from the configuration: Redis when REDIS_URL is set, else the embedded store.
 */
import type { TetherConfig } from '../config.ts';
import { redisPorts } from '../store/redis/redis-ports.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { memoryPorts, type TetherPorts } from './ports.ts';

export function createPorts(config: TetherConfig, log: Logger, metrics?: Pick<Metrics, 'redisCall'>): TetherPorts {
  return config.redisUrl === undefined ? memoryPorts(config) : redisPorts({ ...config, redisUrl: config.redisUrl }, log, metrics);
}
