# Finding the bearer token (RFC 6750) and looking it up in Redis.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;

our $Unauthorized = '{"httpCode":"401","httpMessage":"Unauthorized",'
    . '"moreInformation":"This server could not verify that you are '
    . 'authorized to access the URL"}';

my $default_config = <<'_EOC_';
    location /api {
        oauth2 on;
        oauth2_consent off;
        add_header X-OAuth2-Status $oauth2_status always;
        proxy_set_header X-Who "$oauth2_client_id|$oauth2_scope|$oauth2_plan|$oauth2_consent_id|$oauth2_sub";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }

    location /backend {
        return 200 "who=$http_x_who\n";
    }
_EOC_

OAuth2Blocks::defaults(
    http_config => "oauth2_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;\n",
    config => $default_config,
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: no Authorization header: 401, no error code
--- request
GET /api
--- error_code: 401
--- response_headers
Content-Type: application/json
WWW-Authenticate: Bearer realm="api"
X-OAuth2-Status: missing_token
--- response_body eval
$::Unauthorized
--- error_log
oauth2: access denied: missing_token



=== TEST 2: a valid token: 200, the record in the variables
--- init
OAuth2Test::seed_token('tok-valid-1', client_id => 'tpp-1',
    scope => 'accounts paymentRequest', plan => 'gold',
    consent_id => 'c-1', sub => 'user-7');
--- more_headers
Authorization: Bearer tok-valid-1
--- request
GET /api
--- error_code: 200
--- response_headers
X-OAuth2-Status: ok
--- response_body
who=tpp-1|accounts paymentRequest|gold|c-1|user-7



=== TEST 3: an unknown token: 401 invalid_token
--- init
OAuth2Test::redis('DEL', OAuth2Test::token_key('tok-unknown'));
--- more_headers
Authorization: Bearer tok-unknown
--- request
GET /api
--- error_code: 401
--- response_headers
Content-Type: application/json
WWW-Authenticate: Bearer realm="api", error="invalid_token"
X-OAuth2-Status: invalid_token
--- response_body eval
$::Unauthorized
--- error_log eval
qr/oauth2: token [0-9a-f]{6} is unknown or has expired/



=== TEST 4: a token whose key has expired in Redis (TTL gone): 401
--- init
OAuth2Test::seed_token('tok-ttl', client_id => 'tpp-1');
OAuth2Test::redis('PEXPIRE', OAuth2Test::token_key('tok-ttl'), 1);
select(undef, undef, undef, 0.05);
--- more_headers
Authorization: Bearer tok-ttl
--- request
GET /api
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api", error="invalid_token"
--- response_body eval
$::Unauthorized



=== TEST 5: a token whose exp has passed: 401
--- init
OAuth2Test::seed_token('tok-exp', client_id => 'tpp-1', exp => time() - 5);
--- more_headers
Authorization: Bearer tok-exp
--- request
GET /api
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api", error="invalid_token"
--- response_body eval
$::Unauthorized
--- error_log eval
qr/oauth2: token [0-9a-f]{6} of client "tpp-1" has expired/



=== TEST 6: $oauth2_expires_in: the nearer of exp and the key's TTL
--- config
    location /api {
        oauth2 on;
        oauth2_consent off;
        add_header X-Expires-In $oauth2_expires_in;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "ok\n"; }
--- init
OAuth2Test::seed_token('tok-exp-in', client_id => 'tpp-1', exp => time() + 600);
--- more_headers
Authorization: Bearer tok-exp-in
--- request
GET /api
--- error_code: 200
--- response_headers_like
X-Expires-In: 59[89]|600
--- response_body
ok



=== TEST 7: another scheme (Basic) is no bearer token: 401 without error
--- more_headers
Authorization: Basic dXNlcjpwYXNz
--- request
GET /api
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api"
X-OAuth2-Status: missing_token
--- response_body eval
$::Unauthorized



=== TEST 8: "Bearer" alone: 401 invalid_token
--- more_headers
Authorization: Bearer
--- request
GET /api
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api", error="invalid_token"
--- response_body eval
$::Unauthorized
--- error_log
oauth2: bearer credentials without a token



=== TEST 9: the scheme is case-insensitive, spaces before the token are 1*SP
--- init
OAuth2Test::seed_token('tok-case', client_id => 'tpp-case');
--- more_headers
Authorization: bEaReR   tok-case
--- request
GET /api
--- error_code: 200
--- response_body
who=tpp-case||||



=== TEST 10: characters outside b64token: 401 invalid_token
--- more_headers
Authorization: Bearer abc"def
--- request
GET /api
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api", error="invalid_token"
--- response_body eval
$::Unauthorized
--- error_log
bearer token has characters outside RFC 6750 b64token



=== TEST 11: "=" only at the end of a b64token
--- more_headers
Authorization: Bearer ab=cd
--- request
GET /api
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api", error="invalid_token"



=== TEST 12: b64token with every allowed character and padding
--- init
OAuth2Test::seed_token('Az09-._~+/==', client_id => 'tpp-chars');
--- more_headers
Authorization: Bearer Az09-._~+/==
--- request
GET /api
--- error_code: 200
--- response_body
who=tpp-chars||||



=== TEST 13: a token longer than oauth2_token_max_length: 401
--- config
    location /api {
        oauth2 on;
        oauth2_token_max_length 32;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "ok\n"; }
--- more_headers eval
"Authorization: Bearer " . ("a" x 33)
--- request
GET /api
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api", error="invalid_token"
--- response_body eval
$::Unauthorized
--- error_log
oauth2: bearer token of 33 bytes is longer than oauth2_token_max_length 32



=== TEST 14: access_token in the query string: 400 invalid_request
--- init
OAuth2Test::seed_token('tok-q', client_id => 'tpp-1');
--- more_headers
Authorization: Bearer tok-q
--- request
GET /api?x=1&access_token=tok-q
--- error_code: 400
--- response_headers
Content-Type: application/json
WWW-Authenticate: Bearer realm="api", error="invalid_request"
X-OAuth2-Status: invalid_request
--- response_body chomp
{"httpCode":"400","httpMessage":"Bad Request","moreInformation":"The access token must be sent once, in the Authorization header"}
--- error_log
oauth2: access_token in the query string refused



=== TEST 15: two Authorization headers: nginx's 400, JSON through error_page
--- config
    error_page 400 /oauth2-errors/400.json;

    location /oauth2-errors/ {
        internal;
        default_type application/json;
        return 400 '{"httpCode":"400","httpMessage":"Bad Request","moreInformation":"Send one Authorization header"}';
    }

    location /api {
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- more_headers
Authorization: Bearer a
Authorization: Bearer b
--- request
GET /api
--- error_code: 400
--- response_headers
Content-Type: application/json
--- response_body chomp
{"httpCode":"400","httpMessage":"Bad Request","moreInformation":"Send one Authorization header"}
--- error_log
client sent duplicate header line



=== TEST 16: a record without client_id is refused, and logged
--- init
OAuth2Test::seed_token('tok-noclient', scope => 'accounts');
--- more_headers
Authorization: Bearer tok-noclient
--- request
GET /api
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api", error="invalid_token"
--- error_log eval
qr/\[warn\] .*oauth2: record of token [0-9a-f]{6} has no client_id, token refused/



=== TEST 17: a record with a non-numeric exp is refused, and logged
--- init
OAuth2Test::seed_token('tok-badexp', client_id => 'tpp-1', exp => 'tomorrow');
--- more_headers
Authorization: Bearer tok-badexp
--- request
GET /api
--- error_code: 401
--- error_log eval
qr/\[warn\] .*has a non-numeric exp "tomorrow", token refused/



=== TEST 18: a key of the wrong type: 503, never a 200
--- init
OAuth2Test::redis('DEL', OAuth2Test::token_key('tok-string'));
OAuth2Test::redis('SET', OAuth2Test::token_key('tok-string'), 'client-1');
--- more_headers
Authorization: Bearer tok-string
--- request
GET /api
--- error_code: 503
--- response_headers
Content-Type: application/json
Retry-After: 1
--- error_log
oauth2: redis answered an error for token



=== TEST 19: HEAD gets the status and headers, no body
--- request
HEAD /api
--- error_code: 401
--- response_headers
Content-Type: application/json
Content-Length: 138
WWW-Authenticate: Bearer realm="api"
--- response_body



=== TEST 20: oauth2 off (the default): nothing is checked
--- config
    location /open {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "open\n"; }
--- request
GET /open
--- error_code: 200
--- response_body
open
--- no_error_log
oauth2: access denied
oauth2: token
[alert]



=== TEST 21: oauth2 on at server level, off in one location
--- config
    oauth2 on;
    location /api {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /health {
        oauth2 off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { oauth2 off; return 200 "backend\n"; }
--- request eval
["GET /api", "GET /health"]
--- error_code eval
[401, 200]
--- response_body eval
[$::Unauthorized, "backend\n"]



=== TEST 22: oauth2_realm
--- config
    location /backend { return 200 "ok\n"; }
    location /api {
        oauth2 on;
        oauth2_realm "open banking";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- request
GET /api
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="open banking"



=== TEST 23: oauth2_error_message replaces moreInformation, JSON-escaped
--- config
    location /backend { return 200 "ok\n"; }
    location /api {
        oauth2 on;
        oauth2_error_message 401 'Say "please" \ token';
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- request
GET /api
--- error_code: 401
--- response_body chomp
{"httpCode":"401","httpMessage":"Unauthorized","moreInformation":"Say \"please\" \\ token"}



=== TEST 24: oauth2_error_message is inherited, and replaced as a whole
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_error_message 401 "from http";
--- config
    location /backend { return 200 "ok\n"; }
    location /a {
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /b {
        oauth2 on;
        oauth2_error_message 503 "later";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- request eval
["GET /a", "GET /b"]
--- error_code eval
[401, 401]
--- response_body eval
['{"httpCode":"401","httpMessage":"Unauthorized","moreInformation":"from http"}',
 $::Unauthorized]



=== TEST 25: oauth2_redis_prefix
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_redis_prefix "bank1:";
--- init
{
    local $OAuth2Test::Prefix = 'bank1:';
    OAuth2Test::seed_token('tok-prefix', client_id => 'tpp-prefix');
}
OAuth2Test::redis('DEL', OAuth2Test::token_key('tok-prefix'));
--- more_headers
Authorization: Bearer tok-prefix
--- request
GET /api
--- error_code: 200
--- response_body
who=tpp-prefix||||



=== TEST 26: the token is never in the module's log lines
--- init
OAuth2Test::redis('DEL', OAuth2Test::token_key('tok-secret-value-123'));
--- more_headers
Authorization: Bearer tok-secret-value-123
--- request
GET /api
--- error_code: 401
--- error_log
oauth2: access denied: invalid_token
--- no_error_log eval
[qr/oauth2:[^\n]*tok-secret-value-123/, "[alert]"]



=== TEST 27: exp 0 is long past, not "never"
--- init
OAuth2Test::seed_token('tok-exp0', client_id => 'tpp-1', exp => '0');
--- more_headers
Authorization: Bearer tok-exp0
--- request
GET /api
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api", error="invalid_token"
