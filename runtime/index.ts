/**
 * @module tether
 * The public API: everything an application or an operator script needs, and nothing internal.
 */
export { defineApp, route, afterCommit, resolveReply, HandlerError, UnauthorizedError } from './app/define-app.ts';
export type { App, AppDef, RouteDef, HandlerContext, HandlerResult, HookResult, Hook, Committed, ReadsContext } from './app/define-app.ts';
export { send, broadcast, join, leave, close } from './app/effects.ts';
export type { Effect } from './app/effects.ts';
export { read } from './app/reads.ts';
export type { Read } from './app/reads.ts';
export type { StandardSchemaV1 } from './app/standard-schema.ts';
export { loadConfig, ConfigError } from './config.ts';
export type { TetherConfig, Limit } from './config.ts';
export { ErrorCodes, CloseCodes } from './errors.ts';
export type { ErrorCode, WireError } from './errors.ts';
export { createTether } from './server/tether.ts';
export type { Tether, TetherOptions } from './server/tether.ts';
export { memoryPorts } from './server/ports.ts';
export { disableAllocationSitePretenuring } from './server/v8-tuning.ts';
export type { TetherPorts } from './server/ports.ts';
export { signJwt } from './auth/jwt.ts';
export { hasLoneSurrogate } from './protocol/decode.ts';
