/**
 * @module store/redis/keys
 * Every Redis key and channel name, built here from one prefix. Keys one script touches together
 * share a hash tag: `{s:<session>}` for a session's keys, `{r:<room>}` for a room's, `{rl}` for the
 * limiter, so the layout already maps onto Redis Cluster slots.
 */

export const PREFIX = 'tether';

export const sessionKeys = (id: string) => {
  const tag = `${PREFIX}:{s:${id}}`;
  return { session: `${tag}:session`, records: `${tag}:records`, outbox: `${tag}:outbox`, pending: `${tag}:pending` };
};

export const roomKeys = (room: string) => {
  const tag = `${PREFIX}:{r:${room}}`;
  return { meta: `${tag}:meta`, stream: `${tag}:stream`, presence: `${tag}:presence` };
};

export const rateLimitKey = (scope: string, key: string) => `${PREFIX}:{rl}:${scope}:${key}`;

/** Instance id to the time (Redis clock, ms) until which it counts as alive. */
export const instancesKey = `${PREFIX}:instances`;

export const channelName = (channel: string) => `${PREFIX}:${channel}`;
