-- Gives up ownership if the epoch is still current: the session's keys expire SESSION_TTL_S later.
-- KEYS[1] session hash   KEYS[2] exactly-once records   KEYS[3] outbox   KEYS[4] pending deliveries
-- ARGV[1] epoch   ARGV[2] session TTL ms
local ep = redis.call('HGET', KEYS[1], 'ep')
if not ep or tonumber(ep) ~= tonumber(ARGV[1]) then return 0 end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return 1
