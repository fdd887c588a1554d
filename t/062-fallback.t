# What Redis was needed for decides what its absence means: a record that
# needs Redis to be valid (an opaque token, a JWT's revocation or
# consent) gets 503; a record nginx checked itself, which needs Redis only
# to be counted (a verified JWT, a cached token), gets
# oauth2_rate_limit_fallback - the first request as the next ones.
# oauth2_rate_limit_fallback local counts without oauth2_cache.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;
use OAuth2JWT;

our $Unavailable = '{"httpCode":"503","httpMessage":"Service Unavailable",'
    . '"moreInformation":"The service is temporarily unavailable, please '
    . 'retry later"}';
our $TooMany = '{"httpCode":"429","httpMessage":"Too Many Requests",'
    . '"moreInformation":"Rate Limit exceeded"}';

OAuth2JWT::setup();

our %T = (
    plain   => OAuth2JWT::sign('HS256', { client_id => 'tpp-f1-' . time,
                                          scope => 'accounts',
                                          plan => 'one' }),
    other   => OAuth2JWT::sign('HS256', { client_id => 'tpp-f2-' . time,
                                          scope => 'accounts',
                                          plan => 'one' }),
    consent => OAuth2JWT::sign('HS256', { client_id => 'tpp-f3',
                                          scope => 'accounts',
                                          consent_id => 'c-f3',
                                          plan => 'one' }),
);

my $default_http_config = <<'_EOC_';
    oauth2_redis 127.0.0.1:$TEST_NGINX_DEAD_PORT;
    oauth2_redis_timeout 300ms;
    oauth2_jwt_key HS256 $TEST_NGINX_JWT_DIR/hs.secret;
    oauth2_plan one 1r/h;
_EOC_

OAuth2Blocks::defaults(
    http_config => $default_http_config,
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a JWT that needs Redis only to be counted: fallback allow, from its first request on
--- config
    location /api {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_consent off;
        oauth2_rate_limit_fallback allow;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "in\n"; }
--- request eval
["GET /api", "GET /api", "GET /api"]
--- more_headers eval
"Authorization: Bearer $::T{plain}"
--- error_code eval
[200, 200, 200]
--- response_headers eval
["!X-RateLimit-Remaining", "!X-RateLimit-Remaining", "!X-RateLimit-Remaining"]
--- error_log
oauth2_rate_limit_fallback allow: not limited



=== TEST 2: the same with fallback deny: 503, the first request too
--- config
    location /api {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_consent off;
        oauth2_rate_limit_fallback deny;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "in\n"; }
--- request eval
["GET /api", "GET /api"]
--- more_headers eval
"Authorization: Bearer $::T{plain}"
--- error_code eval
[503, 503]
--- response_body eval
[$::Unavailable, $::Unavailable]
--- error_log
oauth2_rate_limit_fallback deny: 503



=== TEST 3: fallback local, without oauth2_cache: this node counts (1r/h: 200 then 429)
--- config
    location /api {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_consent off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "in\n"; }
--- request eval
["GET /api", "GET /api"]
--- more_headers eval
"Authorization: Bearer $::T{other}"
--- error_code eval
[200, 429]
--- response_headers eval
["X-RateLimit-Remaining: 0", "Retry-After: 3600"]
--- response_body eval
["in\n", $::TooMany]
--- error_log
oauth2_rate_limit_fallback local: this node counts alone



=== TEST 4: an opaque token needs Redis to be valid: 503 whatever the fallback
--- config
    location /api {
        oauth2 on;
        oauth2_consent off;
        oauth2_rate_limit_fallback allow;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "in\n"; }
--- request eval
["GET /api", "GET /api"]
--- more_headers
Authorization: Bearer some-opaque-token
--- error_code eval
[503, 503]
--- response_headers eval
["Retry-After: 1", "Retry-After: 1"]
--- response_body eval
[$::Unavailable, $::Unavailable]



=== TEST 5: a JWT whose consent is in Redis needs Redis to be valid: 503
--- config
    location /api {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_consent on;
        oauth2_rate_limit_fallback allow;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "in\n"; }
--- request eval
["GET /api", "GET /api"]
--- more_headers eval
"Authorization: Bearer $::T{consent}"
--- error_code eval
[503, 503]
--- response_body eval
[$::Unavailable, $::Unavailable]
