-- usage.lua: what counts right now, read only (for stats and tests).
--
-- KEYS as in admit.lua (1 rpm, 2 tpm, 3 tpm:w, 5 rpd, 6 pause).
-- Returns {rpm used, tpm used, rpd used, pause milliseconds left}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local live = '(' .. string.format('%.0f', now)

local tokens = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], live, '+inf')) do
  tokens = tokens + tonumber(redis.call('HGET', KEYS[3], id) or '0')
end
local pause = redis.call('PTTL', KEYS[6])
if pause < 0 then pause = 0 end
return {
  redis.call('ZCOUNT', KEYS[1], live, '+inf'),
  tokens,
  redis.call('ZCOUNT', KEYS[5], live, '+inf'),
  pause,
}
