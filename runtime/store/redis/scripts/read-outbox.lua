-- Direct messages with seq > ARGV[1], and whether the outbox still reaches back that far.
-- KEYS[1] session hash   KEYS[2] outbox stream
-- ARGV[1] after seq
-- Returns { gap (0/1), seq1, route1, data1, seq2, ... }
local last = redis.call('HGET', KEYS[1], 'seq')
if not last then return { 1 } end
last = tonumber(last)
local after = tonumber(ARGV[1])
if after > last then return { 1 } end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local firstSeq = last + 1
if #first > 0 then firstSeq = tonumber(string.match(first[1][1], '^(%d+)')) end
local out = { (after < firstSeq - 1) and 1 or 0 }
for _, e in ipairs(redis.call('XRANGE', KEYS[2], '(' .. after .. '-0', '+')) do
  local f = e[2]
  out[#out + 1] = tonumber(string.match(e[1], '^(%d+)'))
  out[#out + 1] = f[2]
  out[#out + 1] = f[4]
end
return out
