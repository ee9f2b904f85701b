-- This instance is alive for ARGV[2] more ms, on Redis's clock (instances' clocks may disagree).
-- KEYS[1] instances hash   ARGV[1] instance id   ARGV[2] ms ('0' = gone now)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) == 0 then return redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
return 1
