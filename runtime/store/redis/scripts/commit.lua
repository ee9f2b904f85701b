-- Group commit: the outcomes of several requests (each of one session, each fenced by its owner
-- epoch), one after the other, in one call. Per request, atomically: state, memberships, the
-- exactly-once record, direct messages to target outboxes and room messages to room streams.
--
-- Mode 'split' is step 1 of the two-step commit Redis Cluster needs (every key in the sender's
-- slot): the messages are not appended but kept as one pending entry of the session, whose
-- exactly-once record waits for them; deliver.lua appends them on their targets' slots and
-- finish.lua records the response (see redis-two-step.ts). A join's offset comes as an argument.
--
-- ARGV[1] DEDUPE_MAX   ARGV[2] OUTBOX_MAX   ARGV[3] ROOM_HISTORY_MAX
-- ARGV[4] room TTL ms   ARGV[5] epoch for a room history created now   ARGV[6] 'single' | 'split'
-- ARGV[7] the commits, as one JSON array (see commit-args.ts), each
--   [epoch, request id ('' = none), state JSON ('' = unchanged),
--    response JSON ('' = none; may hold @@tether:off:<i>@@ / @@tether:seq:<i>@@ placeholders),
--    sends [[to, route, data JSON]...], broadcasts [[room, route, data JSON]...],
--    joins [room...] (split: [[room, offset]...]), leaves [room...]]
--   where a commit without messages or memberships stops after the response (no empty lists to
--   decode: most requests have no effects, and cjson builds a table for every list)
-- KEYS per commit: session hash, exactly-once records (list), (split only) pending deliveries
--   (hash), then (single only) 2 per send (target session hash, target outbox), 2 per broadcast
--   (room meta, room stream), 1 per join (room meta)
-- Returns per commit: 1 (done; nothing to report back), or { 'ok', response JSON ('' = as sent:
--   it had nothing to fill in), rooms JSON ('' = unchanged), #seqs, seq..., off... },
--   or (split) { 'pending', n, rooms JSON }, or { 'stale_epoch' } / { 'no_session' }
--
-- Cost: the script is atomic as a whole, so what several commits of one session write is written
-- once per session at the end (the last state, one RPUSH of their exactly-once records), and each
-- session's epoch is read once. The records are trimmed lazily: only once they exceed DEDUPE_MAX
-- by a slack (see `trimmedAbove`) is the list cut back to DEDUPE_MAX, so most commits run no
-- LTRIM; recall.lua and claim.lua read only the last DEDUPE_MAX.
--
-- The records of a session are one list, oldest first, each entry `<ms>:<#id>:<id><response JSON>`
-- (see recall.lua). Not a hash: Redis keeps a hash of up to 512 fields as a listpack, where every
-- write scans it all; a list appends and trims at its ends.

local t = redis.call('TIME')
-- every record starts with the time in ms; formatted once (a number's tostring is slow in Lua)
local recordPrefix = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. ':'
local dedupeMax = tonumber(ARGV[1])
-- same rule in finish.lua
local trimmedAbove = dedupeMax + math.max(16, math.floor(dedupeMax / 8))
local split = ARGV[6] == 'split'

local function roomHead(meta)
  local m = redis.call('HMGET', meta, 'ep', 'n')
  if m[1] then return m[1], tonumber(m[2]) end
  redis.call('HSET', meta, 'ep', ARGV[5], 'n', 0)
  redis.call('PEXPIRE', meta, ARGV[4])
  return ARGV[5], 0
end

-- A direct message: the target's next seq (0 when the target session is gone).
local function appendDirect(target, outbox, route, data)
  if redis.call('EXISTS', target) == 0 then return 0 end
  local seq = redis.call('HINCRBY', target, 'seq', 1)
  redis.call('XADD', outbox, 'MAXLEN', ARGV[2], seq .. '-0', 'r', route, 'd', data)
  local left = redis.call('PTTL', target)
  if left > 0 then redis.call('PEXPIRE', outbox, left) end
  return seq
end

-- A room message: its offset.
local function appendRoom(meta, stream, route, data)
  local roomEpoch = roomHead(meta)
  local n = redis.call('HINCRBY', meta, 'n', 1)
  redis.call('XADD', stream, 'MAXLEN', ARGV[3], n .. '-0', 'r', route, 'd', data)
  redis.call('PEXPIRE', meta, ARGV[4])
  redis.call('PEXPIRE', stream, ARGV[4])
  return roomEpoch .. ':' .. n
end

-- unpack can spread at most a few thousand values onto Lua's stack
local CHUNK = 1000

-- Nothing in this script changes an epoch, so each session's is read once.
local epochs = {}
local function epochOf(session)
  local ep = epochs[session]
  if ep == nil then
    ep = redis.call('HGET', session, 'ep') or false
    epochs[session] = ep
  end
  return ep
end

local states, stateOrder = {}, {}
local recorded, recordedOrder = {}, {}

-- The last state of each session, written once at the end.
local function keepState(session, state)
  if state == '' then return end
  if states[session] == nil then stateOrder[#stateOrder + 1] = session end
  states[session] = state
end

-- '<length>:' per id length, formatted once (Lua formats every number with sprintf)
local lengthPrefix = {}

-- An exactly-once record, appended once per session at the end.
local function record(session, list, requestId, response)
  local n = #requestId
  local prefix = lengthPrefix[n]
  if not prefix then
    prefix = recordPrefix .. n .. ':'
    lengthPrefix[n] = prefix
  end
  local r = recorded[list]
  if not r then
    r = { session = session, entries = {} }
    recorded[list] = r
    recordedOrder[#recordedOrder + 1] = list
  end
  r.entries[#r.entries + 1] = prefix .. requestId .. response
end

local k = 0
local results = {}
local commits = cjson.decode(ARGV[7])

for c = 1, #commits do
  local commit = commits[c]
  local epoch, requestId, state, response = commit[1], commit[2], commit[3], commit[4]
  local sends, broadcasts, joins, leaves = commit[5], commit[6], commit[7], commit[8]
  local session, list, pending = KEYS[k + 1], KEYS[k + 2], nil
  k = k + 2
  if split then
    pending = KEYS[k + 1]
    k = k + 1
  end
  local ep = epochOf(session)
  if ep ~= epoch then
    results[c] = { ep and 'stale_epoch' or 'no_session' }
    if sends and not split then k = k + 2 * #sends + 2 * #broadcasts + #joins end
  elseif sends == nil then
    -- no effects: the state and the record, nothing to report back
    keepState(session, state)
    if response ~= '' and requestId ~= '' then record(session, list, requestId, response) end
    results[c] = 1
  else
    -- memberships first (a join records the room's last offset before the join, so the member
    -- gets what the same request broadcasts; leaves apply after joins), then direct messages, then
    -- room messages (split: kept for deliver.lua). KEYS hold the sends', the broadcasts', then the
    -- joins' keys.
    local joinKeys = k + 2 * #sends + 2 * #broadcasts
    local roomsJson = ''
    if #joins + #leaves > 0 then
      local rooms = cjson.decode(redis.call('HGET', session, 'rooms') or '{}')
      for j, join in ipairs(joins) do
        if split then
          if rooms[join[1]] == nil then rooms[join[1]] = join[2] end
        elseif rooms[join] == nil then
          local roomEpoch, n = roomHead(KEYS[joinKeys + j])
          rooms[join] = roomEpoch .. ':' .. n
        end
      end
      for _, room in ipairs(leaves) do rooms[room] = nil end
      roomsJson = next(rooms) == nil and '{}' or cjson.encode(rooms)
      redis.call('HSET', session, 'rooms', roomsJson)
    end

    local deliveries, seqs, offs = {}, {}, {}
    for _, m in ipairs(sends) do
      if split then
        deliveries[#deliveries + 1] = { 's', m[1], m[2], m[3] }
      else
        seqs[#seqs + 1] = appendDirect(KEYS[k + 1], KEYS[k + 2], m[2], m[3])
        k = k + 2
      end
    end
    for _, b in ipairs(broadcasts) do
      if split then
        deliveries[#deliveries + 1] = { 'b', b[1], b[2], b[3] }
      else
        offs[#offs + 1] = appendRoom(KEYS[k + 1], KEYS[k + 2], b[2], b[3])
        k = k + 2
      end
    end
    if not split then k = k + #joins end

    keepState(session, state)

    -- the exactly-once record, with what the commit assigned filled in (only messages assign anything)
    local filled = ''
    if #deliveries > 0 then
      -- split: the messages and the record wait in one pending entry, numbered per session
      local n = redis.call('HINCRBY', session, 'pn', 1)
      redis.call('HSET', pending, n, cjson.encode({ id = requestId, res = response, d = deliveries }))
      if redis.call('PTTL', pending) == -1 then
        local left = redis.call('PTTL', session)
        if left > 0 then redis.call('PEXPIRE', pending, left) end
      end
      results[c] = { 'pending', n, roomsJson }
    elseif response ~= '' then
      if #sends + #broadcasts > 0 then
        response = string.gsub(response, '@@tether:off:(%d+)@@', function(i) return offs[tonumber(i) + 1] or '' end)
        response = string.gsub(response, '"@@tether:seq:(%d+)@@"', function(i) return tostring(seqs[tonumber(i) + 1] or 0) end)
        response = string.gsub(response, '@@tether:seq:(%d+)@@', function(i) return tostring(seqs[tonumber(i) + 1] or 0) end)
        filled = response
      end
      if requestId ~= '' then record(session, list, requestId, response) end
    end

    if #deliveries > 0 then
      -- answered above
    elseif filled == '' and roomsJson == '' and #seqs == 0 and #offs == 0 then
      results[c] = 1
    else
      local out = { 'ok', filled, roomsJson, #seqs }
      for _, s in ipairs(seqs) do out[#out + 1] = s end
      for _, o in ipairs(offs) do out[#out + 1] = o end
      results[c] = out
    end
  end
end

for _, session in ipairs(stateOrder) do redis.call('HSET', session, 'st', states[session]) end

-- DEDUPE_MAX: the oldest records beyond it are forgotten (cut back once past the slack)
for _, list in ipairs(recordedOrder) do
  local r = recorded[list]
  local length = 0
  for i = 1, #r.entries, CHUNK do length = redis.call('RPUSH', list, unpack(r.entries, i, math.min(i + CHUNK - 1, #r.entries))) end
  if length > trimmedAbove then redis.call('LTRIM', list, length - dedupeMax, -1) end
  -- a new list starts with the session's expiry; the owner's keepalive refreshes it after
  if length == #r.entries then
    local left = redis.call('PTTL', r.session)
    if left > 0 then redis.call('PEXPIRE', list, left) end
  end
end

return results
