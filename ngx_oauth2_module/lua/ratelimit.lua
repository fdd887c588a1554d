-- The rate limit alone, for a token whose record nginx holds already
-- (oauth2_cache, or a verified JWT).  ARGV: prefix, client_id, plan,
-- its number of limits, then count, period_usec for each limit.
-- Returns {state, limit, remaining, reset, retry, unusable}.
return {gcra(ARGV[1], ARGV[2], ARGV[3], ARGV, 5, tonumber(ARGV[4]),
             clock())}
