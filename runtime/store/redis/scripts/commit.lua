-- Group commit: the outcomes of several requests (each of one session, each fenced by its owner
-- epoch), one after the other, in one call. Per request, atomically: state, memberships, the
-- exactly-once record, direct messages to target outboxes and room messages to room streams.
-- (On a single Redis this is one script; on Redis Cluster the deliveries become a second,
-- idempotent step, see docs/SCALE_OUT.md.)
--
-- ARGV[1] session TTL ms   ARGV[2] DEDUPE_MAX   ARGV[3] dedupe TTL ms   ARGV[4] OUTBOX_MAX
-- ARGV[5] ROOM_HISTORY_MAX   ARGV[6] room TTL ms   ARGV[7] epoch for a room history created now
-- ARGV[8] number of commits, then per commit:
--   epoch, request id ('' = none), state JSON ('' = unchanged),
--   response JSON ('' = none; may hold @@tether:off:<i>@@ / @@tether:seq:<i>@@ placeholders),
--   #sends, #broadcasts, #joins, #leaves,
--   then 3 per send (to, route, data JSON), 3 per broadcast (room, route, data JSON), 1 per join, 1 per leave
-- KEYS per commit: session hash, dedupe hash, dedupe order,
--   then 2 per send (target session hash, target outbox), 2 per broadcast (room meta, room stream),
--   1 per join (room meta)
-- Returns one array per commit: { 'ok', response JSON, rooms JSON ('' = unchanged), #seqs, seq..., off... }
--   or { 'stale_epoch' } / { 'no_session' }

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dedupeMax, dedupeTtl = tonumber(ARGV[2]), tonumber(ARGV[3])

local function roomHead(meta)
  local m = redis.call('HMGET', meta, 'ep', 'n')
  if m[1] then return m[1], tonumber(m[2]) end
  redis.call('HSET', meta, 'ep', ARGV[7], 'n', 0)
  redis.call('PEXPIRE', meta, ARGV[6])
  return ARGV[7], 0
end

local a = 8
local k = 0
local results = {}

for c = 1, tonumber(ARGV[8]) do
  local epoch, requestId, state, response = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local nSends, nBroadcasts, nJoins, nLeaves = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8])
  a = a + 8
  local session, dedupe, order = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  k = k + 3
  local ep = redis.call('HGET', session, 'ep')
  if not ep or tonumber(ep) ~= tonumber(epoch) then
    results[c] = { ep and 'stale_epoch' or 'no_session' }
    a = a + 3 * nSends + 3 * nBroadcasts + nJoins + nLeaves
    k = k + 2 * nSends + 2 * nBroadcasts + nJoins
  else
    -- direct messages
    local seqs = {}
    for i = 1, nSends do
      local target, outbox = KEYS[k + 1], KEYS[k + 2]
      local route, data = ARGV[a + 2], ARGV[a + 3]
      k = k + 2
      a = a + 3
      if redis.call('EXISTS', target) == 1 then
        local seq = redis.call('HINCRBY', target, 'seq', 1)
        redis.call('XADD', outbox, 'MAXLEN', ARGV[4], seq .. '-0', 'r', route, 'd', data)
        local left = redis.call('PTTL', target)
        if left > 0 then redis.call('PEXPIRE', outbox, left) end
        seqs[#seqs + 1] = seq
      else
        seqs[#seqs + 1] = 0
      end
    end

    -- room messages
    local offs = {}
    for i = 1, nBroadcasts do
      local meta, stream = KEYS[k + 1], KEYS[k + 2]
      local route, data = ARGV[a + 2], ARGV[a + 3]
      k = k + 2
      a = a + 3
      local roomEpoch = roomHead(meta)
      local n = redis.call('HINCRBY', meta, 'n', 1)
      redis.call('XADD', stream, 'MAXLEN', ARGV[5], n .. '-0', 'r', route, 'd', data)
      redis.call('PEXPIRE', meta, ARGV[6])
      redis.call('PEXPIRE', stream, ARGV[6])
      offs[#offs + 1] = roomEpoch .. ':' .. n
    end

    -- memberships: a join records the room's last offset before the join
    local roomsJson = ''
    if nJoins + nLeaves > 0 then
      local rooms = cjson.decode(redis.call('HGET', session, 'rooms') or '{}')
      for i = 1, nJoins do
        local room, meta = ARGV[a + 1], KEYS[k + 1]
        k = k + 1
        a = a + 1
        if rooms[room] == nil then
          local roomEpoch, n = roomHead(meta)
          rooms[room] = roomEpoch .. ':' .. n
        end
      end
      for i = 1, nLeaves do
        rooms[ARGV[a + 1]] = nil
        a = a + 1
      end
      roomsJson = next(rooms) == nil and '{}' or cjson.encode(rooms)
      redis.call('HSET', session, 'rooms', roomsJson)
    end

    if state ~= '' then redis.call('HSET', session, 'st', state) end

    -- the exactly-once record, with what the commit assigned filled in
    if response ~= '' then
      response = string.gsub(response, '@@tether:off:(%d+)@@', function(i) return offs[tonumber(i) + 1] or '' end)
      response = string.gsub(response, '"@@tether:seq:(%d+)@@"', function(i) return tostring(seqs[tonumber(i) + 1] or 0) end)
      response = string.gsub(response, '@@tether:seq:(%d+)@@', function(i) return tostring(seqs[tonumber(i) + 1] or 0) end)
      if requestId ~= '' then
        redis.call('HSET', dedupe, requestId, response)
        redis.call('ZADD', order, now, requestId)
        local size = redis.call('ZCARD', order)
        if size > dedupeMax then
          local popped = redis.call('ZPOPMIN', order, size - dedupeMax)
          -- ZPOPMIN returns member, score, member, score, ...
          for i = 1, #popped, 2 do redis.call('HDEL', dedupe, popped[i]) end
        end
        local expired = redis.call('ZRANGEBYSCORE', order, '-inf', now - dedupeTtl, 'LIMIT', 0, 64)
        if #expired > 0 then
          redis.call('ZREM', order, unpack(expired))
          redis.call('HDEL', dedupe, unpack(expired))
        end
        -- new keys start with the session's expiry; the owner's keepalive refreshes them after
        if size == 1 then
          local left = redis.call('PTTL', session)
          if left > 0 then
            redis.call('PEXPIRE', dedupe, left)
            redis.call('PEXPIRE', order, left)
          end
        end
      end
    end

    local out = { 'ok', response, roomsJson, #seqs }
    for _, s in ipairs(seqs) do out[#out + 1] = s end
    for _, o in ipairs(offs) do out[#out + 1] = o end
    results[c] = out
  end
end
return results
