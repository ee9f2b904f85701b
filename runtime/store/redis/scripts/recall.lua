-- The recorded response of a request id, if it is younger than DEDUPE_TTL_S.
-- KEYS[1] dedupe hash   KEYS[2] dedupe order
-- ARGV[1] request id   ARGV[2] dedupe TTL ms
local at = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not at then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(at) + tonumber(ARGV[2]) <= now then return false end
return redis.call('HGET', KEYS[1], ARGV[1])
