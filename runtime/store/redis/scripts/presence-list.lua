-- The user ids with a live connection in a room, each once. Entries of instances whose heartbeat
-- ran out (killed without a word) are removed on the way.
-- KEYS[1] room presence hash   KEYS[2] instances hash (instance id -> alive until, ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive = {}
local seen = {}
local out = {}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local session, value = entries[i], entries[i + 1]
  local _, _, instance, user = string.find(value, '^%d+|([^|]*)|(.*)$')
  if alive[instance] == nil then
    local untilMs = redis.call('HGET', KEYS[2], instance)
    alive[instance] = untilMs ~= false and tonumber(untilMs) > now
  end
  if alive[instance] then
    if not seen[user] then
      seen[user] = true
      out[#out + 1] = user
    end
  else
    redis.call('HDEL', KEYS[1], session)
  end
end
return out
