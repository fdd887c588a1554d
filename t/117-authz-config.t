# The authorization server's directives under `nginx -t`: what is
# accepted, and every refusal with a message that names the directive.
# Plain Test::More: nginx is only asked to test its configuration.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2JWT;

my $nginx  = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES}
    or plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set';
my $redis  = $ENV{TEST_NGINX_REDIS_PORT} || 6379;
my $keys   = OAuth2JWT::setup();

sub nginx_t {
    my ($http, $server) = @_;
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/conf";
    mkdir "$dir/logs";
    open my $fh, '>', "$dir/conf/nginx.conf" or die $!;
    print $fh <<"EOF";
load_module $module;
error_log logs/error.log;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    $http
    server {
        listen 127.0.0.1:1;
        $server
    }
}
EOF
    close $fh;
    my $out = `$nginx -p $dir/ -c conf/nginx.conf -t 2>&1`;
    return ($? >> 8, $out);
}

sub ok_conf {
    my ($name, $http, $server) = @_;
    my ($rc, $out) = nginx_t($http, $server);
    is($rc, 0, "$name: nginx -t accepts it") or diag $out;
}

sub bad_conf {
    my ($name, $http, $server, $re) = @_;
    my ($rc, $out) = nginx_t($http, $server);
    isnt($rc, 0, "$name: nginx -t fails");
    like($out, $re, "$name: the message says why");
}

my $r = "oauth2_redis 127.0.0.1:$redis;";

ok_conf('every endpoint and setting', "$r
         oauth2_consent_ttl 30d; oauth2_code_ttl 2m;
         oauth2_token_client_auth client_secret_basic client_secret_post;
         oauth2_token_errors rfc6749; oauth2_access_token_ttl 15m;
         oauth2_refresh_token_ttl 30d; oauth2_authorize_pkce optional;
         oauth2_authorize_login https://login.example/consent?x=1;",
        'location = /a { oauth2_authorize; }
         location = /d { oauth2_authorize_decision user=$remote_user; }
         location = /t { oauth2_token;
             oauth2_access_token_format jwt ES256 ' . "$keys/ec256.pem"
             . ' kid=k1 iss=https://bank.example aud=api; }
         location /c/ { oauth2_consent_api; }
         location = /r { oauth2_revoke; }');

ok_conf('jwt with RS256 and HS256 (a file, a literal)', $r,
        "location = /t1 { oauth2_token;
             oauth2_access_token_format jwt RS256 $keys/rsa.pem; }
         location = /t2 { oauth2_token;
             oauth2_access_token_format jwt HS256 $keys/hs.secret; }
         location = /t3 { oauth2_token;
             oauth2_access_token_format jwt HS256
                 0123456789abcdef0123456789abcdef; }");

ok_conf('a format inherited, opaque again below', "$r
         oauth2_access_token_format jwt ES256 $keys/ec256.pem;",
        'location = /t { oauth2_token; }
         location = /o { oauth2_token; oauth2_access_token_format opaque; }');

bad_conf('no oauth2_redis', '', 'location = /t { oauth2_token; }',
         qr/"oauth2_token" needs an "oauth2_redis" \(or "oauth2_redis_sentinel"\) in the http block/);

bad_conf('oauth2 on around an endpoint', $r,
         'oauth2 on; location = /t { oauth2_revoke; }',
         qr/"oauth2_revoke" is in a location where "oauth2" is on: the endpoint authenticates its clients itself, add "oauth2 off;"/);

ok_conf('oauth2 on around, off in the endpoint', $r,
        'oauth2 on; location = /t { oauth2 off; oauth2_token; }');

bad_conf('two endpoints in a location', $r,
         'location = /t { oauth2_token; oauth2_revoke; }',
         qr/"oauth2_revoke": the location has "oauth2_token" already/);

bad_conf('an endpoint and proxy_pass', $r,
         'location = /t { proxy_pass http://127.0.0.1:2; oauth2_token; }',
         qr/"oauth2_token": the location has a content handler already/);

bad_conf('an endpoint in the server block', $r, 'oauth2_token;',
         qr/"oauth2_token" directive is not allowed here/);

bad_conf('authorize without a login URL', $r,
         'location = /a { oauth2_authorize; }',
         qr/"oauth2_authorize" needs an "oauth2_authorize_login" URL/);

bad_conf('a login URL with a fragment', $r,
         'location = /a { oauth2_authorize;
                          oauth2_authorize_login https://x/#top; }',
         qr/invalid "oauth2_authorize_login" "https:\/\/x\/#top": a URL without spaces, control characters or a fragment expected/);

bad_conf('oauth2_authorize_pkce maybe', $r,
         'location = /a { oauth2_authorize; oauth2_authorize_login /l;
                          oauth2_authorize_pkce maybe; }',
         qr/invalid value "maybe" in "oauth2_authorize_pkce": "required" or "optional" expected/);

bad_conf('a decision parameter', $r,
         'location = /d { oauth2_authorize_decision who=$remote_user; }',
         qr/invalid parameter "who=\$remote_user" in "oauth2_authorize_decision": user=VALUE expected/);

bad_conf('oauth2_token_client_auth none', $r,
         'location = /t { oauth2_token; oauth2_token_client_auth none; }',
         qr/invalid value "none" in "oauth2_token_client_auth": "client_secret_basic" or "client_secret_post" expected/);

bad_conf('oauth2_token_errors rfc', $r,
         'location = /t { oauth2_token; oauth2_token_errors rfc; }',
         qr/invalid value "rfc" in "oauth2_token_errors": "guide" or "rfc6749" expected/);

for my $d (qw(oauth2_consent_ttl oauth2_code_ttl oauth2_access_token_ttl
              oauth2_refresh_token_ttl)) {
    bad_conf("$d 0", $r, "location = /t { oauth2_token; $d 0; }",
             qr/"$d" must be 1s to 10y in .*nginx\.conf/);
    bad_conf("$d 11y", $r, "location = /t { oauth2_token; $d 11y; }",
             qr/"$d" must be 1s to 10y/);
}

bad_conf('format jwt without a key', $r,
         'location = /t { oauth2_token; oauth2_access_token_format jwt; }',
         qr/invalid "oauth2_access_token_format": opaque, or jwt ALG KEY/);

bad_conf('format opaque with a key', $r,
         "location = /t { oauth2_token;
              oauth2_access_token_format opaque $keys/ec256.pem; }",
         qr/"oauth2_access_token_format opaque" takes no parameters/);

bad_conf('format twice', $r,
         "location = /t { oauth2_token; oauth2_access_token_format opaque;
              oauth2_access_token_format opaque; }",
         qr/"oauth2_access_token_format" directive is duplicate/);

bad_conf('an unknown algorithm', $r,
         "location = /t { oauth2_token;
              oauth2_access_token_format jwt PS256 $keys/rsa.pem; }",
         qr/invalid algorithm "PS256" in "oauth2_access_token_format"/);

bad_conf('an algorithm in lower case', $r,
         "location = /t { oauth2_token;
              oauth2_access_token_format jwt es256 $keys/ec256.pem; }",
         qr/invalid algorithm "es256" in "oauth2_access_token_format": write it as "ES256"/);

bad_conf('a public key for signing', $r,
         "location = /t { oauth2_token;
              oauth2_access_token_format jwt ES256 $keys/ec256.pub; }",
         qr/"oauth2_access_token_format": ".*ec256\.pub" is not a PEM private key/);

bad_conf('a missing key file', $r,
         "location = /t { oauth2_token;
              oauth2_access_token_format jwt RS256 $keys/nope.pem; }",
         qr/"oauth2_access_token_format": cannot open ".*nope\.pem"/);

bad_conf('an EC key for RS256', $r,
         "location = /t { oauth2_token;
              oauth2_access_token_format jwt RS256 $keys/ec256.pem; }",
         qr/is not an RSA key of 2048 bits at least/);

bad_conf('a P-384 key for ES256', $r,
         "location = /t { oauth2_token;
              oauth2_access_token_format jwt ES256 $keys/ec384.pem; }",
         qr/is not an EC key on the curve of ES256/);

bad_conf('a short HS256 secret', $r,
         'location = /t { oauth2_token;
              oauth2_access_token_format jwt HS256 short-secret; }',
         qr/"oauth2_access_token_format": the HS256 secret must be 32 bytes at least/);

bad_conf('an unknown parameter', $r,
         "location = /t { oauth2_token;
              oauth2_access_token_format jwt ES256 $keys/ec256.pem id=1; }",
         qr/invalid parameter "id=1" in "oauth2_access_token_format": kid=, iss= or aud= expected/);

done_testing();
