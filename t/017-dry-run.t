# oauth2_dry_run: every check is made (and a rate limit counted), the
# request always goes on; $oauth2_status says what would have been
# decided, an info line names what would have been refused and why, and
# the $oauth2_* variables are set where the token was valid.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;

my $default_config = <<'_EOC_';
    location /api {
        oauth2 on;
        oauth2_dry_run on;
        oauth2_scope accounts;
        add_header X-OAuth2-Status $oauth2_status always;
        proxy_set_header X-Client-Id $oauth2_client_id;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "in client=$http_x_client_id\n";
    }
_EOC_

OAuth2Blocks::defaults(
    http_config => "oauth2_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;\n"
                   . "    oauth2_plan one 1r/h;\n",
    config => $default_config,
    request => "GET /api\n",
    error_code => 200,
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a valid token: allowed, the variables set
--- init
OAuth2Test::seed_valid('tok-d1', client_id => 'tpp-d1', scope => 'accounts');
--- more_headers
Authorization: Bearer tok-d1
--- response_headers
X-OAuth2-Status: ok
--- response_body
in client=tpp-d1
--- no_error_log
would have been refused
[alert]
[crit]



=== TEST 2: no token: let through, $oauth2_status missing_token, logged
--- response_headers
X-OAuth2-Status: missing_token
!WWW-Authenticate
--- response_body
in client=
--- error_log
oauth2: dry run: the request would have been refused: missing_token



=== TEST 3: an unknown token: invalid_token
--- more_headers
Authorization: Bearer tok-unknown-d3
--- response_headers
X-OAuth2-Status: invalid_token
--- error_log
oauth2: dry run: the request would have been refused: invalid_token



=== TEST 4: a scope missing: insufficient_scope, the client known
--- init
OAuth2Test::seed_valid('tok-d4', client_id => 'tpp-d4', scope => 'other');
--- more_headers
Authorization: Bearer tok-d4
--- response_headers
X-OAuth2-Status: insufficient_scope
--- response_body
in client=tpp-d4
--- error_log
oauth2: dry run: the request would have been refused: insufficient_scope



=== TEST 5: a revoked consent: consent_invalid
--- init
OAuth2Test::seed_consent('c-d5', 'revoked');
OAuth2Test::seed_token('tok-d5', client_id => 'tpp-d5', scope => 'accounts',
                       consent_id => 'c-d5');
--- more_headers
Authorization: Bearer tok-d5
--- response_headers
X-OAuth2-Status: consent_invalid
--- error_log
oauth2: dry run: the request would have been refused: consent_invalid



=== TEST 6: over the plan: rate_limited, and the first request was counted
--- init
OAuth2Test::seed_valid('tok-d6', client_id => 'tpp-d6-' . time, plan => 'one',
                       scope => 'accounts');
--- request eval
["GET /api", "GET /api"]
--- more_headers
Authorization: Bearer tok-d6
--- error_code eval
[200, 200]
--- response_headers eval
["X-OAuth2-Status: ok", "X-OAuth2-Status: rate_limited"]



=== TEST 7: the token in the query string: invalid_request
--- request
GET /api?access_token=x
--- response_headers
X-OAuth2-Status: invalid_request
--- error_log
oauth2: dry run: the request would have been refused: invalid_request



=== TEST 8: Redis unreachable: store_unavailable, let through
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_DEAD_PORT;
    oauth2_redis_timeout 300ms;
--- more_headers
Authorization: Bearer tok-d8
--- response_headers
X-OAuth2-Status: store_unavailable
--- error_log
oauth2: dry run: the request would have been refused: store_unavailable



=== TEST 9: off (the default) in another location: refused as usual
--- config
    location /api {
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "in\n";
    }
--- error_code: 401
