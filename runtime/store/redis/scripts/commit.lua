-- One request's outcome, atomically and fenced by the owner epoch: state, memberships, the
-- exactly-once record, direct messages to target outboxes and room messages to room streams.
-- (On a single Redis this is one script; on Redis Cluster the deliveries would be a second,
-- idempotent step, see docs/SCALE_OUT.md.)
--
-- KEYS[1] session hash   KEYS[2] dedupe hash   KEYS[3] dedupe order   KEYS[4] own outbox
-- then for each send:      target session hash, target outbox
-- then for each broadcast: room meta, room stream
-- then for each join:      room meta
-- ARGV[1] epoch   ARGV[2] request id ('' = none)   ARGV[3] state JSON ('' = unchanged)
-- ARGV[4] response JSON ('' = none; may hold @@tether:off:<i>@@ / @@tether:seq:<i>@@ placeholders)
-- ARGV[5] session TTL ms   ARGV[6] DEDUPE_MAX   ARGV[7] dedupe TTL ms   ARGV[8] OUTBOX_MAX
-- ARGV[9] ROOM_HISTORY_MAX   ARGV[10] room TTL ms   ARGV[11] epoch for a room history created now
-- ARGV[12] #sends   ARGV[13] #broadcasts   ARGV[14] #joins   ARGV[15] #leaves
-- then 3 per send (to, route, data JSON), 3 per broadcast (room, route, data JSON), 1 per join, 1 per leave
-- Returns { 'ok', response JSON, rooms JSON, #seqs, seq..., off... } or { 'stale_epoch' } / { 'no_session' }
local ep = redis.call('HGET', KEYS[1], 'ep')
if not ep then return { 'no_session' } end
if tonumber(ep) ~= tonumber(ARGV[1]) then return { 'stale_epoch' } end

local ttl = ARGV[5]
local nSends, nBroadcasts, nJoins, nLeaves = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15])
local a = 15
local k = 5
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function roomHead(meta)
  local m = redis.call('HMGET', meta, 'ep', 'n')
  if m[1] then return m[1], tonumber(m[2]) end
  redis.call('HSET', meta, 'ep', ARGV[11], 'n', 0)
  redis.call('PEXPIRE', meta, ARGV[10])
  return ARGV[11], 0
end

-- direct messages
local seqs = {}
for i = 1, nSends do
  local target, outbox = KEYS[k], KEYS[k + 1]
  local route, data = ARGV[a + 2], ARGV[a + 3]
  k = k + 2
  a = a + 3
  if redis.call('EXISTS', target) == 1 then
    local seq = redis.call('HINCRBY', target, 'seq', 1)
    redis.call('XADD', outbox, 'MAXLEN', ARGV[8], seq .. '-0', 'r', route, 'd', data)
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
  local meta, stream = KEYS[k], KEYS[k + 1]
  local route, data = ARGV[a + 2], ARGV[a + 3]
  k = k + 2
  a = a + 3
  local epoch = roomHead(meta)
  local n = redis.call('HINCRBY', meta, 'n', 1)
  redis.call('XADD', stream, 'MAXLEN', ARGV[9], n .. '-0', 'r', route, 'd', data)
  redis.call('PEXPIRE', meta, ARGV[10])
  redis.call('PEXPIRE', stream, ARGV[10])
  offs[#offs + 1] = epoch .. ':' .. n
end

-- memberships: the join offset is the room's last offset before the join
local roomsJson = redis.call('HGET', KEYS[1], 'rooms') or '{}'
local rooms = cjson.decode(roomsJson)
local changed = false
for i = 1, nJoins do
  local room, meta = ARGV[a + 1], KEYS[k]
  k = k + 1
  a = a + 1
  if rooms[room] == nil then
    local epoch, n = roomHead(meta)
    rooms[room] = epoch .. ':' .. n
    changed = true
  end
end
for i = 1, nLeaves do
  local room = ARGV[a + 1]
  a = a + 1
  if rooms[room] ~= nil then
    rooms[room] = nil
    changed = true
  end
end
if changed then
  roomsJson = next(rooms) == nil and '{}' or cjson.encode(rooms)
  redis.call('HSET', KEYS[1], 'rooms', roomsJson)
end

if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'st', ARGV[3]) end

-- the exactly-once record, with what the commit assigned filled in
local response = ARGV[4]
if response ~= '' then
  response = string.gsub(response, '@@tether:off:(%d+)@@', function(i) return offs[tonumber(i) + 1] or '' end)
  response = string.gsub(response, '"@@tether:seq:(%d+)@@"', function(i) return tostring(seqs[tonumber(i) + 1] or 0) end)
  response = string.gsub(response, '@@tether:seq:(%d+)@@', function(i) return tostring(seqs[tonumber(i) + 1] or 0) end)
  if ARGV[2] ~= '' then
    redis.call('HSET', KEYS[2], ARGV[2], response)
    redis.call('ZADD', KEYS[3], now, ARGV[2])
    local size = redis.call('ZCARD', KEYS[3])
    if size > tonumber(ARGV[6]) then
      local popped = redis.call('ZPOPMIN', KEYS[3], size - tonumber(ARGV[6]))
      -- ZPOPMIN returns member, score, member, score, ...
      for i = 1, #popped, 2 do redis.call('HDEL', KEYS[2], popped[i]) end
    end
    local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[7]))
    if #expired > 0 then
      redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[7]))
      redis.call('HDEL', KEYS[2], unpack(expired))
    end
  end
end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end

local out = { 'ok', response, roomsJson, #seqs }
for _, s in ipairs(seqs) do out[#out + 1] = s end
for _, o in ipairs(offs) do out[#out + 1] = o end
return out
