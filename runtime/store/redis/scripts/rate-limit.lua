-- GCRA for a batch of requests, each with several buckets, on Redis's clock. Each request is
-- admitted only if every one of its buckets admits, and then takes one token from each; a refused
-- request takes none. Requests are decided in order, so a later one sees the tokens an earlier one
-- in the same batch took.
-- KEYS: the buckets of request 1, then of request 2, ... (each holds its theoretical arrival time, ms)
-- ARGV[1] number of requests, then per request: number of buckets, then rate and burst per bucket
-- Returns per request: admitted (1/0), retryAfterMs, number of refusing buckets, their 1-based indexes
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tats = {}
local changed = {}
local out = {}
local a = 2
local k = 0
for r = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[a])
  a = a + 1
  local next = {}
  local refused = {}
  local wait = 0
  for i = 1, n do
    local key = KEYS[k + i]
    local interval = 1000 / tonumber(ARGV[a])
    local burst = tonumber(ARGV[a + 1])
    a = a + 2
    local tat = tats[key]
    if tat == nil then tat = tonumber(redis.call('GET', key) or now) end
    if tat < now then tat = now end
    local over = tat + interval - now - burst * interval
    if over > 0 then
      refused[#refused + 1] = i
      if math.ceil(over) > wait then wait = math.ceil(over) end
    end
    next[i] = tat + interval
  end
  if #refused == 0 then
    for i = 1, n do
      tats[KEYS[k + i]] = next[i]
      changed[KEYS[k + i]] = true
    end
    out[#out + 1] = 1
    out[#out + 1] = 0
    out[#out + 1] = 0
  else
    out[#out + 1] = 0
    out[#out + 1] = wait
    out[#out + 1] = #refused
    for _, i in ipairs(refused) do out[#out + 1] = i end
  end
  k = k + n
end
for key in pairs(changed) do
  redis.call('SET', key, string.format('%.3f', tats[key]), 'PX', math.ceil(tats[key] - now) + 1000)
end
return out
