-- throttled_http admit: decide, atomically and on the server's clock, which of a queue of
-- entries may enter now.
--
-- KEYS[1] stamps  sorted set; member = one unit of cost, score = stamp in microseconds.
--                 An open entry (admitted, not yet settled) is scored at its deadline
--                 (admission + hold), so it counts in every window until it is settled.
-- KEYS[2] tat     GCRA theoretical arrival time in microseconds (smooth mode only).
-- KEYS[3] pause   server time in microseconds before which nothing is admitted.
-- KEYS[4] fence   set of the ids of admit calls whose caller gave up on the answer (it
--                 timed out, or was cancelled): such a call, run late, admits nothing.
--
-- ARGV: hold_us, resume_us, burst (0 = none), interval_us, ttl_ms, nrates,
--       (limit, period_us) x nrates, nentries, (cost, mode, member) x nentries, call id;
--       mode 0 = stamp now, 1 = open (deadline now + hold_us), 2 = open until the waiting
--       task resumes (deadline now + resume_us). Both open modes are stamped by settle.lua.
--       A cost c > 1 is stored as c members "<member>.1" .. "<member>.c".
--
-- Sending a call again is safe: the entries an earlier run of it admitted are admitted
-- again as they stand, never twice (see below).
--
-- Returns {admitted, wait_us, blocked, now_us, in_window}: the first `admitted`
-- entries were admitted in order (FIFO: the first refusal stops the batch); when some were
-- refused, nothing can change for them before `wait_us` (pause, windows, spacing);
-- blocked = 1 says the head also waits for entries still open (their settling time is
-- unknown: `wait_us` is the soonest they could make room, at least a period for a window
-- they fill), blocked = 2 that a shared pause holds everything until `wait_us` from now,
-- blocked = 3 that the call was fenced off (nobody waits for this answer), blocked = 4
-- that only open entries hold back the burst (smooth mode): any settle may let it in.
-- in_window is the cost counted in the first rate's window after this call.
if redis.replicate_commands then pcall(redis.replicate_commands) end

local stamps, tat_key, pause_key, fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local hold = tonumber(ARGV[1])
local resume = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local nrates = tonumber(ARGV[6])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function num(x) return string.format('%.17g', x) end

local limits, periods, longest = {}, {}, 0
for i = 1, nrates do
  limits[i] = tonumber(ARGV[5 + 2 * i])
  periods[i] = tonumber(ARGV[6 + 2 * i])
  if periods[i] > longest then longest = periods[i] end
end
redis.call('ZREMRANGEBYSCORE', stamps, '-inf', num(now - longest))

local function in_window(i)
  return redis.call('ZCOUNT', stamps, '(' .. num(now - periods[i]), '+inf')
end

-- The earliest time >= now at which `cost` more fits, and why it is unknown: blocked = 1
-- when an open entry must settle first (`at` is then a lower bound), 4 when only open
-- entries hold back the burst (a settle may let `cost` in at once).
local function earliest(cost)
  local at, blocked, spent = now, 0, false
  for i = 1, nrates do
    local excess = in_window(i) + cost - limits[i]
    if excess > 0 then
      local before = redis.call('ZCOUNT', stamps, '-inf', num(now - periods[i]))
      local hit = redis.call('ZRANGE', stamps, before + excess - 1, before + excess - 1, 'WITHSCORES')
      local score = tonumber(hit[2])
      if score > now then
        -- Open: settled no earlier than now, it leaves this window a period after that at
        -- the soonest (only a forget, a cancelled entry, frees it before).
        blocked = 1
        if now + periods[i] > at then at = now + periods[i] end
      elseif score + periods[i] > at then
        at = score + periods[i]
      end
    end
  end
  if burst > 0 then
    local open = redis.call('ZCOUNT', stamps, '(' .. num(now), '+inf')
    local slack = open + cost - math.max(burst, cost)
    if slack > 0 then
      spent = true
    else
      local tat = tonumber(redis.call('GET', tat_key) or '0')
      local ready = tat + slack * interval
      if ready > at then at = ready end
    end
  end
  if spent then
    if blocked == 0 and at <= now then blocked = 4 else blocked = 1 end
  end
  return at, blocked
end

local function add(score, cost, member)
  if cost == 1 then
    redis.call('ZADD', stamps, score, member)
    return
  end
  local args, n = {}, 0
  for j = 1, cost do
    args[n + 1] = score
    args[n + 2] = member .. '.' .. j
    n = n + 2
    if n >= 2000 or j == cost then
      redis.call('ZADD', stamps, unpack(args, 1, n))
      args, n = {}, 0
    end
  end
end

if redis.call('SISMEMBER', fence, ARGV[#ARGV]) == 1 then
  return {0, 0, 3, now, in_window(1)}
end

local paused = tonumber(redis.call('GET', pause_key) or '0')
local pos = 7 + 2 * nrates
local nentries = tonumber(ARGV[pos])
local admitted, wait, blocked = 0, 0, 0
-- A call sent again (the client's connection dropped before the answer, and its library
-- retried it) finds what an earlier run of it admitted already in the set: a prefix of the
-- batch, since members are unique to their entry and an entry is asked for again only
-- after a refusal. Those entries stay admitted as they are (counted once, stamps and
-- spacing untouched), so the answer names them and nothing is left open unknown to its
-- caller; the rest is decided as usual.
while admitted < nentries do
  local base = pos + 3 * admitted
  local cost, member = tonumber(ARGV[base + 1]), ARGV[base + 3]
  if cost > 1 then member = member .. '.1' end
  if not redis.call('ZSCORE', stamps, member) then break end
  admitted = admitted + 1
end
if admitted == nentries then
  -- Nothing left to decide.
elseif paused > now then
  wait, blocked = paused - now, 2
else
  for k = admitted + 1, nentries do
    local base = pos + 3 * (k - 1)
    local cost, mode, member = tonumber(ARGV[base + 1]), ARGV[base + 2], ARGV[base + 3]
    local at, b = earliest(cost)
    if at > now or b > 0 then
      wait, blocked = at - now, b
      break
    end
    if mode == '1' then
      add(now + hold, cost, member)
    elseif mode == '2' then
      add(now + resume, cost, member)
    else
      add(now, cost, member)
      if burst > 0 then
        local tat = math.max(tonumber(redis.call('GET', tat_key) or '0'), now) + cost * interval
        redis.call('SET', tat_key, num(tat), 'PX', math.floor((tat - now) / 1000) + 1)
      end
    end
    admitted = admitted + 1
  end
end
if admitted > 0 then redis.call('PEXPIRE', stamps, ttl) end
return {admitted, math.ceil(wait), blocked, now, in_window(1)}
