-- pause.lua: tell every process sharing the quota to admit nobody for a
-- while. A longer pause extends the current one; a shorter one never cuts
-- it short (the same rule as the local limiter's `pause_until`).
--
-- KEYS[1] pause  ARGV[1] milliseconds
-- Returns the pause's remaining milliseconds.

local wanted = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < wanted then
  redis.call('SET', KEYS[1], '1', 'PX', wanted)
end
return redis.call('PTTL', KEYS[1])
