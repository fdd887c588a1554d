# The consent behind the token: only status "valid" lets a request through;
# revoked, expired (key gone) or absent consent is a 403 even while the
# token is valid.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;

our $Forbidden = '{"httpCode":"403","httpMessage":"Forbidden",'
    . '"moreInformation":"Forbidden"}';

my $default_config = <<'_EOC_';
    location /accounts {
        oauth2 on;
        oauth2_scope accounts;
        add_header X-OAuth2-Status $oauth2_status always;
        proxy_set_header X-Consent $oauth2_consent_id;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }

    location /backend {
        return 200 "consent=$http_x_consent\n";
    }
_EOC_

OAuth2Blocks::defaults(
    http_config => "oauth2_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;\n",
    config => $default_config,
    request => "GET /accounts\n",
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a valid consent: 200
--- init
OAuth2Test::seed_consent('cons-1', 'valid');
OAuth2Test::seed_token('tok-c1', client_id => 'tpp-1', scope => 'accounts',
                       consent_id => 'cons-1');
--- more_headers
Authorization: Bearer tok-c1
--- error_code: 200
--- response_headers
X-OAuth2-Status: ok
--- response_body
consent=cons-1



=== TEST 2: a revoked consent: 403 while the token is valid
--- init
OAuth2Test::seed_consent('cons-2', 'revoked');
OAuth2Test::seed_token('tok-c2', client_id => 'tpp-1', scope => 'accounts',
                       consent_id => 'cons-2');
--- more_headers
Authorization: Bearer tok-c2
--- error_code: 403
--- response_headers
Content-Type: application/json
!WWW-Authenticate
X-OAuth2-Status: consent_invalid
--- response_body eval
$::Forbidden
--- error_log
oauth2: consent "cons-2" of client "tpp-1" is not valid (status "revoked")



=== TEST 3: an expired consent (its key is gone): 403
--- init
OAuth2Test::redis('DEL', 'oauth2:consent:cons-3');
OAuth2Test::seed_token('tok-c3', client_id => 'tpp-1', scope => 'accounts',
                       consent_id => 'cons-3');
--- more_headers
Authorization: Bearer tok-c3
--- error_code: 403
--- response_body eval
$::Forbidden
--- error_log
oauth2: consent "cons-3" of client "tpp-1" is not valid (status "")



=== TEST 4: a token without consent_id: 403
--- init
OAuth2Test::seed_token('tok-c4', client_id => 'tpp-1', scope => 'accounts');
--- more_headers
Authorization: Bearer tok-c4
--- error_code: 403
--- response_body eval
$::Forbidden
--- error_log
oauth2: token of client "tpp-1" has no consent



=== TEST 5: statuses are compared exactly: "VALID", "valid " are not valid
--- init
OAuth2Test::seed_consent('cons-5a', 'VALID');
OAuth2Test::seed_consent('cons-5b', 'valid ');
OAuth2Test::seed_token('tok-c5a', client_id => 'tpp-1', scope => 'accounts',
                       consent_id => 'cons-5a');
OAuth2Test::seed_token('tok-c5b', client_id => 'tpp-1', scope => 'accounts',
                       consent_id => 'cons-5b');
--- request eval
["GET /accounts", "GET /accounts"]
--- more_headers eval
["Authorization: Bearer tok-c5a", "Authorization: Bearer tok-c5b"]
--- error_code eval
[403, 403]



=== TEST 6: oauth2_consent off: the consent is not looked at
--- config
    location /accounts {
        oauth2 on;
        oauth2_consent off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "ok\n"; }
--- init
OAuth2Test::seed_token('tok-c7', client_id => 'tpp-cc', scope => 'accounts');
--- more_headers
Authorization: Bearer tok-c7
--- error_code: 200
--- response_body
ok



=== TEST 7: the scope is checked before the consent
--- init
OAuth2Test::seed_consent('cons-8', 'revoked');
OAuth2Test::seed_token('tok-c8', client_id => 'tpp-1', scope => 'payments',
                       consent_id => 'cons-8');
--- more_headers
Authorization: Bearer tok-c8
--- error_code: 403
--- response_headers
WWW-Authenticate: Bearer realm="api", error="insufficient_scope", scope="accounts"
X-OAuth2-Status: insufficient_scope



=== TEST 8: a consent key of the wrong type: 403, not a 503
--- init
OAuth2Test::redis('DEL', 'oauth2:consent:cons-9');
OAuth2Test::redis('SET', 'oauth2:consent:cons-9', 'valid');
OAuth2Test::seed_token('tok-c9', client_id => 'tpp-1', scope => 'accounts',
                       consent_id => 'cons-9');
--- more_headers
Authorization: Bearer tok-c9
--- request
GET /accounts
--- error_code: 403
--- response_body eval
$::Forbidden
