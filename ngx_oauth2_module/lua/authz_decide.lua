-- The user's decision on a pending authorization request, reported by
-- the bank's consent application.  A request is decided once: the first
-- decision consumes it.  "allow" creates the consent and the code.
--
-- KEYS[1]: <prefix>authz:<request id>; KEYS[2]: <prefix>consent:<new
-- consent id>; KEYS[3]: <prefix>code:<sha256 of the new code>.
-- ARGV: decision (allow or deny), user, scope ('' for the scope the
-- client asked for), consent id, created, expires (Unix seconds), the
-- consent key's TTL, the code's TTL (seconds).
-- Returns {0} for an unknown (used, expired) request; {2} for a scope
-- that is not part of the one asked for (the request stays pending);
-- else {1, redirect_uri, state ('' when none), client_id}.
local f = redis.call('HMGET', KEYS[1], 'client_id', 'redirect_uri',
                     'redirect_given', 'scope', 'state',
                     'code_challenge')
if not f[1] then return {0} end
local scope = f[4] or ''
if ARGV[3] ~= '' then
  local asked = ' ' .. scope .. ' '
  for s in string.gmatch(ARGV[3], '%S+') do
    if not string.find(asked, ' ' .. s .. ' ', 1, true) then
      return {2}
    end
  end
  scope = ARGV[3]
end
redis.call('DEL', KEYS[1])
if ARGV[1] == 'allow' then
  redis.call('HSET', KEYS[2], 'status', 'valid', 'client_id', f[1],
             'sub', ARGV[2], 'scope', scope, 'created', ARGV[5],
             'expires', ARGV[6])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
  redis.call('HSET', KEYS[3], 'client_id', f[1], 'redirect_uri', f[2],
             'redirect_given', f[3] or '0',
             'code_challenge', f[6] or '', 'scope', scope,
             'consent_id', ARGV[4], 'sub', ARGV[2], 'created', ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[8])
end
return {1, f[2], f[5] or '', f[1]}
