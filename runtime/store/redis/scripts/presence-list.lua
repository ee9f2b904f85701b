-- The user ids with a live connection in a room, each once. Entries of instances that are not
-- alive (killed without a word: their heartbeat ran out) are removed on the way.
-- Only the room's slot: the caller reads the live instances first (instances-alive.lua), so this
-- works on Redis Cluster too. (An instance would have to start, take a connection and join it to
-- this room between the two calls to be missed; an instance heartbeats before it takes any.)
-- KEYS[1] room presence hash   ARGV: the live instance ids
local alive = {}
for _, id in ipairs(ARGV) do alive[id] = true end
local seen = {}
local out = {}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local session, value = entries[i], entries[i + 1]
  local _, _, instance, user = string.find(value, '^%d+|([^|]*)|(.*)$')
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
