# The boundary where Redis records and JWT claims become decisions,
# variables, upstream headers and log lines: a field that could end a
# header line refuses the token, free text is escaped, an empty consent
# id is no consent, a garbage rate-limit key does not deny a client, and
# subrequests into protected locations are checked.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;
use OAuth2JWT;

our $Unauthorized = '{"httpCode":"401","httpMessage":"Unauthorized",'
    . '"moreInformation":"This server could not verify that you are '
    . 'authorized to access the URL"}';
our $Forbidden = '{"httpCode":"403","httpMessage":"Forbidden",'
    . '"moreInformation":"Forbidden"}';

OAuth2JWT::setup();

our %T;
{
    my $S = \&OAuth2JWT::sign;
    my %base = (client_id => 'tpp-b', scope => 'accounts', sub => 'psu-b',
                jti => 'jti-b');
    %T = (
        ok        => $S->('HS256', { %base, name => "Jane\r\nX-Injected: yes" }),
        client    => $S->('HS256', { %base,
                                     client_id => "tpp\r\nX-Injected: yes" }),
        azp       => $S->('HS256', { %base, client_id => undef,
                                     azp => "tpp\nX-Injected: yes" }),
        sub       => $S->('HS256', { %base, sub => "psu\r\nX-Injected: yes" }),
        subspace  => $S->('HS256', { %base, sub => 'Jane Doe' }),
        scope     => $S->('HS256', { %base,
                                     scope => "accounts\r\nX-Injected: yes" }),
        scparr    => $S->('HS256', { %base, scope => undef,
                                     scp => ['accounts', 'a b'] }),
        consent   => $S->('HS256', { %base, consent_id => "c\r\nX: y" }),
        plan      => $S->('HS256', { %base, plan => "gold\r\nX: y" }),
        jti       => $S->('HS256', { %base, jti => "j\r\nX: y" }),
        client256 => $S->('HS256', { %base, client_id => 'c' x 256 }),
        kid       => OAuth2JWT::sign_raw('HS256',
                        '{"alg":"HS256","kid":"a\nb\"c"}',
                        '{"client_id":"a","exp":' . (time + 3600) . '}'),
        alg       => OAuth2JWT::sign_raw('HS256',
                        '{"alg":"HS256\r\nX"}',
                        '{"client_id":"a","exp":' . (time + 3600) . '}'),
        typ       => OAuth2JWT::sign_raw('HS256',
                        '{"alg":"HS256","typ":"x\u0001\n"}',
                        '{"client_id":"a","exp":' . (time + 3600) . '}'),
    );
}

my $default_http_config = <<'_EOC_';
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_jwt_key HS256 $TEST_NGINX_JWT_DIR/hs.secret;
    oauth2_plan p1 100r/h;
    oauth2_default_plan p1;
_EOC_

my $default_config = <<'_EOC_';
    location /api {
        oauth2 on;
        oauth2_scope accounts;
        proxy_set_header X-Client-Id $oauth2_client_id;
        proxy_set_header X-Sub $oauth2_sub;
        proxy_set_header X-Scope $oauth2_scope;
        proxy_set_header X-Consent $oauth2_consent_id;
        proxy_set_header X-Plan $oauth2_plan;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /jwt {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_consent off;
        oauth2_scope accounts;
        proxy_set_header X-Client-Id $oauth2_client_id;
        proxy_set_header X-Name $oauth2_jwt_claim_name;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "client=$http_x_client_id name=$http_x_name injected=$http_x_injected\n";
    }
_EOC_

OAuth2Blocks::defaults(
    http_config => $default_http_config,
    config => $default_config,
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a record whose client_id would add an upstream header: 401
--- init
OAuth2Test::seed_valid('tok-b1', client_id => "tpp-inj\r\nX-Injected: yes",
                       scope => 'accounts');
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b1
--- error_code: 401
--- response_headers
Content-Type: application/json
WWW-Authenticate: Bearer realm="api", error="invalid_token"
--- response_body eval
$::Unauthorized
--- error_log eval
qr/\[warn\] .*oauth2: record of token [0-9a-f]{6} has a client_id of \d+ bytes that is not allowed \("tpp-inj\\x0D\\x0AX-Injected: yes"\), token refused/



=== TEST 2: a record whose sub has a line break: 401
--- init
OAuth2Test::seed_valid('tok-b2a', sub => "psu\nX-Injected: yes",
                       scope => 'accounts');
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b2a
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log eval
qr/has a sub of \d+ bytes that is not allowed \("psu\\x0AX-Injected: yes"\)/



=== TEST 3: a record whose scope has a line break: 401
--- init
OAuth2Test::seed_valid('tok-b2b', scope => "accounts\r\nX-Injected: yes");
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b2b
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log eval
qr/has a scope of \d+ bytes that is not allowed \("accounts\\x0D\\x0AX-Injected: yes"\)/



=== TEST 4: a record whose consent_id has a line break: 401
--- init
OAuth2Test::seed_token('tok-b2c', client_id => 'tpp', scope => 'accounts',
                       consent_id => "c\r\nX-Injected: yes");
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b2c
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log eval
qr/has a consent_id of \d+ bytes that is not allowed/



=== TEST 5: a record whose plan has a line break: 401
--- init
OAuth2Test::seed_valid('tok-b2d', scope => 'accounts',
                       plan => "p1\r\nX-Injected: yes");
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b2d
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log eval
qr/has a plan of \d+ bytes that is not allowed/



=== TEST 6: a clean record still passes, its fields exported as they are
--- init
OAuth2Test::seed_valid('tok-b3', client_id => 'tpp-ok', scope => 'accounts',
                       sub => 'psu@bank.example');
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b3
--- error_code: 200
--- response_body
client=tpp-ok name= injected=



=== TEST 7: an empty consent_id is no consent, even when oauth2:consent: is valid
--- init
OAuth2Test::seed_consent('', 'valid');
OAuth2Test::seed_token('tok-b4', client_id => 'tpp-b4', scope => 'accounts',
                       consent_id => '');
OAuth2Test::redis('DEL', 'oauth2:rl:{tpp-b4}:p1:100:3600000000');
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b4
--- error_code: 403
--- response_body eval
$::Forbidden
--- error_log
oauth2: token of client "tpp-b4" has no consent



=== TEST 8: ... and that request was not counted: the client's next one is its first
--- init
OAuth2Test::seed_valid('tok-b5', client_id => 'tpp-b4', scope => 'accounts');
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b5
--- error_code: 200
--- response_headers
X-RateLimit-Remaining: 99



=== TEST 9: JWT: a client_id that is not an identifier: 401
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{client}"
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log eval
qr/JWT has a client_id of \d+ bytes that is not allowed \("tpp\\x0D\\x0AX-Injected: yes"\)/



=== TEST 10: JWT: a azp that is not an identifier: 401
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{azp}"
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log eval
qr/JWT has a client_id of \d+ bytes that is not allowed/



=== TEST 11: JWT: a sub that is not an identifier: 401
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{sub}"
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log eval
qr/JWT has a sub of \d+ bytes that is not allowed/



=== TEST 12: JWT: a scope that is not an identifier: 401
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{scope}"
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log eval
qr/JWT has a scope of \d+ bytes that is not allowed/



=== TEST 13: JWT: a scp element with a space that is not an identifier: 401
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{scparr}"
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log eval
qr/JWT scope array has an element that is not a scope-token string/



=== TEST 14: JWT: a consent_id that is not an identifier: 401
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{consent}"
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log eval
qr/JWT has a consent_id of \d+ bytes that is not allowed/



=== TEST 15: JWT: a plan that is not an identifier: 401
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{plan}"
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log eval
qr/JWT has a plan of \d+ bytes that is not allowed/



=== TEST 16: JWT: a jti that is not an identifier: 401
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{jti}"
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log eval
qr/JWT jti of 7 bytes is not 1 to 255 visible ASCII characters \("j\\x0D\\x0AX: y"\)/



=== TEST 17: JWT: a client_id of 256 bytes that is not an identifier: 401
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{client256}"
--- error_code: 401
--- response_body eval
$::Unauthorized
--- error_log eval
qr/JWT has a client_id of \d+ bytes that is not allowed/



=== TEST 18: JWT: a free-text claim reaches the upstream escaped, in one header
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{ok}"
--- error_code: 200
--- response_body
client=tpp-b name=Jane\x0D\x0AX-Injected: yes injected=



=== TEST 19: JWT: a sub with a space is not an identifier: 401
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{subspace}"
--- error_code: 401
--- error_log
JWT has a sub of 8 bytes that is not allowed ("Jane Doe")



=== TEST 20: a JWT header's kid is escaped in the log line
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{kid}"
--- error_code: 401
--- error_log eval
qr/no oauth2_jwt_key for kid "a\\x0Ab\\x22c"/



=== TEST 21: a JWT header's alg is escaped in the log line
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{alg}"
--- error_code: 401
--- error_log eval
qr/JWT alg "HS256\\x0D\\x0AX" is not the key's HS256/



=== TEST 22: a JWT header's typ is escaped in the log line
--- request
GET /jwt
--- more_headers eval
"Authorization: Bearer $::T{typ}"
--- error_code: 401
--- error_log eval
qr/JWT typ "x\\x01\\x0A" is not JWT or at\+jwt/



=== TEST 23: a rate-limit key holding "nan" counts as new: 200, logged
--- init
OAuth2Test::seed_valid('tok-b11-nan', client_id => 'tpp-b11-nan',
                       scope => 'accounts');
OAuth2Test::redis('SET', 'oauth2:rl:{tpp-b11-nan}:p1:100:3600000000', 'nan',
                  'EX', 60);
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b11-nan
--- error_code: 200
--- response_headers
X-RateLimit-Remaining: 99
--- error_log eval
qr/\[warn\] .*oauth2: 1 rate-limit key\(s\) of client "tpp-b11-nan", plan "p1" held no usable counter and were counted as new/



=== TEST 24: a rate-limit key holding "inf" counts as new: 200, logged
--- init
OAuth2Test::seed_valid('tok-b11-inf', client_id => 'tpp-b11-inf',
                       scope => 'accounts');
OAuth2Test::redis('SET', 'oauth2:rl:{tpp-b11-inf}:p1:100:3600000000', 'inf',
                  'EX', 60);
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b11-inf
--- error_code: 200
--- response_headers
X-RateLimit-Remaining: 99
--- error_log eval
qr/\[warn\] .*oauth2: 1 rate-limit key\(s\) of client "tpp-b11-inf", plan "p1" held no usable counter and were counted as new/



=== TEST 25: a rate-limit key holding "1e400" counts as new: 200, logged
--- init
OAuth2Test::seed_valid('tok-b11-big', client_id => 'tpp-b11-big',
                       scope => 'accounts');
OAuth2Test::redis('SET', 'oauth2:rl:{tpp-b11-big}:p1:100:3600000000', '1e400',
                  'EX', 60);
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b11-big
--- error_code: 200
--- response_headers
X-RateLimit-Remaining: 99
--- error_log eval
qr/\[warn\] .*oauth2: 1 rate-limit key\(s\) of client "tpp-b11-big", plan "p1" held no usable counter and were counted as new/



=== TEST 26: a rate-limit key holding "99999999999999999" counts as new: 200, logged
--- init
OAuth2Test::seed_valid('tok-b11-far', client_id => 'tpp-b11-far',
                       scope => 'accounts');
OAuth2Test::redis('SET', 'oauth2:rl:{tpp-b11-far}:p1:100:3600000000', '99999999999999999',
                  'EX', 60);
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b11-far
--- error_code: 200
--- response_headers
X-RateLimit-Remaining: 99
--- error_log eval
qr/\[warn\] .*oauth2: 1 rate-limit key\(s\) of client "tpp-b11-far", plan "p1" held no usable counter and were counted as new/



=== TEST 27: a rate-limit key holding a hash counts as new: 200, logged
--- init
OAuth2Test::seed_valid('tok-b11-hash', client_id => 'tpp-b11-hash',
                       scope => 'accounts');
OAuth2Test::redis('DEL', 'oauth2:rl:{tpp-b11-hash}:p1:100:3600000000');
OAuth2Test::redis('HSET', 'oauth2:rl:{tpp-b11-hash}:p1:100:3600000000', 'a', 'b');
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b11-hash
--- error_code: 200
--- response_headers
X-RateLimit-Remaining: 99
--- error_log eval
qr/\[warn\] .*oauth2: 1 rate-limit key\(s\) of client "tpp-b11-hash", plan "p1" held no usable counter and were counted as new/



=== TEST 28: the key was made good: the next request is counted on it, nothing logged
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b11-nan
--- error_code: 200
--- response_headers
X-RateLimit-Remaining: 98
--- no_error_log
held no usable counter
[alert]
[crit]



=== TEST 29: a TAT in the past (even -inf) is a usable, full bucket: not logged
--- init
OAuth2Test::seed_valid('tok-b11-neg', client_id => 'tpp-b11-neg',
                       scope => 'accounts');
OAuth2Test::redis('SET', 'oauth2:rl:{tpp-b11-neg}:p1:100:3600000000', '-inf',
                  'EX', 60);
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b11-neg
--- error_code: 200
--- response_headers
X-RateLimit-Remaining: 99
--- no_error_log
held no usable counter
[alert]
[crit]



=== TEST 30: SSI: a protected location included from an open page is refused
--- config
    location /page {
        ssi on;
        default_type text/html;
        return 200 'before <!--# include virtual="/secret/data" --> after';
    }
    location /secret {
        oauth2 on;
        oauth2_scope accounts;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "THE SECRET";
    }
--- request
GET /page
--- error_code: 200
--- response_body_unlike: THE SECRET
--- error_log
oauth2: subrequest "/secret/data" into a protected location refused: its request was not let through by oauth2 (oauth2_subrequests)



=== TEST 31: SSI: with oauth2_subrequests off, nginx's usual behaviour (no check)
--- config
    location /page {
        ssi on;
        default_type text/html;
        return 200 'before <!--# include virtual="/secret/data" --> after';
    }
    location /secret {
        oauth2 on;
        oauth2_subrequests off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "THE SECRET";
    }
--- request
GET /page
--- error_code: 200
--- response_body chomp
before THE SECRET after



=== TEST 32: SSI: included from a page the token let through: passes, with its variables
--- init
OAuth2Test::seed_valid('tok-b14', client_id => 'tpp-b14', scope => 'accounts');
--- config
    location /page {
        oauth2 on;
        oauth2_scope accounts;
        ssi on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/html;
    }
    location /html {
        default_type text/html;
        return 200 'before <!--# include virtual="/secret/data" --> after';
    }
    location /secret {
        oauth2 on;
        oauth2_scope accounts;
        proxy_set_header X-Client-Id $oauth2_client_id;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "secret for $http_x_client_id";
    }
--- request
GET /page
--- more_headers
Authorization: Bearer tok-b14
--- error_code: 200
--- response_body chomp
before secret for tpp-b14 after



=== TEST 33: SSI: a location needing a scope the token lacks is refused
--- init
OAuth2Test::seed_valid('tok-b15', client_id => 'tpp-b15', scope => 'accounts');
--- config
    location /page {
        oauth2 on;
        oauth2_scope accounts;
        ssi on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/html;
    }
    location /html {
        default_type text/html;
        return 200 'before <!--# include virtual="/payments/data" --> after';
    }
    location /payments {
        oauth2 on;
        oauth2_scope paymentRequest;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "PAYMENTS";
    }
--- request
GET /page
--- more_headers
Authorization: Bearer tok-b15
--- error_code: 200
--- response_body_unlike: PAYMENTS
--- error_log
oauth2: subrequest "/payments/data" refused: insufficient_scope



=== TEST 34: auth_request into a protected location is no way around the check
--- config
    location /open {
        auth_request /check;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location = /check {
        internal;
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok;
    }
    location /ok {
        return 204;
    }
    location /backend {
        return 200 "THE SECRET";
    }
--- request
GET /open
--- error_code: 401
--- response_body_unlike: THE SECRET
--- error_log
oauth2: subrequest "/check" into a protected location refused



=== TEST 35: auth_request with oauth2_subrequests off: nginx runs no access phase for it (the leak this setting closes)
--- config
    location /open {
        auth_request /check;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location = /check {
        internal;
        oauth2 on;
        oauth2_subrequests off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok;
    }
    location /ok {
        return 204;
    }
    location /backend {
        return 200 "THE SECRET";
    }
--- request
GET /open
--- error_code: 200
--- response_body chomp
THE SECRET



=== TEST 36: headers a client sends under the names of the $oauth2_* headers are replaced by proxy_set_header
--- init
OAuth2Test::seed_valid('tok-b36', client_id => 'tpp-real', scope => 'accounts',
                       sub => 'psu-real');
--- config
    location /api {
        oauth2 on;
        oauth2_scope accounts;
        proxy_set_header X-Client-Id $oauth2_client_id;
        proxy_set_header X-Sub $oauth2_sub;
        proxy_set_header X-Consent-Id "";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "client=$http_x_client_id sub=$http_x_sub consent=$http_x_consent_id\n";
    }
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b36
X-Client-Id: tpp-forged
X-Sub: psu-forged
X-Consent-Id: c-forged
--- error_code: 200
--- response_body
client=tpp-real sub=psu-real consent=



=== TEST 37: a header the location does not set passes as the client sent it (why every identity header must be set or cleared)
--- init
OAuth2Test::seed_valid('tok-b37', client_id => 'tpp-real', scope => 'accounts');
--- config
    location /api {
        oauth2 on;
        oauth2_scope accounts;
        proxy_set_header X-Client-Id $oauth2_client_id;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "client=$http_x_client_id sub=$http_x_sub\n";
    }
--- request
GET /api
--- more_headers
Authorization: Bearer tok-b37
X-Client-Id: tpp-forged
X-Sub: psu-forged
--- error_code: 200
--- response_body
client=tpp-real sub=psu-forged
