-- Token revocation (RFC 7009): the first of the token's possible
-- records that exists is deleted if it belongs to the client.  A JWT
-- access token's jti is also written to <prefix>revoked:<jti>, which
-- the gateway checks with oauth2_jwt_revocation on, until its exp and
-- 5 minutes more (a leeway).
--
-- KEYS[1], KEYS[2]: <prefix>token:<sha256> and <prefix>refresh:<sha256>
-- of the token, in the order token_type_hint suggests; for a token that
-- looks like a JWT, KEYS[3]: <prefix>jwt:<jti>, KEYS[4]:
-- <prefix>revoked:<jti>.  ARGV[1]: the client_id; ARGV[2]: now.
-- Returns 1 when a token was revoked, else 0.
for i = 1, math.min(#KEYS, 3) do
  local f = redis.call('HMGET', KEYS[i], 'client_id', 'jti', 'exp')
  if f[1] then
    if f[1] ~= ARGV[1] then return 0 end
    redis.call('DEL', KEYS[i])
    local exp = tonumber(f[3] or '')
    if f[2] and KEYS[4] and exp and exp > tonumber(ARGV[2]) then
      redis.call('SET', KEYS[4], '1', 'EX',
                 exp - tonumber(ARGV[2]) + 300)
    end
    return 1
  end
end
return 0
