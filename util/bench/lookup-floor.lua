-- A measuring instrument, not a script of the module: the lookup script
-- of lua/lookup.lua (with gate.lua and gcra.lua) as lean as it can be
-- written and still make its decisions for the one case util/script-cost.sh
-- calls it with (a plan of one limit, scopes all required, no scopes one
-- of which is required; no reset or remaining on a refusal).
-- Everything inlined: no local functions, no tables but the reply.  What
-- it costs is the floor of a lookup that reads the record as a hash,
-- gates it as nginx does, and answers in 15 elements:
--
--   util/script-cost.sh 1000 util/bench/lookup-floor.lua \
--       oauth2: 1 big 1 accounts '' "$(date +%s)" 0 big 1 1000000 1000000
--
-- See docs/performance.md, "Redis's instructions".
local a = ARGV
local f = redis.call('HMGET', KEYS[1], 'client_id', 'scope', 'plan',
                     'consent_id', 'sub', 'exp')
local client, scope, plan, cid, sub, exp = f[1], f[2], f[3], f[4], f[5], f[6]
if not (client or scope or plan or cid or sub or exp) then
  return {0}
end
local ttl = -1
if a[8] == '1' and not exp then
  ttl = redis.call('PTTL', KEYS[1])
end
local cs = false
if cid and cid ~= '' then
  cs = redis.pcall('HGET', a[1] .. 'consent:' .. cid, 'status')
  if type(cs) == 'table' then cs = false end
end
local find = string.find
if a[2] ~= '1' then
  return {1, ttl, client, scope, plan, cid, sub, exp, cs, 0}
end
if not client or #client == 0 or #client > 255
   or find(client, '[%z\1- \127-\255]')
   or (cid and (#cid > 255 or find(cid, '[%z\1- \127-\255]')))
   or (sub and (#sub > 255 or find(sub, '[%z\1- \127-\255]')))
   or (scope and (#scope > 4096 or find(scope, '[%z\1-\31"\\\127-\255]')))
   or (plan and plan ~= '' and (#plan > 64 or find(plan, '[^0-9A-Za-z_%-]')))
   or (exp and exp ~= '' and (#exp > 15 or find(exp, '[^0-9]')
                              or tonumber(exp) <= tonumber(a[7])))
   or (a[4] == '1' and cs ~= 'valid')
then
  return {1, ttl, client, scope, plan, cid, sub, exp, cs, 0}
end
if a[5] ~= '' then
  local granted = ' ' .. (scope or '') .. ' '
  for s in string.gmatch(a[5], '%S+') do
    if not find(granted, ' ' .. s .. ' ', 1, true) then
      return {1, ttl, client, scope, plan, cid, sub, exp, cs, 0}
    end
  end
end
local i, n = 9
local name = (plan and plan ~= '') and plan or a[3]
while i <= #a do
  n = tonumber(a[i + 1])
  if a[i] == name then break end
  i = i + 2 + 2 * n
end
i = i + 2
local tm = redis.call('TIME')
local now = tm[1] * 1000000 + tm[2]
local c, p = a[i], a[i + 1]
local key = a[1] .. 'rl:{' .. client .. '}:' .. name .. ':' .. c .. ':' .. p
local t = p / c
local tau = p - t
local tat = now
local v = redis.pcall('GET', key)
if v then
  local x = type(v) == 'string' and tonumber(v)
  if x and x == x and x <= now + p and x > now then tat = x end
end
local wait = tat - now - tau
if wait > 0 then
  return {1, ttl, client, scope, plan, cid, sub, exp, cs, 2, 0, 0, 1, 1, 0}
end
tat = tat + t
redis.call('SET', key, string.format('%.17g', tat), 'PX',
           math.ceil((tat - now) / 1000) + 1000)
return {1, ttl, client, scope, plan, cid, sub, exp, cs, 1, 0,
        math.floor(-wait / t), math.ceil((tat - now) / 1000000), 0, 0}
