-- The lookup: one call per request for the token, its consent and, when
-- the token may pass (gate.lua), the rate limit.
--
-- KEYS[1]: <prefix>token:<sha256 hex>; ARGV[1..8]: see gate.lua.
-- Returns {0} for an unknown token, else
-- {1, pttl, client_id, scope, plan, consent_id, sub, exp,
--  consent_status, rate limit or false}, false (nil) for what is
-- missing.
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return {0} end
local f = redis.call('HMGET', KEYS[1], 'client_id', 'scope', 'plan',
                     'consent_id', 'sub', 'exp')
local cs = false
if f[4] and f[4] ~= '' then
  cs = redis.pcall('HGET', ARGV[1] .. 'consent:' .. f[4], 'status')
  if type(cs) == 'table' then cs = false end
end
return {1, ttl, f[1], f[2], f[3], f[4], f[5], f[6], cs,
        limit(ARGV, f[1], f[2], f[3], f[4], f[5], f[6], cs)}
