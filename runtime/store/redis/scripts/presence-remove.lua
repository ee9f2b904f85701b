-- Forgets a connection in a room, unless a newer connection of the session took its place.
-- KEYS[1] room presence hash   ARGV[1] session id   ARGV[2] epoch
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or tonumber(string.match(cur, '^(%d+)')) > tonumber(ARGV[2]) then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
