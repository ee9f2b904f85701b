-- Step 2 of the two-step commit (Redis Cluster): appends one message that a commit kept pending
-- to its target's stream, on the target's slot, at most once. The target's head hash remembers,
-- per sender session, the last delivery it took (`d:<sender>` = `<pending n>:<index>:<result>`).
-- A sender's deliveries come in order (its pending entries are finished one after the other, by
-- its owner or, after a crash, by its next owner), so one at or before that mark was taken
-- already: it is not appended again, whoever sends it (a stale owner too). Its result comes from
-- the mark, or for an older one from the stream entry, which carries its delivery key.
-- KEYS[1] target session hash | room meta   KEYS[2] target outbox | room stream
-- ARGV[1] 's' (direct) | 'b' (room)   ARGV[2] route   ARGV[3] data JSON   ARGV[4] stream cap
-- ARGV[5] room TTL ms   ARGV[6] epoch for a room history created now   ARGV[7] sender session
-- ARGV[8] pending n   ARGV[9] index within the entry
-- Returns the seq (0: the target session is gone, or the message fell out of the history) or the room offset.
local kind, sender, n, i = ARGV[1], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local mark = 'd:' .. sender
local key = sender .. ':' .. n .. ':' .. i

if kind == 's' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end

local last = redis.call('HGET', KEYS[1], mark)
if last then
  local ln, li, result = string.match(last, '^(%d+):(%d+):(.*)$')
  ln, li = tonumber(ln), tonumber(li)
  if n == ln and i == li then return kind == 's' and tonumber(result) or result end
  if n < ln or (n == ln and i < li) then
    for _, e in ipairs(redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[4])) do
      if e[2][6] == key then
        local at = string.match(e[1], '^(%d+)')
        if kind == 's' then return tonumber(at) end
        return redis.call('HGET', KEYS[1], 'ep') .. ':' .. at
      end
    end
    return kind == 's' and 0 or ''
  end
end

if kind == 's' then
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], seq .. '-0', 'r', ARGV[2], 'd', ARGV[3], 'k', key)
  redis.call('HSET', KEYS[1], mark, n .. ':' .. i .. ':' .. seq)
  local left = redis.call('PTTL', KEYS[1])
  if left > 0 then redis.call('PEXPIRE', KEYS[2], left) end
  return seq
end

local ep = redis.call('HGET', KEYS[1], 'ep')
if not ep then
  ep = ARGV[6]
  redis.call('HSET', KEYS[1], 'ep', ep, 'n', 0)
end
local at = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], at .. '-0', 'r', ARGV[2], 'd', ARGV[3], 'k', key)
redis.call('HSET', KEYS[1], mark, n .. ':' .. i .. ':' .. ep .. ':' .. at)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return ep .. ':' .. at
