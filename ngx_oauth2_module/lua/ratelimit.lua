-- The rate limit alone, for a token whose record nginx holds already
-- (oauth2_cache).  ARGV: prefix, client_id, plan, plan spec.
return gcra(ARGV[1], ARGV[2], ARGV[3], ARGV[4], clock())
