-- Drops direct messages up to ARGV[2] from the outbox, if ARGV[1] is still the owner epoch.
-- KEYS[1] session hash   KEYS[2] outbox stream
-- ARGV[1] epoch   ARGV[2] seq
local ep = redis.call('HGET', KEYS[1], 'ep')
if not ep or tonumber(ep) ~= tonumber(ARGV[1]) then return 0 end
redis.call('XTRIM', KEYS[2], 'MINID', (tonumber(ARGV[2]) + 1) .. '-0')
return 1
