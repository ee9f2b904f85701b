-- Records a live connection in a room, unless a newer connection of the session is recorded.
-- KEYS[1] room presence hash   ARGV[1] session id   ARGV[2] epoch   ARGV[3] instance id   ARGV[4] user id
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and tonumber(string.match(cur, '^(%d+)')) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4])
return 1
