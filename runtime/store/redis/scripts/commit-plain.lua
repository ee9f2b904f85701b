-- Group commit of plain commits: requests that write only their own session (a new state and the
-- exactly-once record; no messages, no memberships), which is what most requests are. The same
-- outcome as commit.lua's short path, with less work per commit: the caller groups the commits by
-- session and epoch, so each group reads its epoch once, writes its last state once and appends its
-- records with one RPUSH; and the arguments are plain strings, so nothing is decoded here.
--
-- ARGV[1] DEDUPE_MAX, then per group: epoch, state JSON ('' = unchanged), n, then n record tails
--   `<#id>:<id><response JSON>` (each record is `<ms>:` followed by its tail; see recall.lua)
-- KEYS per group: session hash, exactly-once records (list); every key of a group in one slot
-- Returns 1 when every group is done (the common case: nothing to build or read back), else per
--   group: 1 (done), or { 'stale_epoch' } / { 'no_session' } (nothing of it written)

local t = redis.call('TIME')
local recordPrefix = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. ':'
local dedupeMax = tonumber(ARGV[1])
-- same rule as commit.lua and finish.lua
local trimmedAbove = dedupeMax + math.max(16, math.floor(dedupeMax / 8))
-- unpack can spread at most a few thousand values onto Lua's stack
local CHUNK = 1000

local results = {}
local refused = false
local a = 2
for g = 1, #KEYS / 2 do
  local session, list = KEYS[2 * g - 1], KEYS[2 * g]
  local epoch, state, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local ep = redis.call('HGET', session, 'ep')
  if ep ~= epoch then
    results[g] = { ep and 'stale_epoch' or 'no_session' }
    refused = true
  else
    if state ~= '' then redis.call('HSET', session, 'st', state) end
    if n > 0 then
      local entries = {}
      for i = 1, n do entries[i] = recordPrefix .. ARGV[a + 2 + i] end
      local length = 0
      for i = 1, n, CHUNK do length = redis.call('RPUSH', list, unpack(entries, i, math.min(i + CHUNK - 1, n))) end
      if length > trimmedAbove then redis.call('LTRIM', list, length - dedupeMax, -1) end
      -- a new list starts with the session's expiry; the owner's keepalive refreshes it after
      if length == n then
        local left = redis.call('PTTL', session)
        if left > 0 then redis.call('PEXPIRE', list, left) end
      end
    end
    results[g] = 1
  end
  a = a + 3 + n
end
if not refused then return 1 end
return results
