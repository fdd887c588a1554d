-- Tokens from a grant (authz_code.lua, authz_refresh.lua): the access
-- token's record and the refresh token's, neither outliving the consent
-- behind them.
--
-- consent_left(prefix, consent id, now): the seconds the consent has
-- left (consent.lua), or nil when it is not valid (revoked, expired,
-- gone, not a hash).  A consent without "expires" is bounded by its key
-- alone.
local function consent_left(prefix, id, now)
  local s, left = consent(prefix, id, now)
  if s ~= 'valid' then return nil end
  return left or 315360000
end
-- issue(t, now, access TTL, refresh TTL, left): KEYS[2] gets the access
-- token's record (<prefix>token:<sha256> with client_id, scope, plan,
-- consent_id, sub, exp; for a JWT, <prefix>jwt:<jti> with client_id,
-- jti, exp), KEYS[3] the refresh token's (client_id, scope, consent_id,
-- sub).  t: client_id, scope, refresh_scope, plan, consent_id, sub,
-- jti.
-- Returns {1, scope, consent_id, sub, expires_in, exp}.
local function issue(t, now, attl, rttl, left)
  if left < attl then attl = left end
  if left < rttl then rttl = left end
  local exp = string.format('%d', now + attl)
  redis.call('DEL', KEYS[2])
  if t.jti == '' then
    redis.call('HSET', KEYS[2], 'client_id', t.client_id,
               'scope', t.scope, 'plan', t.plan,
               'consent_id', t.consent_id, 'sub', t.sub, 'exp', exp)
  else
    redis.call('HSET', KEYS[2], 'client_id', t.client_id,
               'jti', t.jti, 'exp', exp)
  end
  redis.call('EXPIRE', KEYS[2], attl)
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[3], 'client_id', t.client_id,
             'scope', t.refresh_scope, 'consent_id', t.consent_id,
             'sub', t.sub)
  redis.call('EXPIRE', KEYS[3], rttl)
  return {1, t.scope, t.consent_id, t.sub, attl, exp}
end
