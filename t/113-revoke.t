# Token revocation (oauth2_revoke, RFC 7009): a client revokes its own
# access or refresh token; 200 whether or not the token existed, and
# another client's token stays as it is.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;
use OAuth2Authz;

our $Auth = OAuth2Authz::basic('tpp-r', 's3cret-r');
our $Form = "Content-Type: application/x-www-form-urlencoded\n";
our $Unauthorized = '{"httpCode":"401","httpMessage":"Unauthorized",'
    . '"moreInformation":"This server could not verify that you are '
    . 'authorized to access the URL"}';

my $default_config = <<'_EOC_';
    location = /oauth2/revoke {
        oauth2_revoke;
    }
    location = /oauth2/token {
        oauth2_token;
    }
    location /api {
        oauth2 on;
        oauth2_scope accounts;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
_EOC_

OAuth2Blocks::defaults(
    http_config => "oauth2_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;\n",
    config => $default_config,
    init => <<'_I_',
OAuth2Authz::seed_client('tpp-r', 's3cret-r');
OAuth2Authz::seed_client('tpp-r2', 's3cret-r2');
_I_
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: an access token, before
--- init
OAuth2Authz::seed_client('tpp-r', 's3cret-r');
OAuth2Authz::seed_client('tpp-r2', 's3cret-r2');
OAuth2Authz::seed_consent('c-r', client_id => 'tpp-r');
OAuth2Test::seed_token('tok-r1', client_id => 'tpp-r', scope => 'accounts',
                       consent_id => 'c-r');
OAuth2Test::seed_token('tok-r2', client_id => 'tpp-r', scope => 'accounts',
                       consent_id => 'c-r');
OAuth2Authz::seed_refresh('rt-r3', client_id => 'tpp-r', consent_id => 'c-r');
--- request
GET /api
--- more_headers
Authorization: Bearer tok-r1
--- error_code: 200



=== TEST 2: another client revokes it: 200, nothing happens
--- init
--- request
POST /oauth2/revoke
token=tok-r1
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-r2', 's3cret-r2')
--- error_code: 200
--- response_headers
Content-Length: 0
Cache-Control: no-store
--- response_body chomp
--- error_log eval
qr/oauth2: client "tpp-r2" revoking, unknown or not its own: token [0-9a-f]{6}/



=== TEST 3: ... the token still works
--- init
--- request
GET /api
--- more_headers
Authorization: Bearer tok-r1
--- error_code: 200



=== TEST 4: its client revokes it: 200
--- init
--- request
POST /oauth2/revoke
token=tok-r1&token_type_hint=access_token
--- more_headers eval
$::Form . $::Auth
--- error_code: 200
--- response_headers
Content-Length: 0
Cache-Control: no-store
--- response_body chomp
--- error_log eval
qr/oauth2: client "tpp-r" revoked token [0-9a-f]{6}/
--- no_error_log
tok-r1



=== TEST 5: ... the gateway does not know it any more: 401
--- init
--- request
GET /api
--- more_headers
Authorization: Bearer tok-r1
--- error_code: 401
--- response_body eval
$::Unauthorized



=== TEST 6: an access token revoked with the wrong hint: found all the same
--- init
--- request
POST /oauth2/revoke
token=tok-r2&token_type_hint=refresh_token
--- more_headers eval
$::Form . $::Auth
--- error_code: 200



=== TEST 7: ... gone
--- init
--- request
GET /api
--- more_headers
Authorization: Bearer tok-r2
--- error_code: 401



=== TEST 8: a refresh token: 200
--- init
--- request
POST /oauth2/revoke
token=rt-r3&token_type_hint=refresh_token
--- more_headers eval
$::Form . $::Auth
--- error_code: 200



=== TEST 9: ... it gets invalid_grant
--- init
--- request
POST /oauth2/token
grant_type=refresh_token&refresh_token=rt-r3
--- more_headers eval
$::Form . $::Auth
--- error_code: 401
--- response_body chomp
{"error":"invalid_grant"}



=== TEST 10: an unknown token: 200
--- request
POST /oauth2/revoke
token=never-issued&token_type_hint=something_else
--- more_headers eval
$::Form . $::Auth
--- error_code: 200
--- response_body chomp



=== TEST 11: no token: 400 invalid_request
--- request
POST /oauth2/revoke
token_type_hint=access_token
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_headers
Content-Type: application/json
Cache-Control: no-store
--- response_body chomp
{"error":"invalid_request"}



=== TEST 12: no client authentication: 401 invalid_client
--- request
POST /oauth2/revoke
token=tok-r1
--- more_headers eval
$::Form
--- error_code: 401
--- response_headers
WWW-Authenticate: Basic realm="api"
--- response_body chomp
{"error":"invalid_client"}



=== TEST 13: a wrong secret: 401 invalid_client
--- request
POST /oauth2/revoke
token=tok-r1
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-r', 'nope')
--- error_code: 401
--- response_body chomp
{"error":"invalid_client"}



=== TEST 14: not a form: 400 unknown
--- request
POST /oauth2/revoke
{"token":"tok-r1"}
--- more_headers eval
"Content-Type: application/json\n" . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"unknown"}



=== TEST 15: the token twice: 400 unknown
--- request
POST /oauth2/revoke
token=a&token=b
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"unknown"}



=== TEST 16: GET: 405
--- request
GET /oauth2/revoke?token=a
--- more_headers eval
$::Auth
--- error_code: 405
--- response_headers
Allow: POST
--- response_body chomp
{"error":"invalid_request"}
