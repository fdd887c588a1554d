-- A record written whole, with its TTL, in one step: a pending
-- authorization request, the access token of client_credentials, the
-- record of a JWT access token's jti.
--
-- KEYS[1]: the record's key; ARGV[1]: its TTL in seconds; ARGV[2..]:
-- field, value, field, value, ...  Returns 1.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
