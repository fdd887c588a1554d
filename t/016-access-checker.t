# Refusals go through nginx's access checker, as auth_basic's do:
# satisfy any lets another access module in, auth_delay delays the 401s,
# error_page replaces the body; when nginx answers with its own page for
# the status, the module's JSON and headers are what the client gets.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;

our $Unauthorized = '{"httpCode":"401","httpMessage":"Unauthorized",'
    . '"moreInformation":"This server could not verify that you are '
    . 'authorized to access the URL"}';
our $Forbidden = '{"httpCode":"403","httpMessage":"Forbidden",'
    . '"moreInformation":"Forbidden"}';

my $default_http_config = <<'_EOC_';
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_plan one 1r/h;
_EOC_

OAuth2Blocks::defaults(
    http_config => $default_http_config,
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: satisfy any: an allowed address gets in without a token
--- config
    location /api {
        satisfy any;
        allow 127.0.0.1;
        deny all;
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "in\n";
    }
--- request
GET /api
--- error_code: 200
--- response_headers
!WWW-Authenticate
--- response_body
in



=== TEST 2: satisfy any: every access module refuses: the module's exact 401
--- config
    location /api {
        satisfy any;
        deny all;
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "in\n";
    }
--- request
GET /api
--- error_code: 401
--- response_headers
Content-Type: application/json
WWW-Authenticate: Bearer realm="api"
--- response_body eval
$::Unauthorized



=== TEST 3: satisfy any: a valid token gets in where the address is denied
--- init
OAuth2Test::seed_valid('tok-ac3', client_id => 'tpp-ac3');
--- config
    location /api {
        satisfy any;
        deny all;
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "in\n";
    }
--- request
GET /api
--- more_headers
Authorization: Bearer tok-ac3
--- error_code: 200
--- response_body
in



=== TEST 4: satisfy all: the token passes, deny refuses: nginx's own 403
--- init
OAuth2Test::seed_valid('tok-ac4', client_id => 'tpp-ac4');
--- config
    location /api {
        deny all;
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "in\n";
    }
--- request
GET /api
--- more_headers
Authorization: Bearer tok-ac4
--- error_code: 403
--- response_body_like: 403 Forbidden
--- response_headers
Content-Type: text/html



=== TEST 5: auth_delay delays the module's 401
--- config
    location /api {
        auth_delay 600ms;
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "in\n";
    }
--- request
GET /api
--- more_headers
Authorization: Bearer unknown-token-ac5
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log
delaying unauthorized request



=== TEST 6: error_page 401 replaces the module's body, its headers stay
--- config
    location /api {
        error_page 401 /custom.json;
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location = /custom.json {
        default_type application/json;
        return 200 '{"custom":true}';
    }
    location /backend {
        return 200 "in\n";
    }
--- request
GET /api
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api"
--- response_body chomp
{"custom":true}



=== TEST 7: error_page 403 =200 to a named location
--- init
OAuth2Test::seed_valid('tok-ac8', client_id => 'tpp-ac8', scope => 'x');
--- config
    location /api {
        error_page 403 = @denied;
        oauth2 on;
        oauth2_scope accounts;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location @denied {
        return 200 "denied but fine\n";
    }
    location /backend {
        return 200 "in\n";
    }
--- request
GET /api
--- more_headers
Authorization: Bearer tok-ac8
--- error_code: 200
--- response_body
denied but fine



=== TEST 8: without error_page: the exact JSON body and headers of a 403
--- init
OAuth2Test::seed_valid('tok-ac9', client_id => 'tpp-ac9', scope => 'x');
--- config
    location /api {
        oauth2 on;
        oauth2_scope accounts;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "in\n";
    }
--- request
GET /api
--- more_headers
Authorization: Bearer tok-ac9
--- error_code: 403
--- response_headers eval
"Content-Type: application/json
Content-Length: " . length($::Forbidden) . "
WWW-Authenticate: Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"accounts\""
--- response_body eval
$::Forbidden



=== TEST 9: HEAD: the JSON's headers, no body
--- config
    location /api {
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "in\n";
    }
--- request
HEAD /api
--- error_code: 401
--- response_headers eval
"Content-Type: application/json
Content-Length: " . length($::Unauthorized)
--- response_body



=== TEST 10: a 429 keeps its Retry-After and rate-limit headers
--- init
OAuth2Test::seed_valid('tok-ac11', client_id => 'tpp-ac11-' . time, plan => 'one');
--- config
    location /api {
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "in\n";
    }
--- request eval
["GET /api", "GET /api"]
--- more_headers
Authorization: Bearer tok-ac11
--- error_code eval
[200, 429]
--- response_headers eval
["X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 0"]
--- response_body eval
["in\n", '{"httpCode":"429","httpMessage":"Too Many Requests","moreInformation":"Rate Limit exceeded"}']



=== TEST 11: satisfy any lets the request in: the upstream's own 401 passes untouched
--- config
    location /api {
        satisfy any;
        allow 127.0.0.1;
        deny all;
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        add_header WWW-Authenticate 'Basic realm="backend"' always;
        return 401 "backend says no\n";
    }
--- request
GET /api
--- error_code: 401
--- response_headers
WWW-Authenticate: Basic realm="backend"
--- response_body
backend says no



=== TEST 12: the same for the upstream's 403 after the module refused with 403
--- init
OAuth2Test::seed_valid('tok-ac12', client_id => 'tpp-ac12', scope => 'accounts');
--- config
    location /api {
        satisfy any;
        allow 127.0.0.1;
        deny all;
        oauth2 on;
        oauth2_scope payments;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 403 "backend forbids\n";
    }
--- request
GET /api
--- more_headers
Authorization: Bearer tok-ac12
--- error_code: 403
--- response_body
backend forbids
