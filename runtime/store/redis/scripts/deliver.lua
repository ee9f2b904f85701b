-- Step 2 of the two-step commit (Redis Cluster): appends one message that a commit kept pending
-- to its target's stream, on the target's slot. The entry carries its delivery key
-- (<sender session>:<pending n>:<index>); finishing a pending entry again (the session's next
-- owner, after a crash between the steps) looks for that key first, so nothing is appended twice.
-- KEYS[1] target session hash | room meta   KEYS[2] target outbox | room stream
-- ARGV[1] 's' (direct) | 'b' (room)   ARGV[2] route   ARGV[3] data JSON   ARGV[4] stream cap
-- ARGV[5] room TTL ms   ARGV[6] epoch for a room history created now   ARGV[7] delivery key
-- ARGV[8] '1': look for the delivery key first (the cap bounds the search)
-- Returns the seq (0: the target session is gone) or the room offset.
local kind, key = ARGV[1], ARGV[7]

if ARGV[8] == '1' then
  for _, e in ipairs(redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[4])) do
    if e[2][6] == key then
      local n = string.match(e[1], '^(%d+)')
      if kind == 's' then return tonumber(n) end
      return redis.call('HGET', KEYS[1], 'ep') .. ':' .. n
    end
  end
end

if kind == 's' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], seq .. '-0', 'r', ARGV[2], 'd', ARGV[3], 'k', key)
  local left = redis.call('PTTL', KEYS[1])
  if left > 0 then redis.call('PEXPIRE', KEYS[2], left) end
  return seq
end

local ep = redis.call('HGET', KEYS[1], 'ep')
if not ep then
  ep = ARGV[6]
  redis.call('HSET', KEYS[1], 'ep', ep, 'n', 0)
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], n .. '-0', 'r', ARGV[2], 'd', ARGV[3], 'k', key)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return ep .. ':' .. n
