-- settle.lua: correct one admission's token charge, atomically.
--
-- The request was charged its estimated input tokens at admission; the
-- response says what it really was. If the entry still counts, reweigh it
-- (same place, same expiry) and move the running sum by the difference:
-- tokens come back at once, or the extra is charged until the entry expires.
--
-- KEYS[1] tpm  KEYS[2] tpm:w  KEYS[3] tpm:sum
-- ARGV[1] admission id  ARGV[2] actual tokens  ARGV[3] hold, microseconds
-- Returns the change to the sum (negative = tokens given back).

if redis.replicate_commands then redis.replicate_commands() end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local until_at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not until_at or tonumber(until_at) <= now then
  -- Already expired: it no longer counts, whatever it weighed.
  return 0
end
local old = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local new = tonumber(ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], new)
local sum = redis.call('INCRBY', KEYS[3], new - old)
if sum < 0 then redis.call('SET', KEYS[3], 0) end
local hold_ms = math.ceil(tonumber(ARGV[3]) / 1000) + 1
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], hold_ms) end
return new - old
