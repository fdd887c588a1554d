-- GCRA, the generic cell rate algorithm, for every limit of a plan at
-- once.  spec is "count period_usec count period_usec ...".  A limit
-- of count requests per period lets a burst of count through, then one
-- every period / count.  The theoretical arrival time (TAT) of each
-- limit, in microseconds of Redis's clock, is kept in
-- <prefix>rl:{<client_id>}:<plan>:<count>:<period_usec>.  A request is
-- counted only when every limit lets it through.
--
-- A key that holds no usable TAT (not a string, not a number, NaN, or
-- later than now + period, which no TAT this script writes can be) is
-- taken for a fresh one and overwritten: one bad key must not deny a
-- client.  Such keys are counted in the reply, for nginx to log.
--
-- Returns {state, limit index (0-based), remaining, reset s, retry s,
-- unusable keys}; state 1: allowed, 2: limited.
local function gcra(prefix, client, plan, spec, now)
  local keys, tats, n, bad = {}, {}, 0, 0
  local best, best_rem, best_reset = 0, -1, 0
  local deny, retry, deny_reset = 0, 0, 0
  for c, p in string.gmatch(spec, '(%d+) (%d+)') do
    n = n + 1
    local key = prefix .. 'rl:{' .. client .. '}:' .. plan .. ':'
                .. c .. ':' .. p
    c = tonumber(c)
    p = tonumber(p)
    local t = p / c
    local tau = p - t
    local v = redis.pcall('GET', key)
    local tat = now
    if v then
      local x = type(v) == 'string' and tonumber(v)
      if x and x == x and x <= now + p then
        if x > now then tat = x end
      else
        bad = bad + 1
      end
    end
    local wait = tat - now - tau
    if wait > 0 then
      if deny == 0 or wait > retry then
        deny, retry, deny_reset = n, wait, tat - now
      end
    else
      local rem = math.floor(-wait / t)
      keys[n] = key
      tats[n] = tat + t
      if best_rem < 0 or rem < best_rem then
        best, best_rem, best_reset = n, rem, tats[n] - now
      end
    end
  end
  if deny > 0 then
    return {2, deny - 1, 0, math.ceil(deny_reset / 1000000),
            math.ceil(retry / 1000000), bad}
  end
  for i = 1, n do
    redis.call('SET', keys[i], string.format('%.17g', tats[i]), 'PX',
               math.ceil((tats[i] - now) / 1000) + 1000)
  end
  return {1, best - 1, best_rem, math.ceil(best_reset / 1000000), 0,
          bad}
end
local function clock()
  if redis.replicate_commands then redis.replicate_commands() end
  local tm = redis.call('TIME')
  return tonumber(tm[1]) * 1000000 + tonumber(tm[2])
end
