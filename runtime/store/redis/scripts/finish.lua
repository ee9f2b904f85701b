-- Step 3 of the two-step commit, on the sender's slot: records the request's response (now with
-- the seqs and offsets the deliveries got) and drops the pending entry. A second finisher finds no
-- entry and writes nothing.
-- KEYS[1] session hash   KEYS[2] exactly-once records (list, see recall.lua)   KEYS[3] pending hash
-- ARGV[1] pending n   ARGV[2] request id ('' = none)   ARGV[3] response JSON ('' = none)   ARGV[4] DEDUPE_MAX
-- Returns 1, or 0 when the entry was already finished.
if redis.call('HDEL', KEYS[3], ARGV[1]) == 0 then return 0 end
if ARGV[2] ~= '' and ARGV[3] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local length = redis.call('RPUSH', KEYS[2], now .. ':' .. #ARGV[2] .. ':' .. ARGV[2] .. ARGV[3])
  local dedupeMax = tonumber(ARGV[4])
  -- trimmed lazily, as in commit.lua
  if length > dedupeMax + math.max(16, math.floor(dedupeMax / 8)) then redis.call('LTRIM', KEYS[2], length - dedupeMax, -1) end
  if length == 1 then
    local left = redis.call('PTTL', KEYS[1])
    if left > 0 then redis.call('PEXPIRE', KEYS[2], left) end
  end
end
return 1
