-- throttled_http settle: stamp open entries at the server's time of settling, forget
-- entries that never happened (their waiter was cancelled after admission, or the answer
-- to their admission was lost), fence off admit calls whose answer was lost, so that
-- one still on its way admits nothing when it arrives, and renew the leases of entries
-- still open in a live process. Every part is idempotent: a call whose own answer is
-- lost is simply sent again.
--
-- KEYS[1] stamps, KEYS[2] tat, KEYS[3] fence: as in admit.lua.
-- ARGV: burst (0 = none), interval_us, ttl_ms, nsettle, (cost, member) x nsettle,
--       nforget, (cost, member) x nforget, nfence, call id x nfence,
--       lease_us, nrenew, (cost, member, deadline_us) x nrenew.
-- A renewal moves an open entry's score to now + lease_us, never past its deadline
-- (admission + open_timeout) and never earlier; it touches only members still scored in
-- the future (open): a settled stamp, or a lease that already ran out (which counts as
-- stamped then), is never moved, and a member gone is never added.
-- Returns the server time in microseconds.
if redis.replicate_commands then pcall(redis.replicate_commands) end

local stamps, tat_key, fence = KEYS[1], KEYS[2], KEYS[3]
local burst = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function each(cost, member, fn)
  if cost == 1 then
    fn(member)
  else
    for j = 1, cost do fn(member .. '.' .. j) end
  end
end

local pos = 4
local nsettle = tonumber(ARGV[pos])
local settled = 0
for k = 1, nsettle do
  local cost, member = tonumber(ARGV[pos + 1]), ARGV[pos + 2]
  pos = pos + 2
  -- Re-adding a member that already expired is deliberate: it counts from now, later
  -- than the request really happened, never earlier.
  each(cost, member, function(m) redis.call('ZADD', stamps, now, m) end)
  settled = settled + cost
end
local nforget = tonumber(ARGV[pos + 1])
pos = pos + 1
for k = 1, nforget do
  local cost, member = tonumber(ARGV[pos + 1]), ARGV[pos + 2]
  pos = pos + 2
  each(cost, member, function(m) redis.call('ZREM', stamps, m) end)
end
local nfence = tonumber(ARGV[pos + 1])
pos = pos + 1
for first = 1, nfence, 1000 do
  redis.call('SADD', fence, unpack(ARGV, pos + first, pos + math.min(first + 999, nfence)))
end
if nfence > 0 then
  -- As long as the other keys live (the longest period plus open_timeout, plus 1 s): a
  -- fenced call arriving later still would admit, and count until open_timeout.
  redis.call('PEXPIRE', fence, ttl)
end
pos = pos + nfence + 1
local lease = tonumber(ARGV[pos])
local nrenew = tonumber(ARGV[pos + 1])
pos = pos + 1
for k = 1, nrenew do
  local cost, member, deadline = tonumber(ARGV[pos + 1]), ARGV[pos + 2], tonumber(ARGV[pos + 3])
  pos = pos + 3
  local target = math.min(now + lease, deadline)
  each(cost, member, function(m)
    local score = tonumber(redis.call('ZSCORE', stamps, m))
    if score and score > now and target > score then
      redis.call('ZADD', stamps, 'XX', string.format('%.17g', target), m)
    end
  end)
end
if settled > 0 then
  redis.call('PEXPIRE', stamps, ttl)
  if burst > 0 then
    local tat = math.max(tonumber(redis.call('GET', tat_key) or '0'), now) + settled * interval
    redis.call('SET', tat_key, string.format('%.17g', tat), 'PX', math.floor((tat - now) / 1000) + 1)
  end
end
return now
