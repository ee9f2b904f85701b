/**
 * @module main
 * `npm start`: one instance of the example app, configured from the environment.
 */
import { app } from '../handlers/index.ts';
import { ConfigError, loadConfig } from './config.ts';
import { createTether } from './server/tether.ts';
import { disableAllocationSitePretenuring } from './server/v8-tuning.ts';
import { createLogger } from './telemetry/logger.ts';

// Before any request: see v8-tuning.ts (a per-request site tenured by chance costs ~40% for good).
disableAllocationSitePretenuring();

let config;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`tether: bad configuration: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}

const tether = createTether(config, app, { logger: createLogger(config.logLevel, config.instanceId) });
try {
  await tether.start();
} catch (err) {
  // a port in use, or a HOST this machine has no address for: say which variables to change
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const culprit = code === 'EADDRINUSE' || code === 'EACCES' ? 'PORT' : 'HOST';
  process.stderr.write(`tether: cannot listen on HOST=${config.host} PORT=${config.port} (check ${culprit}): ${(err as Error).message}\n`);
  process.exit(1);
}

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  tether.log.info({ signal }, 'draining');
  // Belt and braces: exit within DRAIN_TIMEOUT_MS even if something hangs.
  setTimeout(() => process.exit(0), config.drainTimeoutMs + 500).unref();
  tether.stop().then(
    () => process.exit(0),
    (err) => {
      tether.log.error({ err }, 'stop failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
