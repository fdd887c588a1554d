# The consent details API (oauth2_consent_api): GET /consents/{id} for
# the client the consent belongs to, 404 for anyone else (ids do not
# leak), DELETE revokes it; the gateway then refuses the tokens behind it
# (403) and the token endpoint its refresh tokens (invalid_grant).

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;
use OAuth2Authz;

our $Auth = OAuth2Authz::basic('tpp-c', 's3cret-c');
our $Form = "Content-Type: application/x-www-form-urlencoded\n";
our $Forbidden = '{"httpCode":"403","httpMessage":"Forbidden",'
    . '"moreInformation":"Forbidden"}';

my $default_config = <<'_EOC_';
    location /consents/ {
        oauth2_consent_api;
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
OAuth2Authz::seed_client('tpp-c', 's3cret-c');
OAuth2Authz::seed_client('tpp-c2', 's3cret-c2');
_I_
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the client's own consent: 200, valid
--- init
OAuth2Authz::seed_client('tpp-c', 's3cret-c');
OAuth2Authz::seed_consent('c-c1', client_id => 'tpp-c', scope => 'accounts payments',
                          created => 1800000000, expires => 4102444800);
--- request
GET /consents/c-c1
--- more_headers eval
$::Auth
--- error_code: 200
--- response_headers
Content-Type: application/json
Cache-Control: no-store
Pragma: no-cache
--- response_body chomp
{"consentId":"c-c1","status":"valid","clientId":"tpp-c","scope":"accounts payments","created":1800000000,"expires":4102444800}



=== TEST 2: a revoked consent: invalid
--- init
OAuth2Authz::seed_client('tpp-c', 's3cret-c');
OAuth2Authz::seed_consent('c-c2', client_id => 'tpp-c', status => 'revoked',
                          created => 1800000000, expires => 4102444800);
--- request
GET /consents/c-c2
--- more_headers eval
$::Auth
--- error_code: 200
--- response_body chomp
{"consentId":"c-c2","status":"invalid","clientId":"tpp-c","scope":"accounts","created":1800000000,"expires":4102444800}



=== TEST 3: an expired consent (its key is kept 30 days more): invalid
--- init
OAuth2Authz::seed_client('tpp-c', 's3cret-c');
OAuth2Authz::seed_consent('c-c3', client_id => 'tpp-c',
                          created => 1700000000, expires => 1700000100);
--- request
GET /consents/c-c3
--- more_headers eval
$::Auth
--- error_code: 200
--- response_body chomp
{"consentId":"c-c3","status":"invalid","clientId":"tpp-c","scope":"accounts","created":1700000000,"expires":1700000100}



=== TEST 4: another client's consent: 404, as an unknown one
--- init
OAuth2Authz::seed_client('tpp-c2', 's3cret-c2');
OAuth2Authz::seed_consent('c-c4', client_id => 'tpp-c');
--- request
GET /consents/c-c4
--- more_headers eval
OAuth2Authz::basic('tpp-c2', 's3cret-c2')
--- error_code: 404
--- response_headers
Content-Type: application/json
--- response_body chomp
{"error":"not_found"}
--- error_log
oauth2: client "tpp-c2" asked for consent "c-c4", unknown or not its own



=== TEST 5: an unknown consent: 404
--- request
GET /consents/no-such-consent
--- more_headers eval
$::Auth
--- error_code: 404
--- response_body chomp
{"error":"not_found"}



=== TEST 6: no id: 404
--- request
GET /consents/
--- more_headers eval
$::Auth
--- error_code: 404
--- response_body chomp
{"error":"not_found"}



=== TEST 7: no Authorization: 401 invalid_client, WWW-Authenticate Basic
--- request
GET /consents/c-c1
--- error_code: 401
--- response_headers
Content-Type: application/json
WWW-Authenticate: Basic realm="api"
--- response_body chomp
{"error":"invalid_client"}



=== TEST 8: a wrong secret: 401 invalid_client
--- request
GET /consents/c-c1
--- more_headers eval
OAuth2Authz::basic('tpp-c', 'nope')
--- error_code: 401
--- response_headers
WWW-Authenticate: Basic realm="api"
--- response_body chomp
{"error":"invalid_client"}



=== TEST 9: POST: 405, Allow: GET, DELETE
--- request
POST /consents/c-c1
x=y
--- more_headers eval
$::Form . $::Auth
--- error_code: 405
--- response_headers
Allow: GET, DELETE
--- response_body chomp
{"error":"invalid_request"}



=== TEST 10: a token behind a valid consent passes the gateway
--- init
OAuth2Authz::seed_client('tpp-c', 's3cret-c');
OAuth2Authz::seed_consent('c-c10', client_id => 'tpp-c');
OAuth2Test::seed_token('tok-c10', client_id => 'tpp-c', scope => 'accounts',
                       consent_id => 'c-c10');
OAuth2Authz::seed_refresh('rt-c10', client_id => 'tpp-c',
                          consent_id => 'c-c10');
--- request
GET /api
--- more_headers
Authorization: Bearer tok-c10
--- error_code: 200
--- response_body
ok



=== TEST 11: DELETE by another client: 404, nothing changes
--- init
--- request
DELETE /consents/c-c10
--- more_headers eval
OAuth2Authz::basic('tpp-c2', 's3cret-c2')
--- error_code: 404
--- response_body chomp
{"error":"not_found"}



=== TEST 12: ... the consent is still valid
--- init
--- request
GET /api
--- more_headers
Authorization: Bearer tok-c10
--- error_code: 200



=== TEST 13: DELETE by its client: 204
--- init
--- request
DELETE /consents/c-c10
--- more_headers eval
$::Auth
--- error_code: 204
--- response_headers
Cache-Control: no-store
--- response_body chomp
--- error_log
oauth2: client "tpp-c" revoked consent "c-c10"



=== TEST 14: from the next request on, the unexpired token gets the gateway's 403
--- init
--- request
GET /api
--- more_headers
Authorization: Bearer tok-c10
--- error_code: 403
--- response_body eval
$::Forbidden



=== TEST 15: ... its refresh token gets invalid_grant
--- init
--- request
POST /oauth2/token
grant_type=refresh_token&refresh_token=rt-c10
--- more_headers eval
$::Form . $::Auth
--- error_code: 401
--- response_body chomp
{"error":"invalid_grant"}



=== TEST 16: ... and its details say invalid, revoked in Redis
--- init
Test::More::is(OAuth2Authz::hgetall('oauth2:consent:c-c10')->{status},
               'revoked', 'the record says revoked');
--- request
GET /consents/c-c10
--- more_headers eval
$::Auth
--- error_code: 200
--- response_body_like eval
qr/^\{"consentId":"c-c10","status":"invalid","clientId":"tpp-c",/



=== TEST 17: Redis down: 503
--- http_config
oauth2_redis 127.0.0.1:$TEST_NGINX_DEAD_PORT;
--- init
--- request
GET /consents/c-c1
--- more_headers eval
$::Auth
--- error_code: 503
--- response_body chomp
{"error":"temporarily_unavailable"}
