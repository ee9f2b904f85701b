-- Takes ownership of a session: raises its owner epoch and restarts its expiry.
-- KEYS[1] session hash   KEYS[2] exactly-once records (list, see recall.lua)   KEYS[3] outbox stream
-- KEYS[4] pending deliveries (hash; only a two-step commit cut short leaves entries)
-- ARGV[1] session TTL ms   ARGV[2] dedupe TTL ms   ARGV[3] DEDUPE_MAX (the last so many records count)
-- Returns nil when the session is gone, else
--   { epoch, tokenHash, userId, stateJSON, roomsJSON, lastSeq, #ids, recorded request ids..., pending n, entry JSON, ... }
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local epoch = redis.call('HINCRBY', KEYS[1], 'ep', 1)
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
local f = redis.call('HMGET', KEYS[1], 'tok', 'uid', 'st', 'rooms', 'seq')
local t = redis.call('TIME')
local since = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[2])
local ids = {}
for _, e in ipairs(redis.call('LRANGE', KEYS[2], -tonumber(ARGV[3]), -1)) do
  local at, n, from = string.match(e, '^(%d+):(%d+):()')
  if tonumber(at) > since then ids[#ids + 1] = string.sub(e, from, from + tonumber(n) - 1) end
end
local out = { epoch, f[1], f[2], f[3], f[4], tonumber(f[5]), #ids }
for _, id in ipairs(ids) do out[#out + 1] = id end
for _, v in ipairs(redis.call('HGETALL', KEYS[4])) do out[#out + 1] = v end
return out
