-- Room messages after offset <ARGV[1]>:<ARGV[2]>, and whether history reaches back that far.
-- KEYS[1] room meta hash   KEYS[2] room stream
-- ARGV[1] offset epoch   ARGV[2] offset n
-- Returns { gap (0/1), epoch, n1, route1, data1, n2, ... }
local m = redis.call('HMGET', KEYS[1], 'ep', 'n')
if not m[1] then return { 1, '' } end
local last = tonumber(m[2])
local after = tonumber(ARGV[2])
if m[1] ~= ARGV[1] or after > last then return { 1, m[1] } end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local firstN = last + 1
if #first > 0 then firstN = tonumber(string.match(first[1][1], '^(%d+)')) end
local out = { (after < firstN - 1) and 1 or 0, m[1] }
for _, e in ipairs(redis.call('XRANGE', KEYS[2], '(' .. after .. '-0', '+')) do
  local f = e[2]
  out[#out + 1] = tonumber(string.match(e[1], '^(%d+)'))
  out[#out + 1] = f[2]
  out[#out + 1] = f[4]
end
return out
