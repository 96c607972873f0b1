-- throttled_http pause: admit nothing on this key before now + ARGV[1] ms of server time;
-- a shorter pause never cuts a longer one short. ARGV[1] = 0 ends any pause.
--
-- KEYS[1] pause: server time in microseconds, expiring with the pause itself.
-- Returns the pause's end in server microseconds (0 when none).
if redis.replicate_commands then pcall(redis.replicate_commands) end

local ms = tonumber(ARGV[1])
if ms <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untilp = now + ms * 1000
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= untilp then return current end
redis.call('SET', KEYS[1], string.format('%.17g', untilp), 'PX', math.ceil(ms) + 1)
return untilp
