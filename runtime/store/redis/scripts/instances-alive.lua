-- The instances whose heartbeat has not run out, on Redis's clock.
-- KEYS[1] instances hash (instance id -> alive until, ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive = {}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  if tonumber(entries[i + 1]) > now then alive[#alive + 1] = entries[i] end
end
return alive
