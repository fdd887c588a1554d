# oauth2_scope (all of them) and oauth2_scope_any (one of them).

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;

our $Forbidden = '{"httpCode":"403","httpMessage":"Forbidden",'
    . '"moreInformation":"Forbidden"}';

my $default_http_config = <<'_EOC_';
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_consent off;
_EOC_

my $backend = <<'_EOC_';
    location /backend {
        return 200 "ok $http_x_scope\n";
    }
_EOC_

OAuth2Blocks::defaults(
    http_config => $default_http_config,
    more => sub {
        my $block = shift;
        $block->set_value('config', $block->config . $backend);
    },
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the required scope is granted: 200
--- config
    location /payments {
        oauth2 on;
        oauth2_scope paymentRequest;
        proxy_set_header X-Scope $oauth2_scope;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- init
OAuth2Test::seed_token('tok-pay', client_id => 'tpp-1',
                       scope => 'accounts paymentRequest');
--- more_headers
Authorization: Bearer tok-pay
--- request
GET /payments
--- error_code: 200
--- response_body
ok accounts paymentRequest



=== TEST 2: the required scope is missing: 403 insufficient_scope
--- config
    location /payments {
        oauth2 on;
        oauth2_scope paymentRequest;
        add_header X-OAuth2-Status $oauth2_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- init
OAuth2Test::seed_token('tok-acc', client_id => 'tpp-1', scope => 'accounts');
--- more_headers
Authorization: Bearer tok-acc
--- request
GET /payments
--- error_code: 403
--- response_headers
Content-Type: application/json
WWW-Authenticate: Bearer realm="api", error="insufficient_scope", scope="paymentRequest"
X-OAuth2-Status: insufficient_scope
--- response_body eval
$::Forbidden
--- error_log
oauth2: client "tpp-1" lacks scope "paymentRequest"



=== TEST 3: scopes match whole words only
--- config
    location /payments {
        oauth2 on;
        oauth2_scope paymentRequest;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- init
OAuth2Test::seed_token('tok-sub', client_id => 'tpp-1',
                       scope => 'paymentRequests xpaymentRequest payment');
--- more_headers
Authorization: Bearer tok-sub
--- request
GET /payments
--- error_code: 403
--- response_body eval
$::Forbidden



=== TEST 4: every scope of oauth2_scope is needed
--- config
    location /both {
        oauth2 on;
        oauth2_scope accounts balances;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- init
OAuth2Test::seed_token('tok-one', client_id => 'tpp-1', scope => 'accounts');
OAuth2Test::seed_token('tok-two', client_id => 'tpp-1',
                       scope => 'balances  accounts');
--- request eval
["GET /both", "GET /both"]
--- more_headers eval
["Authorization: Bearer tok-one", "Authorization: Bearer tok-two"]
--- error_code eval
[403, 200]
--- response_headers eval
['WWW-Authenticate: Bearer realm="api", error="insufficient_scope", scope="accounts balances"', '!WWW-Authenticate']



=== TEST 5: oauth2_scope_any: one of them is enough
--- config
    location /read {
        oauth2 on;
        oauth2_scope_any accounts payments;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- init
OAuth2Test::seed_token('tok-any1', client_id => 'tpp-1', scope => 'payments');
OAuth2Test::seed_token('tok-any2', client_id => 'tpp-1', scope => 'other');
--- request eval
["GET /read", "GET /read"]
--- more_headers eval
["Authorization: Bearer tok-any1", "Authorization: Bearer tok-any2"]
--- error_code eval
[200, 403]
--- response_headers eval
['!WWW-Authenticate', 'WWW-Authenticate: Bearer realm="api", error="insufficient_scope", scope="accounts payments"']



=== TEST 6: oauth2_scope_any refusal is logged
--- config
    location /read {
        oauth2 on;
        oauth2_scope_any accounts payments;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- init
OAuth2Test::seed_token('tok-any3', client_id => 'tpp-3', scope => 'other');
--- more_headers
Authorization: Bearer tok-any3
--- request
GET /read
--- error_code: 403
--- error_log
oauth2: client "tpp-3" has none of the scopes of "oauth2_scope_any"



=== TEST 7: oauth2_scope and oauth2_scope_any together
--- config
    location /mixed {
        oauth2 on;
        oauth2_scope openid;
        oauth2_scope_any accounts payments;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- init
OAuth2Test::seed_token('tok-m1', client_id => 'tpp-1', scope => 'openid payments');
OAuth2Test::seed_token('tok-m2', client_id => 'tpp-1', scope => 'payments');
--- request eval
["GET /mixed", "GET /mixed"]
--- more_headers eval
["Authorization: Bearer tok-m1", "Authorization: Bearer tok-m2"]
--- error_code eval
[200, 403]
--- response_headers eval
['!WWW-Authenticate', 'WWW-Authenticate: Bearer realm="api", error="insufficient_scope", scope="openid accounts payments"']



=== TEST 8: scopes are inherited from the server, a location replaces them
--- config
    oauth2 on;
    oauth2_scope accounts;

    location /accounts {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }

    location /payments {
        oauth2_scope paymentRequest;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- init
OAuth2Test::seed_token('tok-inh', client_id => 'tpp-1', scope => 'accounts');
--- request eval
["GET /accounts", "GET /payments"]
--- more_headers eval
["Authorization: Bearer tok-inh", "Authorization: Bearer tok-inh"]
--- error_code eval
[200, 403]



=== TEST 9: a record without scope gets no scoped location
--- config
    location /payments {
        oauth2 on;
        oauth2_scope paymentRequest;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /any {
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- init
OAuth2Test::seed_token('tok-noscope', client_id => 'tpp-1', scope => '');
--- request eval
["GET /payments", "GET /any"]
--- more_headers eval
["Authorization: Bearer tok-noscope", "Authorization: Bearer tok-noscope"]
--- error_code eval
[403, 200]



=== TEST 10: scopes set in the http block reach WWW-Authenticate
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_consent off;
    oauth2_scope openid;
    oauth2_scope_any accounts payments;
--- config
    location /http-level {
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
--- init
OAuth2Test::seed_token('tok-http', client_id => 'tpp-1', scope => 'openid');
--- more_headers
Authorization: Bearer tok-http
--- request
GET /http-level
--- error_code: 403
--- response_headers
WWW-Authenticate: Bearer realm="api", error="insufficient_scope", scope="openid accounts payments"
