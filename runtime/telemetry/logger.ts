/**
 * @module telemetry/logger
 * Structured JSON logs (pino), one line per event. Tokens are never logged.
 */
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string, instanceId: string): Logger {
  return pino({ level, base: { instance: instanceId }, redact: ['token', '*.token', 'auth', '*.auth'] });
}
