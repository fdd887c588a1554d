-- The token request of an authorization code (RFC 6749 4.1.3).  A code
-- works once: the first request that names it consumes it, whatever
-- follows, so of two requests at the same moment one gets the tokens.
--
-- KEYS[1]: <prefix>code:<sha256 of the code>; KEYS[2]: the new access
-- token's key (<prefix>token:<sha256>, or <prefix>jwt:<jti>); KEYS[3]:
-- the new refresh token's, <prefix>refresh:<sha256>.
-- ARGV: prefix, client_id, redirect_uri ('' when not sent), the PKCE
-- challenge of code_verifier ('' when not sent), plan, now, access
-- token TTL, refresh token TTL, jti ('' for an opaque token), the
-- oauth2_code_ttl set for the token endpoint's location (seconds; ''
-- when none is): a code whose age in whole seconds is more than that is
-- expired there (so never before it, and less than a second after),
-- whatever its key's TTL (the decision's oauth2_code_ttl) says.
-- Returns {0, why} when the grant is invalid, else issue()'s reply.
local f = redis.call('HMGET', KEYS[1], 'client_id', 'redirect_uri',
                     'redirect_given', 'code_challenge', 'scope',
                     'consent_id', 'sub', 'created')
if not f[1] then return {0, 'unknown, expired or used code'} end
redis.call('DEL', KEYS[1])
local now = tonumber(ARGV[6])
if ARGV[10] ~= '' and f[8] then
  if not string.find(f[8], '^%d+$') or #f[8] > 15 then
    return {0, 'code with an unusable created'}
  end
  if now - tonumber(f[8]) > tonumber(ARGV[10]) then
    return {0, 'code older than oauth2_code_ttl'}
  end
end
if f[1] ~= ARGV[2] then return {0, 'code of another client'} end
if (f[3] == '1' or ARGV[3] ~= '') and ARGV[3] ~= f[2] then
  return {0, 'redirect_uri is not the authorization request\'s'}
end
if (f[4] or '') ~= ARGV[4] then
  return {0, 'code_verifier does not match the code_challenge'}
end
local left = consent_left(ARGV[1], f[6], now)
if not left then return {0, 'consent is not valid'} end
return issue({client_id = f[1], scope = f[5] or '',
              refresh_scope = f[5] or '', plan = ARGV[5],
              consent_id = f[6], sub = f[7] or '', jti = ARGV[9]},
             now, tonumber(ARGV[7]), tonumber(ARGV[8]), left)
