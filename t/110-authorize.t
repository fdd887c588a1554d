# The authorization endpoint (oauth2_authorize) and the user's decision
# (oauth2_authorize_decision): an unknown or unsubscribed client gets a
# 401, a redirect_uri that is not exactly a registered one the "Redirect
# URI Mismatch" page, never a redirect; every other error goes back to
# the client by redirect with error= and state=; PKCE S256 is required
# by default.  A valid request becomes a pending one and the user goes
# to the login; the decision works once per request.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;
use OAuth2Authz;

our (undef, $C) = OAuth2Authz::pkce();
our $Q = "response_type=code&client_id=tpp-a&redirect_uri="
    . "https%3A%2F%2Ftpp.example%2Fcb&scope=accounts&state=xyz"
    . "&code_challenge=$C&code_challenge_method=S256";
our $Form = "Content-Type: application/x-www-form-urlencoded\n";
our $Handle = qr/[A-Za-z0-9_-]{43}/;
our $Cb = 'https://tpp.example/cb';

my $default_config = <<'_EOC_';
    location = /oauth2/authorize {
        oauth2_authorize;
        oauth2_authorize_login /consent/;
    }
    location = /opt/authorize {
        oauth2_authorize;
        oauth2_authorize_login https://bank.example/login?lang=en;
        oauth2_authorize_pkce optional;
    }
    location = /oauth2/decision {
        oauth2_authorize_decision;
    }
    location = /login/decision {
        oauth2_authorize_decision user=$http_x_login_user;
    }
_EOC_

OAuth2Blocks::defaults(
    http_config => "oauth2_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;\n",
    config => $default_config,
    init => <<'_I_',
OAuth2Authz::seed_client('tpp-a', 's3cret-a', name => 'TPP "A" Ltd');
OAuth2Authz::seed_client('tpp-two', 's3cret-two',
    redirect_uris => 'https://tpp.example/cb https://tpp.example/cb2');
OAuth2Authz::seed_client('tpp-q', 's3cret-q',
    redirect_uris => 'https://tpp.example/cb?app=1');
OAuth2Authz::seed_client('tpp-off', 's3cret-off', subscribed => '0');
OAuth2Authz::seed_client('tpp-cc', 's3cret-cc',
    grant_types => 'client_credentials');
_I_
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a valid request: pending, 302 to the login with request=
--- request eval
"GET /oauth2/authorize?$::Q"
--- error_code: 302
--- response_headers_like
Location: ^http://localhost(:\d+)?/consent/\?request=[A-Za-z0-9_-]{43}$
Cache-Control: ^no-store$
--- error_log
oauth2: authorization request of client "tpp-a" for "accounts" pending



=== TEST 2: an unknown client_id: 401 invalid_client, no redirect
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/client_id=tpp-a/client_id=nobody/;
$q
--- error_code: 401
--- response_headers
Content-Type: application/json
Cache-Control: no-store
Pragma: no-cache
!Location
--- response_body chomp
{"error":"invalid_client","error_description":"invalid client id or secret"}
--- error_log
oauth2: client "nobody" is unknown



=== TEST 3: a client that is not subscribed: 401 invalid_client, no redirect
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/client_id=tpp-a/client_id=tpp-off/;
$q
--- error_code: 401
--- response_headers
!Location
--- response_body chomp
{"error":"invalid_client","error_description":"invalid client id or secret"}
--- error_log
oauth2: client "tpp-off" is not subscribed



=== TEST 4: no client_id: 401 invalid_client
--- request
GET /oauth2/authorize?response_type=code&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb
--- error_code: 401
--- response_headers
!Location
--- response_body chomp
{"error":"invalid_client","error_description":"invalid client id or secret"}



=== TEST 5: client_id twice: 401 invalid_client
--- request eval
"GET /oauth2/authorize?$::Q&client_id=tpp-a"
--- error_code: 401
--- response_headers
!Location
--- response_body chomp
{"error":"invalid_client","error_description":"invalid client id or secret"}



=== TEST 6: a redirect_uri that is not registered: 400 Redirect URI Mismatch, no redirect
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/%2Fcb/%2Fevil/;
$q
--- error_code: 400
--- response_headers
Content-Type: text/html
!Location
--- response_body_like eval
qr{<h1>Redirect URI Mismatch</h1>}
--- error_log
oauth2: redirect_uri mismatch



=== TEST 7: a registered redirect_uri with more after it: mismatch
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/%2Fcb/%2Fcb%2Fmore/;
$q
--- error_code: 400
--- response_headers
!Location
--- response_body_like eval
qr{Redirect URI Mismatch}



=== TEST 8: a registered redirect_uri with a fragment: mismatch
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/%2Fcb/%2Fcb%23x/;
$q
--- error_code: 400
--- response_headers
!Location
--- response_body_like eval
qr{Redirect URI Mismatch}



=== TEST 9: redirect_uri twice: mismatch
--- request eval
"GET /oauth2/authorize?$::Q&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb"
--- error_code: 400
--- response_headers
!Location
--- response_body_like eval
qr{Redirect URI Mismatch}



=== TEST 10: no redirect_uri, two registered: mismatch
--- request eval
"GET /oauth2/authorize?response_type=code&client_id=tpp-two&scope=accounts&state=xyz&code_challenge=$::C&code_challenge_method=S256"
--- error_code: 400
--- response_headers
!Location
--- response_body_like eval
qr{Redirect URI Mismatch}
--- error_log
oauth2: client "tpp-two" sent no redirect_uri and has 2 registered



=== TEST 11: no redirect_uri, one registered: that one
--- request eval
"GET /oauth2/authorize?response_type=code&client_id=tpp-a&scope=payments&state=xyz&code_challenge=$::C&code_challenge_method=S256"
--- error_code: 302
--- response_headers_like
Location: ^http://localhost(:\d+)?/consent/\?request=[A-Za-z0-9_-]{43}$



=== TEST 12: the second of two registered redirect_uris: fine
--- request eval
"GET /oauth2/authorize?response_type=code&client_id=tpp-two&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb2&scope=accounts&code_challenge=$::C&code_challenge_method=S256"
--- error_code: 302
--- response_headers_like
Location: ^http://localhost(:\d+)?/consent/\?request=[A-Za-z0-9_-]{43}$



=== TEST 13: an unknown scope: back to the client with invalid_scope and the state
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/scope=accounts/scope=accounts+admin/;
$q
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_scope&state=xyz"



=== TEST 14: no scope: invalid_scope
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/&scope=accounts//;
$q
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_scope&state=xyz"



=== TEST 15: response_type=token: unsupported_response_type
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/response_type=code/response_type=token/;
$q
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=unsupported_response_type&state=xyz"



=== TEST 16: no response_type: invalid_request
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/response_type=code&//;
$q
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_request&state=xyz"



=== TEST 17: no PKCE (oauth2_authorize_pkce required, the default): invalid_request
--- request
GET /oauth2/authorize?response_type=code&client_id=tpp-a&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&scope=accounts&state=xyz
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_request&state=xyz"
--- error_log
oauth2: authorization request without code_challenge (oauth2_authorize_pkce)



=== TEST 18: code_challenge_method plain: invalid_request
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/method=S256/method=plain/;
$q
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_request&state=xyz"



=== TEST 19: no code_challenge_method (plain by default): invalid_request
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/&code_challenge_method=S256//;
$q
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_request&state=xyz"



=== TEST 20: a code_challenge of 42 characters: invalid_request
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/code_challenge=[^&]+/code_challenge=${\('a' x 42)}/;
$q
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_request&state=xyz"



=== TEST 21: oauth2_authorize_pkce optional: no PKCE is fine; the login URL's query is kept
--- request
GET /opt/authorize?response_type=code&client_id=tpp-a&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&scope=accounts&state=xyz
--- error_code: 302
--- response_headers_like
Location: ^https://bank\.example/login\?lang=en&request=[A-Za-z0-9_-]{43}$



=== TEST 22: oauth2_authorize_pkce optional: a method without a challenge is still an error
--- request
GET /opt/authorize?response_type=code&client_id=tpp-a&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&scope=accounts&state=xyz&code_challenge_method=S256
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_request&state=xyz"



=== TEST 23: a state is sent back percent-encoded
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/state=xyz/state=a+b%26c%3D%22d%22/;
$q =~ s/scope=accounts/scope=nope/;
$q
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_scope&state=a%20b%26c%3D%22d%22"



=== TEST 24: state twice: invalid_request, no state
--- request eval
"GET /oauth2/authorize?$::Q&state=abc"
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_request"



=== TEST 25: a state that is not UTF-8: invalid_request, no state
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/state=xyz/state=%FF/;
$q
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_request"



=== TEST 26: a control character in the state: invalid_request, no state
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/state=xyz/state=a%0D%0AX:+y/;
$q
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_request"



=== TEST 27: scope twice: invalid_request with the state
--- request eval
"GET /oauth2/authorize?$::Q&scope=payments"
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_request&state=xyz"



=== TEST 28: another parameter that is not UTF-8: invalid_request with the state
--- request eval
"GET /oauth2/authorize?$::Q&nonce=%C0%AF"
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=invalid_request&state=xyz"



=== TEST 29: a registered redirect_uri with a query: the error is added to it
--- request eval
"GET /oauth2/authorize?response_type=code&client_id=tpp-q&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb%3Fapp%3D1&scope=nope&state=xyz&code_challenge=$::C&code_challenge_method=S256"
--- error_code: 302
--- response_headers eval
"Location: $::Cb?app=1&error=invalid_scope&state=xyz"



=== TEST 30: a client whose grant_types lack authorization_code: unauthorized_client
--- request eval
(my $q = "GET /oauth2/authorize?$::Q") =~ s/client_id=tpp-a/client_id=tpp-cc/;
$q
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=unauthorized_client&state=xyz"



=== TEST 31: POST: 405, Allow: GET
--- request eval
"POST /oauth2/authorize\n$::Q"
--- more_headers eval
$::Form
--- error_code: 405
--- response_headers
Allow: GET
--- response_body chomp
{"error":"invalid_request"}



=== TEST 32: the pending request, for the consent page: 200 JSON
--- init
OAuth2Authz::seed_authz('req-32', client_id => 'tpp-a',
                        client_name => 'TPP "A" Ltd',
                        scope => 'accounts payments');
--- request
GET /oauth2/authorize?request=req-32
--- error_code: 200
--- response_headers
Content-Type: application/json
Cache-Control: no-store
--- response_body chomp
{"request":"req-32","client_id":"tpp-a","client_name":"TPP \"A\" Ltd","scope":"accounts payments","scopes":["accounts","payments"]}



=== TEST 33: an unknown request: 404
--- request
GET /oauth2/authorize?request=no-such-request
--- error_code: 404
--- response_body chomp
{"error":"not_found"}



=== TEST 34: the decision allow: 302 to redirect_uri with a code and the state
--- init
OAuth2Authz::seed_authz('req-34', client_id => 'tpp-a');
--- request
POST /oauth2/decision
request=req-34&user=psu-34&decision=allow
--- more_headers eval
$::Form
--- error_code: 302
--- response_headers_like
Location: ^https://tpp\.example/cb\?code=[A-Za-z0-9_-]{43}&state=xyz$
Cache-Control: ^no-store$
--- error_log eval
qr/oauth2: consent "[A-Za-z0-9_-]{22}" given to client "tpp-a", code [0-9a-f]{6}/



=== TEST 35: the same request decided again: 400, it works once
--- init
--- request
POST /oauth2/decision
request=req-34&user=psu-34&decision=allow
--- more_headers eval
$::Form
--- error_code: 400
--- response_body chomp
{"error":"invalid_request","error_description":"unknown or used request"}



=== TEST 36: deny: 302 with error=access_denied and the state
--- init
OAuth2Authz::seed_authz('req-36', client_id => 'tpp-a');
--- request
POST /oauth2/decision
request=req-36&user=psu-36&decision=deny
--- more_headers eval
$::Form
--- error_code: 302
--- response_headers eval
"Location: $::Cb?error=access_denied&state=xyz"



=== TEST 37: a scope that was not asked for: 400 invalid_scope, the request stays
--- init
OAuth2Authz::seed_authz('req-37', client_id => 'tpp-a', scope => 'accounts');
--- request
POST /oauth2/decision
request=req-37&user=psu-37&decision=allow&scope=payments
--- more_headers eval
$::Form
--- error_code: 400
--- response_body chomp
{"error":"invalid_scope"}



=== TEST 38: the same request, allowed with the scope asked for
--- init
--- request
POST /oauth2/decision
request=req-37&user=psu-37&decision=allow&scope=accounts
--- more_headers eval
$::Form
--- error_code: 302
--- response_headers_like
Location: ^https://tpp\.example/cb\?code=[A-Za-z0-9_-]{43}&state=xyz$



=== TEST 39: a decision without a user: 400 invalid_request
--- init
OAuth2Authz::seed_authz('req-39', client_id => 'tpp-a');
--- request
POST /oauth2/decision
request=req-39&decision=allow
--- more_headers eval
$::Form
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 40: a decision that is neither allow nor deny: 400 invalid_request
--- init
OAuth2Authz::seed_authz('req-40', client_id => 'tpp-a');
--- request
POST /oauth2/decision
request=req-40&user=psu-40&decision=yes
--- more_headers eval
$::Form
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 41: a duplicated decision: 400 invalid_request
--- init
OAuth2Authz::seed_authz('req-41', client_id => 'tpp-a');
--- request
POST /oauth2/decision
request=req-41&user=psu-41&decision=deny&decision=allow
--- more_headers eval
$::Form
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 42: a user with a space: 400 invalid_request
--- init
OAuth2Authz::seed_authz('req-42', client_id => 'tpp-a');
--- request
POST /oauth2/decision
request=req-42&user=Jane+Doe&decision=allow
--- more_headers eval
$::Form
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 43: user=VALUE: the login's user, not the form's
--- init
OAuth2Authz::seed_authz('req-43', client_id => 'tpp-a');
--- request
POST /login/decision
request=req-43&decision=allow
--- more_headers eval
$::Form . "X-Login-User: psu-43\n"
--- error_code: 302
--- response_headers_like
Location: ^https://tpp\.example/cb\?code=[A-Za-z0-9_-]{43}&state=xyz$



=== TEST 44: user=VALUE: a user in the form is refused
--- init
OAuth2Authz::seed_authz('req-44', client_id => 'tpp-a');
--- request
POST /login/decision
request=req-44&decision=allow&user=someone-else
--- more_headers eval
$::Form . "X-Login-User: psu-44\n"
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 45: the decision as JSON: 400 invalid_request
--- init
OAuth2Authz::seed_authz('req-45', client_id => 'tpp-a');
--- request
POST /oauth2/decision
{"request":"req-45","user":"psu","decision":"allow"}
--- more_headers
Content-Type: application/json
--- error_code: 400
--- response_body chomp
{"error":"invalid_request"}



=== TEST 46: a decision body over the limit: 413 invalid_request
--- request eval
"POST /oauth2/decision\nrequest=req&decision=allow&user=u&x=" . ('a' x 17000)
--- more_headers eval
$::Form
--- error_code: 413
--- response_body chomp
{"error":"invalid_request"}



=== TEST 47: GET on the decision: 405
--- request
GET /oauth2/decision?request=req&decision=allow&user=u
--- error_code: 405
--- response_headers
Allow: POST
--- response_body chomp
{"error":"invalid_request"}



=== TEST 48: Redis down: 503
--- http_config
oauth2_redis 127.0.0.1:$TEST_NGINX_DEAD_PORT;
--- init
--- request eval
"GET /oauth2/authorize?$::Q"
--- error_code: 503
--- response_headers
Retry-After: 1
!Location
--- response_body chomp
{"error":"temporarily_unavailable"}
