-- The recorded response of a request id, if it is younger than DEDUPE_TTL_S.
-- KEYS[1] the session's exactly-once records (list of `<ms>:<#id>:<id><response JSON>`, oldest first)
-- ARGV[1] request id   ARGV[2] dedupe TTL ms   ARGV[3] DEDUPE_MAX
-- A scan of the last DEDUPE_MAX entries (the list is trimmed lazily and may hold a few more); only a
-- re-sent id the owner may have recorded comes here.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, ttl = ARGV[1], tonumber(ARGV[2])
local entries = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[3]), -1)
for i = #entries, 1, -1 do
  local e = entries[i]
  local at, n, from = string.match(e, '^(%d+):(%d+):()')
  if tonumber(at) + ttl <= now then return false end
  n = tonumber(n)
  if n == #id and string.sub(e, from, from + n - 1) == id then return string.sub(e, from + n) end
end
return false
