# The token endpoint (oauth2_token): client authentication, the three
# grants, and every error of the bank's guide, each with its status, its
# exact body and its headers.  Codes, consents and refresh tokens are
# seeded as the module writes them (docs/redis-schema.md); the whole flow,
# with codes from the authorize endpoint, is t/114-authz-flow.t.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;
use OAuth2Authz;

our $Form = "Content-Type: application/x-www-form-urlencoded\n";
our $Auth = OAuth2Authz::basic('tpp-t', 's3cret-t') . "\n";
our $V = $OAuth2Authz::Verifier;
our $Token = qr/[A-Za-z0-9_-]{43}/;

my $default_config = <<'_EOC_';
    location = /oauth2/token {
        oauth2_token;
    }
    location = /rfc/token {
        oauth2_token;
        oauth2_token_errors rfc6749;
    }
    location = /post/token {
        oauth2_token;
        oauth2_token_client_auth client_secret_basic client_secret_post;
    }
    location = /short/token {
        oauth2_token;
        oauth2_access_token_ttl 2s;
        oauth2_refresh_token_ttl 1h;
    }
    location = /quick/token {
        oauth2_token;
        oauth2_code_ttl 2s;
    }
_EOC_

OAuth2Blocks::defaults(
    http_config => "oauth2_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;\n",
    config => $default_config,
    init => <<'_I_',
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_client('tpp-t2', 's3cret-t2');
OAuth2Authz::seed_client('tpp-off', 's3cret-off', subscribed => '0');
OAuth2Authz::seed_client('tpp-cc', 's3cret-cc',
    grant_types => 'client_credentials', scopes => 'accounts reports');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
_I_
    more => sub {
        my $block = shift;
        if (!defined $block->response_headers && $block->error_code
            && $block->error_code != 200)
        {
            $block->set_value('response_headers', <<'_H_');
Content-Type: application/json
Cache-Control: no-store
Pragma: no-cache
_H_
        }
    },
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: authorization_code: 200, the tokens, no-store
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_code('code-t1', client_id => 'tpp-t', consent_id => 'c-t');
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=code-t1&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 200
--- response_headers
Content-Type: application/json
Cache-Control: no-store
Pragma: no-cache
--- response_body_like eval
qr/^\{"access_token":"$::Token","token_type":"Bearer","expires_in":3600,"refresh_token":"$::Token","scope":"accounts","consent_id":"c-t"\}\z/



=== TEST 2: the same code again: 400 invalid_grant (used)
--- init
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=code-t1&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}
--- error_log eval
qr/oauth2: client "tpp-t": code [0-9a-f]{6}: unknown, expired or used code/



=== TEST 3: an unknown code: 400 invalid_grant
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=no-such-code&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}



=== TEST 4: an expired code (oauth2_code_ttl is its TTL): 400 invalid_grant
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
my $k = OAuth2Authz::seed_code('code-t4', client_id => 'tpp-t',
                               consent_id => 'c-t');
OAuth2Test::redis('PEXPIRE', $k, 1);
select(undef, undef, undef, 0.05);
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=code-t4&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}



=== TEST 5: no oauth2_code_ttl for the token endpoint: the code's key's TTL alone decides (created 10 minutes ago, still there: 200)
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_code('code-t4b', client_id => 'tpp-t', consent_id => 'c-t',
                       created => time - 600);
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=code-t4b&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body_like: "access_token"



=== TEST 6: oauth2_code_ttl on the token endpoint's location: the oldest code it redeems
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_code('code-t4c', client_id => 'tpp-t', consent_id => 'c-t',
                       created => time - 3);
--- request eval
"POST /quick/token
grant_type=authorization_code&code=code-t4c&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
code older than oauth2_code_ttl



=== TEST 7: ... and a younger one it redeems: 200
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_code('code-t4d', client_id => 'tpp-t', consent_id => 'c-t',
                       created => time);
--- request eval
"POST /quick/token
grant_type=authorization_code&code=code-t4d&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body_like: "access_token"



=== TEST 8: ... and a code whose created is not digits: 400 invalid_grant
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_code('code-t4e', client_id => 'tpp-t', consent_id => 'c-t',
                       created => 'junk');
--- request eval
"POST /quick/token
grant_type=authorization_code&code=code-t4e&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
code with an unusable created



=== TEST 9: a code issued to another client: 400 invalid_grant, and it is spent
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_client('tpp-t2', 's3cret-t2');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_code('code-t5', client_id => 'tpp-t', consent_id => 'c-t');
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=code-t5&code_verifier=$::V"
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-t2', 's3cret-t2')
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
code of another client



=== TEST 10: redirect_uri other than the authorize request's: 400 invalid_grant
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_code('code-t6', client_id => 'tpp-t', consent_id => 'c-t');
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=code-t6&redirect_uri=https%3A%2F%2Ftpp.example%2Fother&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
redirect_uri is not the authorization request's



=== TEST 11: redirect_uri missing when the authorize request had one: 400 invalid_grant
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_code('code-t7', client_id => 'tpp-t', consent_id => 'c-t');
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=code-t7&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}



=== TEST 12: a code_verifier that does not match: 400 invalid_grant
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_code('code-t8', client_id => 'tpp-t', consent_id => 'c-t');
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=code-t8&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&code_verifier=" . ('w' x 43)
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
code_verifier does not match the code_challenge



=== TEST 13: no code_verifier for a code with a challenge: 400 invalid_grant
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_code('code-t9', client_id => 'tpp-t', consent_id => 'c-t');
--- request
POST /oauth2/token
grant_type=authorization_code&code=code-t9&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}



=== TEST 14: a code_verifier for a code without a challenge: 400 invalid_grant
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_code('code-t10', client_id => 'tpp-t', consent_id => 'c-t',
                       code_challenge => '');
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=code-t10&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}



=== TEST 15: a code whose consent was revoked meanwhile: 400 invalid_grant
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t11', client_id => 'tpp-t', status => 'revoked');
OAuth2Authz::seed_code('code-t11', client_id => 'tpp-t',
                       consent_id => 'c-t11');
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=code-t11&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
consent is not valid



=== TEST 16: authorization_code without a code: 400 invalid_request
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 17: a refresh_token with grant_type=authorization_code: 400 invalid_request
--- request
POST /oauth2/token
grant_type=authorization_code&refresh_token=abc
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 18: both code and refresh_token: 400 invalid_request
--- request
POST /oauth2/token
grant_type=authorization_code&code=abc&refresh_token=abc
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 19: both, with grant_type=refresh_token: 400 invalid_request
--- request
POST /oauth2/token
grant_type=refresh_token&code=abc&refresh_token=abc
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 20: refresh_token grant without a refresh_token: 400 invalid_request
--- request
POST /oauth2/token
grant_type=refresh_token
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 21: an unknown grant_type: 400 unknown (the guide's name)
--- request
POST /oauth2/token
grant_type=password&username=a&password=b
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"unknown"}



=== TEST 22: oauth2_token_errors rfc6749: unsupported_grant_type
--- request
POST /rfc/token
grant_type=password&username=a&password=b
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"unsupported_grant_type"}



=== TEST 23: no grant_type: 400 unknown
--- request
POST /oauth2/token
code=abc
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"unknown"}



=== TEST 24: no grant_type, rfc6749: 400 invalid_request
--- request
POST /rfc/token
code=abc
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 25: no Authorization header: 401 invalid_client, WWW-Authenticate Basic
--- request
POST /oauth2/token
grant_type=authorization_code&code=abc
--- more_headers eval
$::Form
--- error_code: 401
--- response_headers
Content-Type: application/json
Cache-Control: no-store
Pragma: no-cache
WWW-Authenticate: Basic realm="api"
--- response_body chomp
{"error":"invalid_client"}



=== TEST 26: a malformed Authorization header: 401 invalid_client
--- request
POST /oauth2/token
grant_type=authorization_code&code=abc
--- more_headers eval
$::Form . "Authorization: Basic !!!notbase64\n"
--- error_code: 401
--- response_headers
WWW-Authenticate: Basic realm="api"
--- response_body chomp
{"error":"invalid_client"}
--- error_log
malformed Authorization header



=== TEST 27: Basic without a colon: 401 invalid_client
--- request
POST /oauth2/token
grant_type=authorization_code&code=abc
--- more_headers eval
$::Form . "Authorization: Basic " . MIME::Base64::encode_base64('tpp-t', '') . "\n"
--- error_code: 401
--- response_headers
WWW-Authenticate: Basic realm="api"
--- response_body chomp
{"error":"invalid_client"}



=== TEST 28: a Bearer header instead of Basic: 401 invalid_client
--- request
POST /oauth2/token
grant_type=authorization_code&code=abc
--- more_headers eval
$::Form . "Authorization: Bearer abc\n"
--- error_code: 401
--- response_headers
WWW-Authenticate: Basic realm="api"
--- response_body chomp
{"error":"invalid_client"}



=== TEST 29: a wrong secret: 401 invalid_client, the secret not logged
--- request
POST /oauth2/token
grant_type=authorization_code&code=abc
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-t', 'Not-The-Secret-42')
--- error_code: 401
--- response_headers
WWW-Authenticate: Basic realm="api"
--- response_body chomp
{"error":"invalid_client"}
--- error_log
oauth2: client "tpp-t" sent a wrong secret
--- no_error_log
Not-The-Secret-42
[alert]



=== TEST 30: an unknown client: 401 invalid_client
--- request
POST /oauth2/token
grant_type=authorization_code&code=abc
--- more_headers eval
$::Form . OAuth2Authz::basic('nobody', 's3cret-t')
--- error_code: 401
--- response_headers
WWW-Authenticate: Basic realm="api"
--- response_body chomp
{"error":"invalid_client"}
--- error_log
oauth2: client "nobody" is unknown



=== TEST 31: a client that is not subscribed: 401 invalid_client
--- request
POST /oauth2/token
grant_type=client_credentials
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-off', 's3cret-off')
--- error_code: 401
--- response_body chomp
{"error":"invalid_client"}
--- error_log
oauth2: client "tpp-off" is not subscribed



=== TEST 32: refresh_token: 200, a new pair
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_refresh('rt-t28', client_id => 'tpp-t', consent_id => 'c-t');
--- request
POST /oauth2/token
grant_type=refresh_token&refresh_token=rt-t28
--- more_headers eval
$::Form . $::Auth
--- error_code: 200
--- response_headers
Content-Type: application/json
Cache-Control: no-store
Pragma: no-cache
--- response_body_like eval
qr/^\{"access_token":"$::Token","token_type":"Bearer","expires_in":3600,"refresh_token":"$::Token","scope":"accounts","consent_id":"c-t"\}\z/



=== TEST 33: the same refresh token again: 401 invalid_grant (rotated)
--- init
--- request
POST /oauth2/token
grant_type=refresh_token&refresh_token=rt-t28
--- more_headers eval
$::Form . $::Auth
--- error_code: 401
--- response_body chomp
{"error":"invalid_grant"}



=== TEST 34: an unknown refresh token: 401 invalid_grant
--- request
POST /oauth2/token
grant_type=refresh_token&refresh_token=no-such-token
--- more_headers eval
$::Form . $::Auth
--- error_code: 401
--- response_body chomp
{"error":"invalid_grant"}
--- error_log eval
qr/refresh token [0-9a-f]{6}: unknown, expired or used refresh token/



=== TEST 35: an expired refresh token: 401 invalid_grant
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
my $k = OAuth2Authz::seed_refresh('rt-t31', client_id => 'tpp-t',
                                  consent_id => 'c-t');
OAuth2Test::redis('PEXPIRE', $k, 1);
select(undef, undef, undef, 0.05);
--- request
POST /oauth2/token
grant_type=refresh_token&refresh_token=rt-t31
--- more_headers eval
$::Form . $::Auth
--- error_code: 401
--- response_body chomp
{"error":"invalid_grant"}



=== TEST 36: a refresh whose consent was revoked: 401 invalid_grant
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t32', client_id => 'tpp-t', status => 'revoked');
OAuth2Authz::seed_refresh('rt-t32', client_id => 'tpp-t',
                          consent_id => 'c-t32');
--- request
POST /oauth2/token
grant_type=refresh_token&refresh_token=rt-t32
--- more_headers eval
$::Form . $::Auth
--- error_code: 401
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
consent is not valid



=== TEST 37: a refresh whose consent expired: 401 invalid_grant
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t33', client_id => 'tpp-t',
                          expires => time - 1);
OAuth2Authz::seed_refresh('rt-t33', client_id => 'tpp-t',
                          consent_id => 'c-t33');
--- request
POST /oauth2/token
grant_type=refresh_token&refresh_token=rt-t33
--- more_headers eval
$::Form . $::Auth
--- error_code: 401
--- response_body chomp
{"error":"invalid_grant"}



=== TEST 38: another client's refresh token: 401 invalid_grant
--- init
OAuth2Authz::seed_client('tpp-t2', 's3cret-t2');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_refresh('rt-t34', client_id => 'tpp-t', consent_id => 'c-t');
--- request
POST /oauth2/token
grant_type=refresh_token&refresh_token=rt-t34
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-t2', 's3cret-t2')
--- error_code: 401
--- response_body chomp
{"error":"invalid_grant"}



=== TEST 39: rfc6749: invalid_grant of a refresh is a 400
--- request
POST /rfc/token
grant_type=refresh_token&refresh_token=no-such-token
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}



=== TEST 40: a refresh with a scope beyond the grant's: 400 invalid_scope
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_refresh('rt-t36', client_id => 'tpp-t', consent_id => 'c-t');
--- request
POST /oauth2/token
grant_type=refresh_token&refresh_token=rt-t36&scope=accounts+payments
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_scope"}



=== TEST 41: client_credentials for a client whose record allows it: 200, no refresh token, no consent
--- request
POST /oauth2/token
grant_type=client_credentials&scope=reports
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 200
--- response_body_like eval
qr/^\{"access_token":"$::Token","token_type":"Bearer","expires_in":3600,"scope":"reports"\}\z/



=== TEST 42: client_credentials without a scope: the client's scopes
--- request
POST /oauth2/token
grant_type=client_credentials
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 200
--- response_body_like eval
qr/"scope":"accounts reports"\}\z/



=== TEST 43: client_credentials for a client whose record does not allow it: 400 unauthorized_client
--- request
POST /oauth2/token
grant_type=client_credentials
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"unauthorized_client"}



=== TEST 44: client_credentials with a scope the client does not have: 400 invalid_scope
--- request
POST /oauth2/token
grant_type=client_credentials&scope=payments
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 400
--- response_body chomp
{"error":"invalid_scope"}



=== TEST 45: a client without authorization_code in grant_types: 400 unauthorized_client
--- request
POST /oauth2/token
grant_type=authorization_code&code=abc
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 400
--- response_body chomp
{"error":"unauthorized_client"}



=== TEST 46: a Content-Type other than a form: 400 unknown
--- request
POST /oauth2/token
{"grant_type":"client_credentials"}
--- more_headers eval
"Content-Type: application/json\n" . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 400
--- response_body chomp
{"error":"unknown"}



=== TEST 47: no Content-Type: 400 unknown
--- request
POST /oauth2/token
grant_type=client_credentials
--- more_headers eval
OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 400
--- response_body chomp
{"error":"unknown"}



=== TEST 48: the form's Content-Type with a charset: fine
--- request
POST /oauth2/token
grant_type=client_credentials
--- more_headers eval
"Content-Type: application/x-www-form-urlencoded; charset=UTF-8\n" . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 200
--- response_body_like eval
qr/"token_type":"Bearer"/



=== TEST 49: a duplicated parameter: 400 unknown
--- request
POST /oauth2/token
grant_type=client_credentials&grant_type=client_credentials
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 400
--- response_body chomp
{"error":"unknown"}



=== TEST 50: a duplicated parameter, rfc6749: 400 invalid_request
--- request
POST /rfc/token
grant_type=client_credentials&scope=reports&scope=accounts
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 51: a parameter that is not UTF-8: 400 unknown
--- request
POST /oauth2/token
grant_type=client_credentials&scope=reports%C3%28
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 400
--- response_body chomp
{"error":"unknown"}



=== TEST 52: an unknown parameter that is not UTF-8 text either: 400 unknown
--- request
POST /oauth2/token
grant_type=client_credentials&x=%FF
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 400
--- response_body chomp
{"error":"unknown"}



=== TEST 53: a control character: 400 unknown
--- request
POST /oauth2/token
grant_type=client_credentials&scope=reports%0D%0AX-Injected:+yes
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 400
--- response_body chomp
{"error":"unknown"}



=== TEST 54: a broken percent-encoding: 400 unknown
--- request
POST /oauth2/token
grant_type=client_credentials&scope=%zz
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 400
--- response_body chomp
{"error":"unknown"}



=== TEST 55: a redirect_uri with a fragment: 400 invalid_grant, not the authorize request's
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_code('code-t51', client_id => 'tpp-t', consent_id => 'c-t');
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=code-t51&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb%23frag&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
redirect_uri is not the authorization request's



=== TEST 56: a code_verifier that is not 43 to 128 unreserved characters: 400 invalid_grant, it does not match
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
OAuth2Authz::seed_code('code-t52', client_id => 'tpp-t', consent_id => 'c-t');
--- request
POST /oauth2/token
grant_type=authorization_code&code=code-t52&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&code_verifier=short
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
code_verifier does not match the code_challenge



=== TEST 57: ... and the code is spent: the right verifier now gets 400 invalid_grant
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=code-t52&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
unknown, expired or used code



=== TEST 58: a code_verifier that breaks RFC 7636's grammar never matches, even when its hash is the challenge
--- init
OAuth2Authz::seed_client('tpp-t', 's3cret-t');
OAuth2Authz::seed_consent('c-t', client_id => 'tpp-t');
my (undef, $c) = OAuth2Authz::pkce('short');
OAuth2Authz::seed_code('code-tpk', client_id => 'tpp-t', consent_id => 'c-t',
                       code_challenge => $c);
--- request
POST /oauth2/token
grant_type=authorization_code&code=code-tpk&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&code_verifier=short
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
code_verifier does not match the code_challenge



=== TEST 59: a code no code can be (a space, over 512 bytes): 400 invalid_grant
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=" . ('c' x 513) . "&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
with a code that no code can be (unknown)



=== TEST 60: a code with a space: 400 invalid_grant
--- request eval
"POST /oauth2/token
grant_type=authorization_code&code=a+b&code_verifier=$::V"
--- more_headers eval
$::Form . $::Auth
--- error_code: 400
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
with a code that no code can be (unknown)



=== TEST 61: a refresh token no token can be: 401 invalid_grant
--- request eval
"POST /oauth2/token
grant_type=refresh_token&refresh_token=" . ('r' x 600)
--- more_headers eval
$::Form . $::Auth
--- error_code: 401
--- response_body chomp
{"error":"invalid_grant"}
--- error_log
with a refresh_token that no token can be (unknown)



=== TEST 62: a body over 16k: 413 invalid_request, not read
--- request eval
"POST /oauth2/token
grant_type=client_credentials&x=" . ('a' x 17000)
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 413
--- response_body chomp
{"error":"invalid_request"}
--- error_log eval
qr/oauth2: a request body of 17032 bytes refused, (8192|16384) at most/



=== TEST 63: a body over client_max_body_size (1m by default): the same JSON 413, not nginx's page
--- request eval
"POST /oauth2/token
grant_type=client_credentials&x=" . ('a' x 2000000)
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 413
--- response_headers
Content-Type: application/json
Cache-Control: no-store
Pragma: no-cache
--- response_body chomp
{"error":"invalid_request"}
--- no_error_log
client intended to send too large body



=== TEST 64: client_max_body_size smaller than the endpoint's own limit: it counts, the JSON 413
--- config
    location = /oauth2/token {
        client_max_body_size 100;
        oauth2_token;
    }
--- request eval
"POST /oauth2/token
grant_type=client_credentials&x=" . ('a' x 200)
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 413
--- response_body chomp
{"error":"invalid_request"}
--- error_log eval
qr/oauth2: a request body of 232 bytes refused, 100 at most/



=== TEST 65: a chunked body: 411 invalid_request
--- raw_request eval
"POST /oauth2/token HTTP/1.1\r
Host: localhost\r
Connection: close\r
Content-Type: application/x-www-form-urlencoded\r
" . OAuth2Authz::basic('tpp-cc', 's3cret-cc') . "\r
Transfer-Encoding: chunked\r
\r
1d\r
grant_type=client_credentials\r
0\r
\r
"
--- error_code: 411
--- response_body chomp
{"error":"invalid_request"}



=== TEST 66: GET: 405, Allow: POST
--- request
GET /oauth2/token?grant_type=client_credentials
--- more_headers eval
OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 405
--- response_headers
Allow: POST
Content-Type: application/json
--- response_body chomp
{"error":"invalid_request"}



=== TEST 67: client_secret_post where only Basic is allowed: 401 invalid_client
--- request
POST /oauth2/token
grant_type=client_credentials&client_id=tpp-cc&client_secret=s3cret-cc
--- more_headers eval
$::Form
--- error_code: 401
--- response_headers
WWW-Authenticate: Basic realm="api"
--- response_body chomp
{"error":"invalid_client"}



=== TEST 68: client_secret_post where oauth2_token_client_auth allows it: 200
--- request
POST /post/token
grant_type=client_credentials&client_id=tpp-cc&client_secret=s3cret-cc
--- more_headers eval
$::Form
--- error_code: 200
--- response_body_like eval
qr/"token_type":"Bearer"/



=== TEST 69: client_secret_post with a wrong secret: 401 invalid_client
--- request
POST /post/token
grant_type=client_credentials&client_id=tpp-cc&client_secret=nope
--- more_headers eval
$::Form
--- error_code: 401
--- response_body chomp
{"error":"invalid_client"}



=== TEST 70: both Basic and client_secret_post: 400 invalid_request
--- request
POST /post/token
grant_type=client_credentials&client_id=tpp-cc&client_secret=s3cret-cc
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 71: a client_id in the form that is not the header's: 400 invalid_request
--- request
POST /oauth2/token
grant_type=client_credentials&client_id=tpp-t
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 72: Basic credentials are form-urlencoded (RFC 6749 2.3.1)
--- init
OAuth2Authz::seed_client('tpp:c/1', 'pa ss:w%rd',
                         grant_types => 'client_credentials',
                         scopes => 'reports');
--- request
POST /oauth2/token
grant_type=client_credentials
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp%3Ac%2F1', 'pa+ss%3Aw%25rd')
--- error_code: 200
--- response_body_like eval
qr/"scope":"reports"/



=== TEST 73: Redis down: 503 temporarily_unavailable, Retry-After
--- http_config
oauth2_redis 127.0.0.1:$TEST_NGINX_DEAD_PORT;
--- init
--- request
POST /oauth2/token
grant_type=client_credentials
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 503
--- response_headers
Content-Type: application/json
Cache-Control: no-store
Retry-After: 1
--- response_body chomp
{"error":"temporarily_unavailable"}



=== TEST 74: an access token shorter lived: oauth2_access_token_ttl
--- request
POST /short/token
grant_type=client_credentials
--- more_headers eval
$::Form . OAuth2Authz::basic('tpp-cc', 's3cret-cc')
--- error_code: 200
--- response_body_like eval
qr/"expires_in":2,/
