-- Rate-limit leases (oauth2_rate_limit_lease): a node takes permits
-- from a client's GCRA (gcra.lua's keys, gcra_tat() and algorithm) in
-- a batch, or gives back the permits it did not spend.  ARGV: prefix,
-- client_id, plan, mode ("take" or "return"), count (permits wanted,
-- or given back), the plan's number of limits, then count, period_usec
-- for each limit.
--
-- take: the largest k <= count that every limit of the plan lets
-- through at once (k requests move a TAT by k emission intervals, as k
-- calls of gcra() in a row would), counted in every limit.  Returns
-- {state, limit, remaining, reset, retry, unusable, k, tat...}: state 1
-- and remaining after the k when k > 0, else gcra()'s refusal and k 0;
-- then the TAT the take wrote for each limit (microseconds, rounded
-- down; 0 when it wrote none).
-- return: after the limits, the take the permits came from: the TAT it
-- wrote for each limit, then the permits it took.  A TAT moves back
-- only while it still holds what that take wrote (nothing counted,
-- taken or given back since: the take's permits are then the last ones
-- counted), by count emission intervals, the take's permits at most,
-- never before now; else the permits lapse, given back by time as the
-- TAT passes.  A give-back is sent once: run twice, the second could
-- find a TAT that came back to the same value and give back another
-- take's permits.  Returns {0}.
local function lease(a, now)
  local base = a[1] .. 'rl:{' .. a[2] .. '}:' .. a[3] .. ':'
  local want, n = tonumber(a[5]), tonumber(a[6])
  local keys, tats, ts, bad = {}, {}, {}, 0
  local k = want
  local best, best_rem, best_reset = 0, -1, 0
  local deny, retry, deny_reset = 0, 0, 0
  for l = 1, n do
    local c, p = a[5 + 2 * l], a[6 + 2 * l]
    local key = base .. c .. ':' .. p
    c = tonumber(c)
    p = tonumber(p)
    local t = p / c
    local tat, b = gcra_tat(key, now, p)
    bad = bad + b
    keys[l], tats[l], ts[l] = key, tat, t
    local wait = tat - now - (p - t)
    if wait > 0 then
      k = 0
      if deny == 0 or wait > retry then
        deny, retry, deny_reset = l, wait, tat - now
      end
    else
      local rem = math.floor(-wait / t)
      if rem + 1 < k then k = rem + 1 end
      if best_rem < 0 or rem < best_rem then
        best, best_rem = l, rem
      end
    end
  end
  if a[4] == 'return' then
    local taken = tonumber(a[7 + 3 * n]) or 0
    if taken < want then want = taken end
    for l = 1, n do
      if tats[l] > now and want > 0
         and math.floor(tats[l]) == tonumber(a[6 + 2 * n + l]) then
        local back = math.max(tats[l] - want * ts[l], now)
        redis.call('SET', keys[l], string.format('%.17g', back), 'PX',
                   math.ceil((back - now) / 1000) + 1000)
      end
    end
    return {0}
  end
  local r
  if deny > 0 or k < 1 then
    r = {2, deny - 1, 0, math.ceil(deny_reset / 1000000),
         math.ceil(retry / 1000000), bad, 0}
    for l = 1, n do r[7 + l] = 0 end
    return r
  end
  for l = 1, n do
    tats[l] = tats[l] + k * ts[l]
    redis.call('SET', keys[l], string.format('%.17g', tats[l]), 'PX',
               math.ceil((tats[l] - now) / 1000) + 1000)
  end
  best_reset = tats[best] - now
  r = {1, best - 1, best_rem + 1 - k, math.ceil(best_reset / 1000000),
       0, bad, k}
  for l = 1, n do r[7 + l] = math.floor(tats[l]) end
  return r
end
return lease(ARGV, clock())
