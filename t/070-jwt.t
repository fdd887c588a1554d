# JWT access tokens (RFC 9068) verified locally: algorithms pinned by the
# configured keys, claims, revocation, and the same scopes, consent, plans
# and JSON errors as opaque tokens.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;
use OAuth2JWT;

our $Unauthorized = '{"httpCode":"401","httpMessage":"Unauthorized",'
    . '"moreInformation":"This server could not verify that you are '
    . 'authorized to access the URL"}';

OAuth2JWT::setup();

our %T;   # tokens, made before nginx starts (request eval runs early)
{
    my $okclaims = '{"client_id":"a","iss":"https://as.bank",'
        . '"aud":"https://api.bank","scope":"accounts","exp":'
        . (time + 3600) . '}';
    my $S = \&OAuth2JWT::sign;
    my %base = (client_id => 'tpp-jwt', scope => 'accounts payments',
                sub => 'psu-1', jti => 'jti-1', iss => 'https://as.bank',
                aud => 'https://api.bank', plan => 'gold');
    %T = (
        hs256    => $S->('HS256', \%base),
        rs256    => $S->('RS256', { %base }, header => { kid => 'rsa1' }),
        es256    => $S->('ES256', { %base }, header => { kid => 'ec1' }),
        es384    => $S->('ES384', { %base }, header => { kid => 'ec384' }),
        none     => OAuth2JWT::sign_raw('none',
                        '{"alg":"none","typ":"JWT"}',
                        '{"client_id":"x","exp":' . (time + 3600) . '}')
                    . 'AAAA',
        none_empty => OAuth2JWT::sign_raw('none',
                        '{"alg":"none","typ":"JWT"}',
                        '{"client_id":"x","exp":' . (time + 3600) . '}'),
        confused => $S->('HS256', { %base }, header => { kid => 'rsa1' },
                         key => do { local (@ARGV, $/) =
                                     ("$OAuth2JWT::Dir/rsa.pub"); <> }),
        otherkey => $S->('RS256', { %base }, header => { kid => 'rsa1' },
                         key => "$OAuth2JWT::Dir/rsa2.pem"),
        badkid   => $S->('RS256', { %base }, header => { kid => 'nope' }),
        noexp    => $S->('HS256', { %base, exp => undef }),
        expired  => $S->('HS256', { %base, exp => time - 60 }),
        expstr   => $S->('HS256', { %base, exp => '' . (time + 3600) }),
        expfloat => $S->('HS256', { %base, exp => time + 3600.5 }),
        nbf      => $S->('HS256', { %base, nbf => time + 600 }),
        leeway   => $S->('HS256', { %base, exp => time - 10 }),
        badiss   => $S->('HS256', { %base, iss => 'https://evil' }),
        badaud   => $S->('HS256', { %base, aud => 'https://other' }),
        audarr   => $S->('HS256', { %base,
                                    aud => ['https://x', 'https://api.bank'] }),
        atjwt    => $S->('HS256', { %base }, header => { typ => 'at+jwt' }),
        badtyp   => $S->('HS256', { %base }, header => { typ => 'JOSE+X' }),
        scparr   => $S->('HS256', { %base, scope => undef,
                                    scp => ['payments', 'accounts'] }),
        noscope  => $S->('HS256', { %base, scope => 'other' }),
        azp      => $S->('HS256', { %base, client_id => undef,
                                    azp => 'tpp-azp' }),
        noclient => $S->('HS256', { %base, client_id => undef }),
        nojti    => $S->('HS256', { %base, jti => undef }),
        revoked  => $S->('HS256', { %base, jti => 'jti-revoked' }),
        consent  => $S->('HS256', { %base, consent_id => 'jc-1' }),
        consentx => $S->('HS256', { %base, consent_id => 'jc-2' }),
        bronze   => $S->('HS256', { %base, plan => 'bronze',
                                    client_id => 'tpp-jwt-rl' }),
        dup      => OAuth2JWT::sign_raw('HS256', '{"alg":"HS256","typ":"JWT"}',
                        '{"client_id":"a","client_id":"b","exp":'
                        . (time + 3600) . '}'),
        hs384    => $S->('HS384', { %base }, header => { kid => 'hs384' },
                         key => 'x' x 48),
        kidempty => OAuth2JWT::sign_raw('HS256', '{"alg":"HS256","kid":""}',
                        '{"client_id":"a","exp":' . (time + 3600) . '}'),
        expmax   => OAuth2JWT::sign_raw('HS256', '{"alg":"HS256"}',
                        '{"client_id":"a","iss":"https://as.bank",'
                        . '"aud":"https://api.bank","exp":9223372036854775807}'),
        nbfmin   => OAuth2JWT::sign_raw('HS256', '{"alg":"HS256"}',
                        '{"client_id":"a","iss":"https://as.bank",'
                        . '"aud":"https://api.bank","exp":' . (time + 3600)
                        . ',"nbf":-9223372036854775807}'),
        crit     => OAuth2JWT::sign_raw('HS256',
                        '{"alg":"HS256","crit":["exp"]}', $okclaims),
        kidnum   => OAuth2JWT::sign_raw('HS256', '{"alg":"HS256","kid":7}',
                        $okclaims),
        typnum   => OAuth2JWT::sign_raw('HS256', '{"alg":"HS256","typ":1}',
                        $okclaims),
        typok    => OAuth2JWT::sign_raw('HS256', '{"alg":"HS256","typ":"jwt"}',
                        $okclaims),
        expmin   => OAuth2JWT::sign_raw('HS256', '{"alg":"HS256"}',
                        '{"client_id":"a","iss":"https://as.bank",'
                        . '"aud":"https://api.bank",'
                        . '"exp":-9223372036854775807}'),
    );
    my $t = $T{hs256};
    $T{trail_bang}  = "$t!";
    $T{trail_eq}    = "$t=";
    $T{truncated}   = substr($t, 0, rindex($t, '.'));
    my @p = split /\./, $t;
    $p[2] =~ tr/A-Za-z/B-ZAb-za/;
    $T{badsig} = join '.', @p;
    my $big = $S->('HS256', { %base, pad => 'x' x 5000 });
    $T{big} = $big;
}

my $default_http_config = <<'_EOC_';
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_jwt_key HS256 $TEST_NGINX_JWT_DIR/hs.secret;
    oauth2_jwt_key RS256 $TEST_NGINX_JWT_DIR/rsa.pub kid=rsa1;
    oauth2_jwt_key ES256 $TEST_NGINX_JWT_DIR/ec256.pub kid=ec1;
    oauth2_jwt_key ES384 $TEST_NGINX_JWT_DIR/ec384.pub kid=ec384;
    oauth2_jwt_key HS384 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx kid=hs384;
    oauth2_plan bronze 2r/m;
_EOC_

my $default_config = <<'_EOC_';
    oauth2_token_type jwt;
    oauth2_consent off;
    oauth2_jwt_issuer https://as.bank;
    oauth2_jwt_audience https://api.bank;

    location /api {
        oauth2 on;
        oauth2_scope accounts;
        add_header X-OAuth2-Status $oauth2_status always;
        proxy_set_header X-Who "$oauth2_client_id|$oauth2_scope|$oauth2_sub|$oauth2_plan|$oauth2_jwt_claim_iss|$oauth2_jwt_claim_exp_missing";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /revocable {
        oauth2 on;
        oauth2_jwt_revocation on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /consented {
        oauth2 on;
        oauth2_consent on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /leeway {
        oauth2 on;
        oauth2_jwt_leeway 1h;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /payments {
        oauth2 on;
        oauth2_scope paymentRequest;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "who=$http_x_who\n";
    }
_EOC_

OAuth2Blocks::defaults(
    http_config => $default_http_config,
    config => $default_config,
    request => "GET /api\n",
    error_code => 401,

    # a 401 is the exact JSON, with its WWW-Authenticate
    more => sub {
        my $block = shift;
        my $codes = $block->error_code;
        return if defined $block->response_body
                  || defined $block->response_body_like
                  || defined $block->response_headers;
        if (!ref $codes && $codes == 401) {
            $block->set_value('response_body', $::Unauthorized);
            $block->set_value('response_headers', "Content-Type: application/json\n"
                . "WWW-Authenticate: Bearer realm=\"api\", "
                . "error=\"invalid_token\"\n");
        } elsif (ref $codes eq 'ARRAY' && !grep { $_ != 401 } @$codes) {
            $block->set_value('response_body', [($::Unauthorized) x @$codes]);
        }
    },
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: HS256: 200, the claims in the variables
--- more_headers eval
"Authorization: Bearer $::T{hs256}"
--- error_code: 200
--- response_headers
X-OAuth2-Status: ok
--- response_body
who=tpp-jwt|accounts payments|psu-1|gold|https://as.bank|



=== TEST 2: RS256 with its kid
--- more_headers eval
"Authorization: Bearer $::T{rs256}"
--- error_code: 200



=== TEST 3: ES256 with its kid
--- more_headers eval
"Authorization: Bearer $::T{es256}"
--- error_code: 200



=== TEST 4: ES384 with its kid
--- more_headers eval
"Authorization: Bearer $::T{es384}"
--- error_code: 200



=== TEST 5: HS384 with a secret in the configuration
--- more_headers eval
"Authorization: Bearer $::T{hs384}"
--- error_code: 200



=== TEST 6: alg none: 401 invalid_token
--- more_headers eval
"Authorization: Bearer $::T{none}"
--- response_headers
WWW-Authenticate: Bearer realm="api", error="invalid_token"
--- response_body eval
$::Unauthorized
--- error_log
oauth2: JWT alg "none" is not the key's HS256



=== TEST 7: alg none with the empty signature segment: not a compact JWS
--- more_headers eval
"Authorization: Bearer $::T{none_empty}"
--- response_body eval
$::Unauthorized
--- error_log
oauth2: JWT is not three base64url segments



=== TEST 8: key confusion: HS256 signed with the RSA public key, kid of the RSA key
--- more_headers eval
"Authorization: Bearer $::T{confused}"
--- error_log
oauth2: JWT alg "HS256" is not the key's RS256



=== TEST 9: RS256 signed by another key: bad signature
--- more_headers eval
"Authorization: Bearer $::T{otherkey}"
--- error_log
oauth2: JWT signature does not verify (RS256)



=== TEST 10: a tampered signature
--- more_headers eval
"Authorization: Bearer $::T{badsig}"
--- error_log
oauth2: JWT signature does not verify (HS256)



=== TEST 11: an unknown kid
--- more_headers eval
"Authorization: Bearer $::T{badkid}"
--- error_log
oauth2: no oauth2_jwt_key for kid "nope"



=== TEST 12: exp missing
--- more_headers eval
"Authorization: Bearer $::T{noexp}"
--- error_log
oauth2: JWT exp is missing or not an integer



=== TEST 13: exp passed
--- more_headers eval
"Authorization: Bearer $::T{expired}"
--- error_log
oauth2: JWT has expired



=== TEST 14: exp as a string, exp as a float: not integers, refused
--- request eval
["GET /api", "GET /api"]
--- more_headers eval
["Authorization: Bearer $::T{expstr}", "Authorization: Bearer $::T{expfloat}"]
--- error_code eval
[401, 401]



=== TEST 15: nbf in the future
--- more_headers eval
"Authorization: Bearer $::T{nbf}"
--- error_log
oauth2: JWT nbf is in the future or not an integer



=== TEST 16: oauth2_jwt_leeway accepts a token 10 s past exp
--- request eval
["GET /leeway", "GET /api"]
--- more_headers eval
["Authorization: Bearer $::T{leeway}", "Authorization: Bearer $::T{leeway}"]
--- error_code eval
[200, 401]



=== TEST 17: wrong iss
--- more_headers eval
"Authorization: Bearer $::T{badiss}"
--- error_log
oauth2: JWT iss is not "https://as.bank"



=== TEST 18: wrong aud; an aud array that holds ours passes
--- request eval
["GET /api", "GET /api"]
--- more_headers eval
["Authorization: Bearer $::T{badaud}", "Authorization: Bearer $::T{audarr}"]
--- error_code eval
[401, 200]



=== TEST 19: typ at+jwt is accepted (RFC 9068), another typ is not
--- request eval
["GET /api", "GET /api"]
--- more_headers eval
["Authorization: Bearer $::T{atjwt}", "Authorization: Bearer $::T{badtyp}"]
--- error_code eval
[200, 401]



=== TEST 20: scope as an array in scp
--- more_headers eval
"Authorization: Bearer $::T{scparr}"
--- error_code: 200
--- response_body
who=tpp-jwt|payments accounts|psu-1|gold|https://as.bank|



=== TEST 21: a scope the location requires is missing: 403
--- more_headers eval
"Authorization: Bearer $::T{noscope}"
--- error_code: 403
--- response_headers
WWW-Authenticate: Bearer realm="api", error="insufficient_scope", scope="accounts"



=== TEST 22: client_id falls back to azp; neither: 401
--- request eval
["GET /api", "GET /api"]
--- more_headers eval
["Authorization: Bearer $::T{azp}", "Authorization: Bearer $::T{noclient}"]
--- error_code eval
[200, 401]
--- response_body eval
["who=tpp-azp|accounts payments|psu-1|gold|https://as.bank|\n", $::Unauthorized]



=== TEST 23: strict compact form: "!", "=" appended, a segment missing
--- request eval
["GET /api", "GET /api", "GET /api"]
--- more_headers eval
["Authorization: Bearer $::T{trail_bang}", "Authorization: Bearer $::T{trail_eq}", "Authorization: Bearer $::T{truncated}"]
--- error_code eval
[401, 401, 401]



=== TEST 24: duplicate claim names are refused
--- more_headers eval
"Authorization: Bearer $::T{dup}"
--- error_log
duplicate object key



=== TEST 25: a token longer than oauth2_token_max_length
--- more_headers eval
"Authorization: Bearer $::T{big}"
--- error_log
is longer than oauth2_token_max_length 4096



=== TEST 26: revocation: oauth2:revoked:<jti> refuses the token
--- init
OAuth2Test::redis('SET', 'oauth2:revoked:jti-revoked', '1', 'EX', 3600);
--- request eval
["GET /revocable", "GET /revocable"]
--- more_headers eval
["Authorization: Bearer $::T{revoked}", "Authorization: Bearer $::T{hs256}"]
--- error_code eval
[401, 200]



=== TEST 27: revocation on and no jti: 401
--- request
GET /revocable
--- more_headers eval
"Authorization: Bearer $::T{nojti}"
--- error_log
oauth2: JWT has no jti, revocation cannot be checked



=== TEST 28: consent behind a JWT: valid 200, revoked 403
--- init
OAuth2Test::seed_consent('jc-1', 'valid');
OAuth2Test::seed_consent('jc-2', 'revoked');
--- request eval
["GET /consented", "GET /consented", "GET /consented"]
--- more_headers eval
["Authorization: Bearer $::T{consent}", "Authorization: Bearer $::T{consentx}", "Authorization: Bearer $::T{hs256}"]
--- error_code eval
[200, 403, 403]



=== TEST 29: the plan claim: rate limited like opaque tokens
--- request eval
["GET /api", "GET /api", "GET /api"]
--- more_headers eval
[("Authorization: Bearer $::T{bronze}") x 3]
--- error_code eval
[200, 200, 429]



=== TEST 30: no consent, revocation or plan to check: no Redis round trip
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_jwt_key HS256 $TEST_NGINX_JWT_DIR/hs.secret;
--- config
    location /api {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_consent off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "ok\n"; }
--- init
OAuth2Test::http_get('/api', "Authorization: Bearer $::T{hs256}");
OAuth2Test::monitor_start();
my ($s) = OAuth2Test::http_get('/api', "Authorization: Bearer $::T{hs256}");
my @cmds = OAuth2Test::monitor_commands();
Test::More::is($s, 200, 'verified locally');
Test::More::is(scalar(@cmds), 0, 'no command sent to Redis')
    or Test::More::diag(join "\n", @cmds);
--- more_headers eval
"Authorization: Bearer $::T{hs256}"
--- error_code: 200



=== TEST 31: oauth2_token_type auto: JWTs and opaque tokens side by side
--- config
    location /api {
        oauth2 on;
        oauth2_token_type auto;
        oauth2_consent off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "ok\n"; }
--- init
OAuth2Test::seed_token('opaque-next-to-jwt', client_id => 'tpp-opaque');
--- request eval
["GET /api", "GET /api", "GET /api"]
--- more_headers eval
["Authorization: Bearer $::T{rs256}", "Authorization: Bearer opaque-next-to-jwt", "Authorization: Bearer $::T{badsig}"]
--- error_code eval
[200, 200, 401]



=== TEST 32: a cached JWT keeps its claims in the variables
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_jwt_key HS256 $TEST_NGINX_JWT_DIR/hs.secret;
    oauth2_cache zone=jwt_cache:1m ttl=1m;
--- config
    location /api {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_consent off;
        proxy_set_header X-Who "$oauth2_client_id|$oauth2_jwt_claim_sub|$oauth2_jwt_claim_exp";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "who=$http_x_who\n"; }
--- request eval
["GET /api", "GET /api"]
--- more_headers eval
[("Authorization: Bearer $::T{hs256}") x 2]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/^who=tpp-jwt\|psu-1\|\d{10}$/, qr/^who=tpp-jwt\|psu-1\|\d{10}$/]



=== TEST 33: the cache keeps each location's JWT checks and token type
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_jwt_key HS256 $TEST_NGINX_JWT_DIR/hs.secret;
    oauth2_cache zone=jwt_cache2:1m ttl=1m;
--- config
    oauth2_consent off;
    location /a {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_jwt_audience https://api.bank;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /b {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_jwt_audience https://other.bank;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /opaque {
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /revocable {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_jwt_revocation on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "ok\n"; }
--- init
OAuth2Test::redis('DEL', 'oauth2:revoked:jti-1');
my ($s1) = OAuth2Test::http_get('/a', "Authorization: Bearer $::T{hs256}");
my ($s2) = OAuth2Test::http_get('/revocable', "Authorization: Bearer $::T{hs256}");
OAuth2Test::redis('SET', 'oauth2:revoked:jti-1', '1', 'EX', 60);
Test::More::is("$s1 $s2", "200 200", 'accepted and cached');
--- request eval
["GET /a", "GET /b", "GET /opaque", "GET /revocable"]
--- more_headers eval
[("Authorization: Bearer $::T{hs256}") x 4]
--- error_code eval
[200, 401, 401, 401]



=== TEST 34: a JWT whose consent was not looked up is not cached as refused
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_jwt_key HS256 $TEST_NGINX_JWT_DIR/hs.secret;
    oauth2_cache zone=jwt_cache3:1m ttl=1m;
--- config
    oauth2_token_type jwt;
    location /no-consent {
        oauth2 on;
        oauth2_consent off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /consent {
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "ok\n"; }
--- init
OAuth2Test::seed_consent('jc-1', 'valid');
--- request eval
["GET /no-consent", "GET /consent"]
--- more_headers eval
[("Authorization: Bearer $::T{consent}") x 2]
--- error_code eval
[200, 200]



=== TEST 35: an empty kid is a kid no key has, not the key without kid
--- more_headers eval
"Authorization: Bearer $::T{kidempty}"
--- error_log
oauth2: no oauth2_jwt_key for kid ""



=== TEST 36: exp and nbf at the ends of 64-bit integers, with a leeway
(found by make fuzz: exp + leeway and nbf - leeway overflowed)
--- request eval
["GET /leeway", "GET /leeway", "GET /leeway"]
--- more_headers eval
["Authorization: Bearer $::T{expmax}", "Authorization: Bearer $::T{nbfmin}",
 "Authorization: Bearer $::T{expmin}"]
--- error_code eval
[200, 200, 401]



=== TEST 37: a header with "crit", a kid or typ that is not a string: 401
--- request eval
["GET /api", "GET /api", "GET /api"]
--- more_headers eval
["Authorization: Bearer $::T{crit}", "Authorization: Bearer $::T{kidnum}",
 "Authorization: Bearer $::T{typnum}"]
--- error_code eval
[401, 401, 401]
--- error_log
oauth2: JWT header has "crit", or a kid or typ that is not a string



=== TEST 38: the same claims and HMAC under a plain header pass (typ in any case)
--- more_headers eval
"Authorization: Bearer $::T{typok}"
--- error_code: 200
