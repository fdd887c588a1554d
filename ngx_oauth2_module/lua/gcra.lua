-- GCRA, the generic cell rate algorithm, for every limit of a plan at
-- once: the algorithm of ngx_oauth2_gcra.c, its definition
-- (t/063-gcra.t runs one table of vectors through both).  A limit of
-- count requests per period lets a burst of count through, then one
-- every period / count.  The theoretical arrival time (TAT) of each
-- limit, in microseconds of Redis's clock, is kept in
-- <prefix>rl:{<client_id>}:<plan>:<count>:<period_usec>.  A request is
-- counted only when every limit lets it through.
--
-- The plan's n limits are a[i], a[i + 1], ...: count, period_usec.
-- A key that holds no usable TAT (not a string, not a number, NaN, or
-- later than now + period, which no TAT this script writes can be) is
-- taken for a fresh one and overwritten: one bad key must not deny a
-- client.  Such keys are counted in the reply, for nginx to log.
--
-- Returns: state (1: allowed, 2: limited), the index (from 0) of the
-- limit the headers describe, remaining, reset s, retry s, unusable
-- keys.
-- The TAT a key holds, now when it holds none or one behind now; and 1
-- when it holds no usable TAT (then taken for a fresh one), else 0.
local function gcra_tat(key, now, p)
  local v = redis.pcall('GET', key)
  if not v then return now, 0 end
  local x = type(v) == 'string' and tonumber(v)
  if x and x == x and x <= now + p then
    if x > now then return x, 0 end
    return now, 0
  end
  return now, 1
end
local function gcra(prefix, client, plan, a, i, n, now)
  local base = prefix .. 'rl:{' .. client .. '}:' .. plan .. ':'
  local keys, tats, bad = {}, {}, 0
  local best, best_rem, best_reset = 0, -1, 0
  local deny, retry, deny_reset = 0, 0, 0
  for k = 1, n do
    local c, p = a[i], a[i + 1]
    i = i + 2
    local key = base .. c .. ':' .. p
    c = tonumber(c)
    p = tonumber(p)
    local t = p / c
    local tau = p - t
    local tat, b = gcra_tat(key, now, p)
    bad = bad + b
    local wait = tat - now - tau
    if wait > 0 then
      if deny == 0 or wait > retry then
        deny, retry, deny_reset = k, wait, tat - now
      end
    else
      local rem = math.floor(-wait / t)
      keys[k] = key
      tats[k] = tat + t
      if best_rem < 0 or rem < best_rem then
        best, best_rem, best_reset = k, rem, tats[k] - now
      end
    end
  end
  if deny > 0 then
    return 2, deny - 1, 0, math.ceil(deny_reset / 1000000),
           math.ceil(retry / 1000000), bad
  end
  for k = 1, n do
    redis.call('SET', keys[k], string.format('%.17g', tats[k]), 'PX',
               math.ceil((tats[k] - now) / 1000) + 1000)
  end
  return 1, best - 1, best_rem, math.ceil(best_reset / 1000000), 0, bad
end
local function clock()
  local tm = redis.call('TIME')
  return tonumber(tm[1]) * 1000000 + tonumber(tm[2])
end
