-- The consent behind a token, as the gateway (lookup.lua, jwt.lua) and
-- the token endpoint (authz_issue.lua) see it: one rule, and
-- ngx_http_oauth2_authz_consent.c shows consents by it.
--
-- consent(prefix, id, now): the status of <prefix>consent:<id> and,
-- for a valid one with an "expires", the seconds it has left.  A status
-- "valid" holds while its "expires" (Unix seconds, 1 to 15 digits, as a
-- token's exp) is after now (the caller's clock, a number or the digits
-- of one, converted only when there is an "expires"): past it the
-- status is "expired", and with an "expires" of any other shape "bad
-- expires".  A consent without "expires" (or with an empty one) is
-- bounded by its key's TTL alone.  No id, no key, no status, or a key
-- that is not a hash: false.
local function consent(prefix, id, now)
  if not id or id == '' then return false end
  local c = redis.pcall('HMGET', prefix .. 'consent:' .. id, 'status',
                        'expires')
  if c.err or not c[1] then return false end
  local s, e = c[1], c[2]
  if s ~= 'valid' or not e or e == '' then return s end
  if #e > 15 or string.find(e, '[^0-9]') then return 'bad expires' end
  e, now = tonumber(e), tonumber(now)
  if e <= now then return 'expired' end
  return s, e - now
end
