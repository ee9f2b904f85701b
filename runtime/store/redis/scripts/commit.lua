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
-- ARGV[7] number of commits, then per commit:
--   epoch, request id ('' = none), state JSON ('' = unchanged),
--   response JSON ('' = none; may hold @@tether:off:<i>@@ / @@tether:seq:<i>@@ placeholders),
--   #sends, #broadcasts, #joins, #leaves,
--   then 3 per send (to, route, data JSON), 3 per broadcast (room, route, data JSON),
--   1 per join (room; split: room, offset), 1 per leave
-- KEYS per commit: session hash, exactly-once records (list), pending deliveries (hash),
--   then (single only) 2 per send (target session hash, target outbox), 2 per broadcast
--   (room meta, room stream), 1 per join (room meta)
-- Returns per commit: 1 (done; nothing to report back), or { 'ok', response JSON ('' = as sent:
--   it had nothing to fill in), rooms JSON ('' = unchanged), #seqs, seq..., off... },
--   or (split) { 'pending', n, rooms JSON }, or { 'stale_epoch' } / { 'no_session' }
--
-- Cost: the script is atomic as a whole, so what several commits of one session write is written
-- once per session at the end (the last state, one RPUSH of their exactly-once records, one
-- LTRIM to DEDUPE_MAX), and each session's epoch is read once.
--
-- The records of a session are one list, oldest first, each entry `<ms>:<#id>:<id><response JSON>`
-- (see recall.lua). Not a hash: Redis keeps a hash of up to 512 fields as a listpack, where every
-- write scans it all; a list appends and trims at its ends.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dedupeMax = tonumber(ARGV[1])
local split = ARGV[6] == 'split'
local joinArgs = split and 2 or 1

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

local a = 7
local k = 0
local results = {}

for c = 1, tonumber(ARGV[7]) do
  local epoch, requestId, state, response = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local nSends, nBroadcasts, nJoins, nLeaves = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8])
  a = a + 8
  local session, list, pending = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  k = k + 3
  local ep = epochOf(session)
  if ep ~= epoch then
    results[c] = { ep and 'stale_epoch' or 'no_session' }
    a = a + 3 * nSends + 3 * nBroadcasts + joinArgs * nJoins + nLeaves
    if not split then k = k + 2 * nSends + 2 * nBroadcasts + nJoins end
  else
    -- direct messages, then room messages (split: kept for deliver.lua)
    local deliveries, seqs, offs = {}, {}, {}
    for i = 1, nSends do
      local to, route, data = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
      a = a + 3
      if split then
        deliveries[#deliveries + 1] = { 's', to, route, data }
      else
        seqs[#seqs + 1] = appendDirect(KEYS[k + 1], KEYS[k + 2], route, data)
        k = k + 2
      end
    end
    for i = 1, nBroadcasts do
      local room, route, data = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
      a = a + 3
      if split then
        deliveries[#deliveries + 1] = { 'b', room, route, data }
      else
        offs[#offs + 1] = appendRoom(KEYS[k + 1], KEYS[k + 2], route, data)
        k = k + 2
      end
    end

    -- memberships: a join records the room's last offset before the join
    local roomsJson = ''
    if nJoins + nLeaves > 0 then
      local rooms = cjson.decode(redis.call('HGET', session, 'rooms') or '{}')
      for i = 1, nJoins do
        local room = ARGV[a + 1]
        if split then
          if rooms[room] == nil then rooms[room] = ARGV[a + 2] end
        else
          local meta = KEYS[k + 1]
          k = k + 1
          if rooms[room] == nil then
            local roomEpoch, n = roomHead(meta)
            rooms[room] = roomEpoch .. ':' .. n
          end
        end
        a = a + joinArgs
      end
      for i = 1, nLeaves do
        rooms[ARGV[a + 1]] = nil
        a = a + 1
      end
      roomsJson = next(rooms) == nil and '{}' or cjson.encode(rooms)
      redis.call('HSET', session, 'rooms', roomsJson)
    end

    if state ~= '' then
      if states[session] == nil then stateOrder[#stateOrder + 1] = session end
      states[session] = state
    end

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
      if nSends + nBroadcasts > 0 then
        response = string.gsub(response, '@@tether:off:(%d+)@@', function(i) return offs[tonumber(i) + 1] or '' end)
        response = string.gsub(response, '"@@tether:seq:(%d+)@@"', function(i) return tostring(seqs[tonumber(i) + 1] or 0) end)
        response = string.gsub(response, '@@tether:seq:(%d+)@@', function(i) return tostring(seqs[tonumber(i) + 1] or 0) end)
        filled = response
      end
      if requestId ~= '' then
        local r = recorded[list]
        if not r then
          r = { session = session, entries = {} }
          recorded[list] = r
          recordedOrder[#recordedOrder + 1] = list
        end
        r.entries[#r.entries + 1] = now .. ':' .. #requestId .. ':' .. requestId .. response
      end
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

-- DEDUPE_MAX: the oldest records beyond it are forgotten
for _, list in ipairs(recordedOrder) do
  local r = recorded[list]
  local length = 0
  for i = 1, #r.entries, CHUNK do length = redis.call('RPUSH', list, unpack(r.entries, i, math.min(i + CHUNK - 1, #r.entries))) end
  if length > dedupeMax then redis.call('LTRIM', list, length - dedupeMax, -1) end
  -- a new list starts with the session's expiry; the owner's keepalive refreshes it after
  if length == #r.entries then
    local left = redis.call('PTTL', r.session)
    if left > 0 then redis.call('PEXPIRE', list, left) end
  end
end

return results
