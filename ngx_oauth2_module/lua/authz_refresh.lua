-- A refresh (RFC 6749 6).  Refresh tokens are single use and rotated
-- here, in one step: the old one is deleted as the new pair is written,
-- so of two requests at the same moment one gets the new pair.
--
-- KEYS[1]: <prefix>refresh:<sha256 of the refresh token>; KEYS[2],
-- KEYS[3]: the new tokens' keys, as for authz_code.lua.
-- ARGV: prefix, client_id, scope ('' for the grant's), plan, now,
-- access token TTL, refresh token TTL, jti ('' for an opaque token).
-- Returns {0, why} when the grant is invalid; {2} for a scope beyond
-- the grant's (the refresh token is kept); else issue()'s reply.
local f = redis.call('HMGET', KEYS[1], 'client_id', 'scope',
                     'consent_id', 'sub')
if not f[1] then
  return {0, 'unknown, expired or used refresh token'}
end
if f[1] ~= ARGV[2] then
  return {0, 'refresh token of another client'}
end
local scope = f[2] or ''
if ARGV[3] ~= '' then
  local granted = ' ' .. scope .. ' '
  for s in string.gmatch(ARGV[3], '%S+') do
    if not string.find(granted, ' ' .. s .. ' ', 1, true) then
      return {2}
    end
  end
  scope = ARGV[3]
end
redis.call('DEL', KEYS[1])
local now = tonumber(ARGV[5])
local left = consent_left(ARGV[1], f[3], now)
if not left then return {0, 'consent is not valid'} end
return issue({client_id = f[1], scope = scope,
              refresh_scope = f[2] or '', plan = ARGV[4],
              consent_id = f[3], sub = f[4] or '', jti = ARGV[8]},
             now, tonumber(ARGV[6]), tonumber(ARGV[7]), left)
