-- admit.lua: let one request go if every limit has room, atomically.
--
-- Redis runs a script to the end before it serves anyone else, so the check
-- ("is there room in RPM, TPM and RPD?") and the write ("take a slot in
-- each") cannot be split by another process's check. That is the whole
-- reason this is a script and not a few commands from the client.
--
-- Each limit is a sorted set: member = admission id, score = the instant
-- (microseconds, Redis clock) at which the slot stops counting, i.e.
-- admission + window + margin. Expiring is one ZREMRANGEBYSCORE; "when is
-- there room?" is the score of the right entry, oldest first.
--
-- KEYS[1] rpm   sorted set of request slots (per window)
-- KEYS[2] tpm   sorted set of token entries (per window)
-- KEYS[3] tpm:w hash: admission id -> input tokens charged
-- KEYS[4] tpm:sum  the sum of tpm:w over live entries
-- KEYS[5] rpd   sorted set of request slots (per day)
-- KEYS[6] pause exists while the server has asked everyone to back off
-- KEYS[7] stop  exists (value = reason) once going on is pointless
-- KEYS[8] seq   the admission id counter
-- ARGV[1..3] rpm, tpm, rpd limits (0 = unlimited)
-- ARGV[4] tokens this request needs
-- ARGV[5] hold: window + margin, microseconds
-- ARGV[6] day hold: day + margin, microseconds
--
-- Returns {code, value, now, rpm used, tpm used, rpd used, reason}:
--   code 1 admitted: value = admission id
--   code 0 refused, no room: value = microseconds until there is room
--   code 2 refused, paused: value = microseconds the pause has left
--   code 3 stopped: reason = why

-- Redis 3.2 to 6 replicate scripts verbatim unless told otherwise, and then
-- refuse writes after a non-deterministic command such as TIME. Redis 7
-- always replicates effects and keeps this function only as a no-op.
if redis.replicate_commands then redis.replicate_commands() end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local rpm_limit = tonumber(ARGV[1])
local tpm_limit = tonumber(ARGV[2])
local rpd_limit = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
local hold = tonumber(ARGV[5])
local day_hold = tonumber(ARGV[6])
-- Key lifetimes in milliseconds: the longest an entry written now can live.
local hold_ms = math.ceil(hold / 1000) + 1
local day_ms = math.ceil(day_hold / 1000) + 1

local stopped = redis.call('GET', KEYS[7])
if stopped then
  return {3, 0, now, 0, 0, 0, stopped}
end

-- Forget what stopped counting (score <= now), in every limit.
local function expire_count(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  return redis.call('ZCARD', key)
end

local function expire_tokens()
  local sum = tonumber(redis.call('GET', KEYS[4]) or '0')
  local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
  if #gone > 0 then
    -- One HDEL each, not HDEL with unpack(): Lua caps the arguments of a
    -- call at a few thousand, and a big tier can expire more than that.
    for _, id in ipairs(gone) do
      sum = sum - tonumber(redis.call('HGET', KEYS[3], id) or '0')
      redis.call('HDEL', KEYS[3], id)
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
    if sum < 0 then sum = 0 end
    redis.call('SET', KEYS[4], sum, 'PX', hold_ms)
  end
  return sum
end

-- How long until one more request fits a count limit: with `count` slots
-- in use, the (count - limit + 1)th oldest must expire first.
local function count_wait(key, count, limit)
  if count < limit then return 0 end
  local entry = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
  return tonumber(entry[2]) - now
end

-- How long until `tokens` more fit: walk the entries oldest first, adding
-- up what each frees, until the excess is covered.
local function token_wait(sum)
  local excess = sum + tokens - tpm_limit
  if excess <= 0 then return 0 end
  local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  local last = 0
  for i = 1, #entries, 2 do
    local w = tonumber(redis.call('HGET', KEYS[3], entries[i]) or '0')
    last = tonumber(entries[i + 1])
    if w >= excess then return last - now end
    excess = excess - w
  end
  -- Only if the request alone is over the limit (the client checks first).
  return math.max(last - now, 1)
end

local rpm_used, tpm_used, rpd_used = 0, 0, 0
local wait = 0
if rpm_limit > 0 then
  rpm_used = expire_count(KEYS[1])
  wait = math.max(wait, count_wait(KEYS[1], rpm_used, rpm_limit))
end
if tpm_limit > 0 then
  tpm_used = expire_tokens()
  wait = math.max(wait, token_wait(tpm_used))
end
if rpd_limit > 0 then
  rpd_used = expire_count(KEYS[5])
  wait = math.max(wait, count_wait(KEYS[5], rpd_used, rpd_limit))
end

-- The pause is checked after expiring, so the usage we report is current.
local pause = redis.call('PTTL', KEYS[6])
if pause > 0 then
  return {2, pause * 1000, now, rpm_used, tpm_used, rpd_used, ''}
end
if wait > 0 then
  return {0, wait, now, rpm_used, tpm_used, rpd_used, ''}
end

-- Room everywhere: take a slot in each limit. Every key we write gets a TTL
-- of its longest possible entry, so a crashed client leaves nothing behind
-- that outlives its own slots.
local id = redis.call('INCR', KEYS[8])
if rpm_limit > 0 then
  redis.call('ZADD', KEYS[1], now + hold, id)
  redis.call('PEXPIRE', KEYS[1], hold_ms)
  rpm_used = rpm_used + 1
end
if tpm_limit > 0 then
  redis.call('ZADD', KEYS[2], now + hold, id)
  redis.call('HSET', KEYS[3], id, tokens)
  tpm_used = redis.call('INCRBY', KEYS[4], tokens)
  for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], hold_ms) end
end
if rpd_limit > 0 then
  redis.call('ZADD', KEYS[5], now + day_hold, id)
  redis.call('PEXPIRE', KEYS[5], day_ms)
  rpd_used = rpd_used + 1
end
-- The id counter lives as long as the longest entry, so ids never repeat
-- while an entry that could clash is alive.
if rpd_limit > 0 then
  redis.call('PEXPIRE', KEYS[8], day_ms)
else
  redis.call('PEXPIRE', KEYS[8], hold_ms)
end
return {1, id, now, rpm_used, tpm_used, rpd_used, ''}
