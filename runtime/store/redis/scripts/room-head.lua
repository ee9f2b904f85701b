-- The offset a join records in a two-step commit: the room's last offset, read on the room's slot
-- before step 1 (a room without history gets its epoch now).
-- KEYS[1] room meta   ARGV[1] epoch for a room history created now   ARGV[2] room TTL ms
local m = redis.call('HMGET', KEYS[1], 'ep', 'n')
if m[1] then return m[1] .. ':' .. m[2] end
redis.call('HSET', KEYS[1], 'ep', ARGV[1], 'n', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return ARGV[1] .. ':0'
