-- The lookup: one call per request for the token, its consent and, when
-- the token may pass (gate.lua), the rate limit.
--
-- KEYS[1]: <prefix>token:<sha256 hex>; ARGV: see gate.lua, the plans
-- from ARGV[9] on.  Returns {0} for an unknown token (a key with none
-- of the fields), else the flat
-- {1, pttl, client_id, scope, plan, consent_id, sub, exp,
--  consent_status, state, limit, remaining, reset, retry, unusable}:
-- false (nil) for a field that is missing; pttl -1 when it was not
-- wanted (ARGV[8] "0") or the record has an exp; state 0 when the
-- request was not counted.
local f = redis.call('HMGET', KEYS[1], 'client_id', 'scope', 'plan',
                     'consent_id', 'sub', 'exp')
if not (f[1] or f[2] or f[3] or f[4] or f[5] or f[6]) then
  return {0}
end
local ttl = -1
if ARGV[8] == '1' and not f[6] then
  ttl = redis.call('PTTL', KEYS[1])
end
local cs = consent(ARGV[1], f[4], ARGV[7])
return {1, ttl, f[1], f[2], f[3], f[4], f[5], f[6], cs,
        limit(ARGV, 9, f[1], f[2], f[3], f[4], f[5], f[6], cs)}
