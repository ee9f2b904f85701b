-- GCRA for several buckets at once, on Redis's clock: admits only if every bucket admits, and then
-- takes one token from each; a refusal takes none.
-- KEYS[i] bucket i (holds its theoretical arrival time, ms)
-- ARGV[2i-1] rate per second of bucket i   ARGV[2i] burst of bucket i
-- Returns { 1 } when admitted, else { 0, retryAfterMs, index of each refusing bucket (1-based)... }
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tats = {}
local refused = { 0, 0 }
for i = 1, #KEYS do
  local interval = 1000 / tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local nextTat = tat + interval
  local over = nextTat - now - burst * interval
  if over > 0 then
    refused[#refused + 1] = i
    local wait = math.ceil(over)
    if wait > refused[2] then refused[2] = wait end
  end
  tats[i] = nextTat
end
if #refused > 2 then return refused end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.3f', tats[i]), 'PX', math.ceil(tats[i] - now) + 1000)
end
return { 1 }
