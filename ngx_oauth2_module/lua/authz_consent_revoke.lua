-- DELETE of the consent API: the client's own consent is revoked.  From
-- the next request on, every access token behind it gets the gateway's
-- 403, and its refresh tokens invalid_grant; the key keeps its TTL.
--
-- KEYS[1]: <prefix>consent:<id>; ARGV[1]: the client_id.
-- Returns 1, or 0 for a consent that is unknown or another client's.
if redis.call('HGET', KEYS[1], 'client_id') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'revoked')
return 1
