-- The checks nginx makes before a request may be counted, so that
-- the script counts only what nginx lets through.
-- ngx_oauth2_record.c is the definition of every rule here;
-- t/012-gate.t runs one table of vectors through both.
--
-- ARGV[1..8] of the lookup and JWT scripts: prefix; rate limit on
-- ("1"/"0"); default plan; consent required ("1"/"0"); scopes all
-- required; scopes one of which is required; nginx's clock (Unix
-- seconds); the key's TTL wanted ("1"/"0", lookup only).  Then, from
-- the index the script gives, every plan: its name, its number of
-- limits, and count, period_usec for each limit.
local function valid(client, scope, plan, cid, sub, exp, now)
  -- client_id, consent_id, sub: 1 to 255 visible ASCII characters
  -- (an empty consent_id or sub is no value), in one search
  if not client or #client == 0 or #client > 255
     or (cid and #cid > 255) or (sub and #sub > 255)
     or string.find(client .. (cid or '') .. (sub or ''),
                    '[%z\1- \127-\255]') then
    return false
  end
  if scope and (#scope > 4096
                or string.find(scope, '[%z\1-\31"\\\127-\255]')) then
    return false
  end
  if plan and plan ~= ''
     and (#plan > 64 or string.find(plan, '[^0-9A-Za-z_%-]')) then
    return false
  end
  if exp and exp ~= '' then
    if #exp > 15 or string.find(exp, '[^0-9]') then return false end
    if tonumber(exp) <= tonumber(now) then return false end
  end
  return true
end
-- a plan among those from a[i] on: where its limits start, how many
local function find_plan(a, i, name)
  while i <= #a do
    local n = tonumber(a[i + 1])
    if a[i] == name then return i + 2, n end
    i = i + 2 + 2 * n
  end
  return nil
end
-- the rate limit of a request nginx will let through, or 0
local function limit(a, first, client, scope, plan, cid, sub, exp, cs)
  if a[2] ~= '1' then return 0 end
  if not valid(client, scope, plan, cid, sub, exp, a[7]) then
    return 0
  end
  if a[4] == '1' and (not cid or cid == '' or cs ~= 'valid') then
    return 0
  end
  if a[5] ~= '' or a[6] ~= '' then
    local granted = ' ' .. (scope or '') .. ' '
    for s in string.gmatch(a[5], '%S+') do
      if not string.find(granted, ' ' .. s .. ' ', 1, true) then
        return 0
      end
    end
    if a[6] ~= '' then
      local any = false
      for s in string.gmatch(a[6], '%S+') do
        if string.find(granted, ' ' .. s .. ' ', 1, true) then
          any = true
          break
        end
      end
      if not any then return 0 end
    end
  end
  local i, n
  if plan and plan ~= '' then
    i, n = find_plan(a, first, plan)
  end
  if not i and a[3] ~= '' then
    plan = a[3]
    i, n = find_plan(a, first, plan)
  end
  if not i then return 0 end
  return gcra(a[1], client, plan, a, i, n, clock())
end
