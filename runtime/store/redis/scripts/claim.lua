-- Takes ownership of a session: raises its owner epoch and restarts its expiry.
-- KEYS[1] session hash   KEYS[2] dedupe hash   KEYS[3] dedupe order (zset)   KEYS[4] outbox stream
-- ARGV[1] session TTL ms   ARGV[2] dedupe TTL ms
-- Returns nil when the session is gone, else { epoch, tokenHash, userId, stateJSON, roomsJSON, lastSeq, recent request ids... }
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local epoch = redis.call('HINCRBY', KEYS[1], 'ep', 1)
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
local f = redis.call('HMGET', KEYS[1], 'tok', 'uid', 'st', 'rooms', 'seq')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local recent = redis.call('ZRANGEBYSCORE', KEYS[3], now - tonumber(ARGV[2]), '+inf')
local out = { epoch, f[1], f[2], f[3], f[4], tonumber(f[5]) }
for _, id in ipairs(recent) do out[#out + 1] = id end
return out
