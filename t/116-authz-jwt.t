# JWT access tokens from the token endpoint (oauth2_access_token_format
# jwt): RFC 9068 (typ at+jwt), signed with a private key whose public half
# the gateway's oauth2_jwt_key verifies; ES256, RS256 and HS256; the
# consent behind a JWT still counts (revoked: 403), and RFC 7009
# revocation of a JWT writes <prefix>revoked:<jti> for
# oauth2_jwt_revocation.
#
# Plain Test::More: it runs its own nginx.

use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use OAuth2Test;
use OAuth2Nginx;
use OAuth2Authz;
use OAuth2JWT;

$ENV{TEST_NGINX_LOAD_MODULES} && $ENV{TEST_NGINX_REDIS_PORT}
    or plan skip_all => 'run by util/run-tests.sh';

my $redis = $ENV{TEST_NGINX_REDIS_PORT};
my $dir = OAuth2JWT::setup();
my $secret = $OAuth2JWT::Secret;
my $json = JSON::PP->new;

my $n = OAuth2Nginx->start(http => <<"_EOC_");
    oauth2_redis 127.0.0.1:$redis;
    oauth2_jwt_key ES256 $dir/ec256.pub kid=as-1;
    oauth2_jwt_key RS256 $dir/rsa.pub;
    oauth2_jwt_key HS256 $dir/hs.secret kid=hs;
    server {
        listen 127.0.0.1:\$PORT;
        location = /es/token {
            oauth2_token;
            oauth2_access_token_format jwt ES256 $dir/ec256.pem kid=as-1
                                       iss=https://bank.example aud=api;
        }
        location = /rs/token {
            oauth2_token;
            oauth2_access_token_format jwt RS256 $dir/rsa.pem;
        }
        location = /hs/token {
            oauth2_token;
            oauth2_access_token_format jwt HS256 $dir/hs.secret kid=hs;
        }
        location = /oauth2/revoke {
            oauth2_revoke;
        }
        location /consents/ {
            oauth2_consent_api;
        }
        location /api/ {
            oauth2 on;
            oauth2_token_type jwt;
            oauth2_scope accounts;
            oauth2_jwt_issuer https://bank.example;
            oauth2_jwt_audience api;
            proxy_set_header X-Who
                "\$oauth2_client_id|\$oauth2_sub|\$oauth2_consent_id|\$oauth2_scope|\$oauth2_plan";
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /any/ {
            oauth2 on;
            oauth2_token_type jwt;
            oauth2_scope accounts;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /revocable/ {
            oauth2 on;
            oauth2_token_type jwt;
            oauth2_jwt_revocation on;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /machine/ {
            oauth2 on;
            oauth2_token_type jwt;
            oauth2_consent off;
            proxy_set_header X-Who "\$oauth2_client_id|\$oauth2_sub";
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /backend {
            return 200 "who=\$http_x_who";
        }
    }
_EOC_

my $port = $n->port;

sub b64url_json {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return $json->decode(decode_base64($s));
}

sub token_req {
    my ($path, $id, $sec, $form) = @_;
    my ($status, $h, $body) = OAuth2Authz::http(
        port => $port, method => 'POST', path => $path,
        headers => [ OAuth2Authz::basic($id, $sec) ], form => $form);
    return ($status, eval { $json->decode($body) } // {}, $body);
}

sub api {
    my ($path, $token) = @_;
    my ($status, undef, $body) = OAuth2Authz::http(
        port => $port, path => $path,
        headers => [ "Authorization: Bearer $token" ]);
    return ($status, $body);
}

my $client = "jwt-$$";
OAuth2Authz::seed_client($client, 'jwt-secret', plan => 'silver',
                         grant_types => 'authorization_code refresh_token '
                                        . 'client_credentials');
my $v = $OAuth2Authz::Verifier;

sub code {
    my ($name, $consent) = @_;
    OAuth2Authz::seed_consent($consent, client_id => $client,
                              sub => 'psu-j');
    OAuth2Authz::seed_code($name, client_id => $client,
                           consent_id => $consent, sub => 'psu-j',
                           redirect_given => '0');
    return $name;
}

# ES256, with kid, iss and aud

my ($status, $doc, $body) = token_req('/es/token', $client, 'jwt-secret',
    'grant_type=authorization_code&code=' . code("jc1-$$", "jcons1-$$")
    . "&code_verifier=$v");
is($status, 200, 'ES256: 200') or diag $body;
my $jwt = $doc->{access_token};
like($jwt, qr/^[\w-]+\.[\w-]+\.[\w-]+$/, 'a compact JWT');
my ($h64, $c64, $s64) = split /\./, $jwt;
is_deeply(b64url_json($h64), { alg => 'ES256', typ => 'at+jwt',
                               kid => 'as-1' },
          'the header: alg, typ at+jwt, kid');
my $claims = b64url_json($c64);
my $jti = delete $claims->{jti};
my $iat = delete $claims->{iat};
my $exp = delete $claims->{exp};
is_deeply($claims, { iss => 'https://bank.example', aud => 'api',
                     sub => 'psu-j', client_id => $client,
                     scope => 'accounts', plan => 'silver',
                     consent_id => "jcons1-$$" },
          'the claims the gateway reads');
like($jti, qr/^[A-Za-z0-9_-]{22}$/, 'a jti');
cmp_ok(abs($iat - time), '<=', 5, 'iat now');
is($exp - $iat, 3600, 'exp an hour after iat');
is($doc->{expires_in}, 3600, 'expires_in 3600');
like($doc->{refresh_token}, qr/^[A-Za-z0-9_-]{43}$/,
     'an opaque refresh token');
is(length(OAuth2JWT::b64url('x' x 64)), length($s64),
   'the signature is JOSE r || s, 64 bytes');

my $rec = OAuth2Authz::hgetall("oauth2:jwt:$jti");
is($rec->{client_id}, $client, 'the jti\'s record: its client');
is($rec->{exp}, $exp, 'the jti\'s record: exp');

($status, $body) = api('/api/x', $jwt);
is($status, 200, 'the gateway verifies it with the public key: 200');
is($body, "who=$client|psu-j|jcons1-$$|accounts|silver",
   'the gateway\'s variables from the claims');

# a tampered token is refused (the gateway really verifies)

(my $bad = $jwt) =~ s/\.([\w-])/'.' . ($1 eq 'A' ? 'B' : 'A')/e;
($status) = api('/api/x', $bad);
is($status, 401, 'a tampered JWT: 401');

# refresh gives a JWT too

($status, $doc) = token_req('/es/token', $client, 'jwt-secret',
    "grant_type=refresh_token&refresh_token=$doc->{refresh_token}");
is($status, 200, 'refresh: 200');
my $jwt2 = $doc->{access_token};
($status) = api('/api/x', $jwt2);
is($status, 200, 'the refreshed JWT: 200');

# the consent revoked: 403 while the JWT is unexpired

($status) = OAuth2Authz::http(port => $port, method => 'DELETE',
                              path => "/consents/jcons1-$$",
                              headers => [ OAuth2Authz::basic($client,
                                                          'jwt-secret') ]);
is($status, 204, 'consent revoked');
($status) = api('/api/x', $jwt2);
is($status, 403, 'a JWT whose consent is revoked: 403');

# RS256 without kid, HS256 with one

for my $alg (qw(rs hs)) {
    ($status, $doc, $body) = token_req("/$alg/token", $client, 'jwt-secret',
        'grant_type=authorization_code&code='
        . code("jc-$alg-$$", "jcons-$alg-$$") . "&code_verifier=$v");
    is($status, 200, "\U$alg\E256: 200") or diag $body;
    my $hd = b64url_json((split /\./, $doc->{access_token})[0]);
    is($hd->{alg}, "\U$alg\E256", "\U$alg\E256: alg");
    is($hd->{typ}, 'at+jwt', "\U$alg\E256: typ");
    ($status) = api('/any/x', $doc->{access_token});
    is($status, 200, "\U$alg\E256: the gateway verifies it");
}

# revocation of a JWT: <prefix>revoked:<jti>, for oauth2_jwt_revocation

($status, $doc) = token_req('/hs/token', $client, 'jwt-secret',
    'grant_type=authorization_code&code=' . code("jc-r-$$", "jcons-r-$$")
    . "&code_verifier=$v");
my $rjwt = $doc->{access_token};
my $rjti = b64url_json((split /\./, $rjwt)[1])->{jti};
($status) = api('/revocable/x', $rjwt);
is($status, 200, 'before the revocation: 200');

OAuth2Authz::seed_client("$client-2", 'other-secret');
($status) = OAuth2Authz::http(port => $port, method => 'POST',
                              path => '/oauth2/revoke',
                              headers => [ OAuth2Authz::basic("$client-2",
                                                          'other-secret') ],
                              form => "token=$rjwt");
is($status, 200, 'another client revokes it: 200');
($status) = api('/revocable/x', $rjwt);
is($status, 200, '... and nothing happened');

($status, my $h, $body) = OAuth2Authz::http(
    port => $port, method => 'POST', path => '/oauth2/revoke',
    headers => [ OAuth2Authz::basic($client, 'jwt-secret') ],
    form => "token=$rjwt&token_type_hint=access_token");
is($status, 200, 'its client revokes it: 200');
is(OAuth2Test::redis('EXISTS', "oauth2:revoked:$rjti"), 1,
   'oauth2:revoked:<jti> is set');
my $ttl = OAuth2Test::redis('TTL', "oauth2:revoked:$rjti");
cmp_ok($ttl, '>', 3600, 'until the JWT\'s exp and a leeway');
cmp_ok($ttl, '<=', 3600 + 300, '... no longer');
is(OAuth2Test::redis('EXISTS', "oauth2:jwt:$rjti"), 0,
   'the jti\'s record is gone');
($status) = api('/revocable/x', $rjwt);
is($status, 401, 'after the revocation: 401 (oauth2_jwt_revocation on)');

# client_credentials: sub is the client, no consent

($status, $doc) = token_req('/es/token', $client, 'jwt-secret',
                            'grant_type=client_credentials&scope=accounts');
is($status, 200, 'client_credentials JWT: 200');
$claims = b64url_json((split /\./, $doc->{access_token})[1]);
is($claims->{sub}, $client, 'client_credentials: sub is the client');
ok(!exists $claims->{consent_id}, 'client_credentials: no consent_id');
ok(!exists $doc->{refresh_token}, 'client_credentials: no refresh token');
($status, $body) = api('/machine/x', $doc->{access_token});
is($status, 200, 'client_credentials JWT at the gateway: 200');
is($body, "who=$client|$client", '... with its client');

my @bad = grep { /\[(alert|crit|emerg)\]/ } $n->error_log;
is(scalar(@bad), 0, 'no alert, crit or emerg') or diag @bad;

$n->stop;

done_testing();
