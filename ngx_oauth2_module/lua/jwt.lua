-- A verified JWT: its revocation, consent and rate limit, in one call.
--
-- ARGV[1..8]: see gate.lua; then client_id, scope, plan, consent_id,
-- jti, revocation on ("1"/"0"); the plans from ARGV[15] on.  nginx
-- checked the JWT's expiry itself.  Returns the flat {revoked (0/1),
-- consent_status or false, state, limit, remaining, reset, retry,
-- unusable}, state 0 when the request was not counted.
local revoked = 0
if ARGV[14] == '1' and redis.call('EXISTS',
                         ARGV[1] .. 'revoked:' .. ARGV[13]) == 1 then
  revoked = 1
end
local cs = consent(ARGV[1], ARGV[12], ARGV[7])
if revoked == 1 then return {1, cs, 0} end
return {0, cs, limit(ARGV, 15, ARGV[9], ARGV[10], ARGV[11], ARGV[12],
                     false, false, cs)}
