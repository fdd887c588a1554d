-- The checks nginx makes before a request may be counted, so that
-- the script counts only what nginx lets through.
-- ngx_oauth2_record.c is the definition of every rule here;
-- t/012-gate.t runs one table of vectors through both.
--
-- ARGV[1..8] of the lookup and JWT scripts: prefix; rate limit on
-- ("1"/"0"); every plan ("\nname spec\n..."); default plan;
-- consent required ("1"/"0"); scopes all required; scopes one of
-- which is required; nginx's clock (Unix seconds).
local function ident(s, max)
  return #s > 0 and #s <= max and not string.find(s, '[^!-~]')
end
local function valid(client, scope, plan, cid, sub, exp, now)
  if not client or not ident(client, 255) then return false end
  if scope and (#scope > 4096 or string.find(scope, '[^ -~]')
                or string.find(scope, '["\\]')) then
    return false
  end
  if plan and plan ~= ''
     and (#plan > 64 or string.find(plan, '[^0-9A-Za-z_%-]')) then
    return false
  end
  if cid and cid ~= '' and not ident(cid, 255) then return false end
  if sub and sub ~= '' and not ident(sub, 255) then return false end
  if exp and exp ~= '' then
    if #exp > 15 or string.find(exp, '[^0-9]') then return false end
    if tonumber(exp) <= now then return false end
  end
  return true
end
local function plan_spec(all, name)
  local s = string.find(all, '\n' .. name .. ' ', 1, true)
  if not s then return nil end
  local e = string.find(all, '\n', s + 1, true)
  return string.sub(all, s + #name + 2, e - 1)
end
local function limit(a, client, scope, plan, cid, sub, exp, cs)
  if a[2] ~= '1' then return false end
  if not valid(client, scope, plan, cid, sub, exp, tonumber(a[8])) then
    return false
  end
  if a[5] == '1' and (not cid or cid == '' or cs ~= 'valid') then
    return false
  end
  local granted = ' ' .. (scope or '') .. ' '
  for s in string.gmatch(a[6], '%S+') do
    if not string.find(granted, ' ' .. s .. ' ', 1, true) then
      return false
    end
  end
  if a[7] ~= '' then
    local any = false
    for s in string.gmatch(a[7], '%S+') do
      if string.find(granted, ' ' .. s .. ' ', 1, true) then
        any = true
      end
    end
    if not any then return false end
  end
  local spec = nil
  if plan and plan ~= '' then
    spec = plan_spec(a[3], plan)
  end
  if not spec and a[4] ~= '' then
    plan = a[4]
    spec = plan_spec(a[3], plan)
  end
  if not spec then return false end
  return gcra(a[1], client, plan, spec, clock())
end
