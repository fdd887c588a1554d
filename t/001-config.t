# Configuration errors are caught by `nginx -t`, with a message that names
# the directive.  Plain Test::More: nginx is only asked to test its
# configuration, never started.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);

my $nginx  = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES}
    or plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set';
my $redis  = $ENV{TEST_NGINX_REDIS_PORT} || 6379;

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

ok_conf('minimal', "oauth2_redis 127.0.0.1:$redis;",
        'location / { oauth2 on; oauth2_scope accounts; }');

ok_conf('every directive',
        "oauth2_redis localhost:$redis; oauth2_redis_password gw secret;
         oauth2_redis_db 2; oauth2_redis_timeout 250ms;
         oauth2_redis_prefix bank:; oauth2_cache zone=tok:1m ttl=10s;
         oauth2_realm bank; oauth2_consent off; oauth2_token_max_length 1k;
         oauth2_error_message 401 \"Token required\";",
        'location / { oauth2 on; oauth2_scope_any a b; oauth2_scope c; }');

ok_conf('unix socket', 'oauth2_redis unix:/tmp/redis.sock;',
        'location / { oauth2 on; }');

ok_conf('module loaded, not used', '', 'location / { }');

bad_conf('oauth2 without redis', '', 'location / { oauth2 on; }',
         qr/"oauth2" is on but no "oauth2_redis" is configured/);

bad_conf('bad redis address', 'oauth2_redis 127.0.0.1:notaport;', '',
         qr/invalid "oauth2_redis" address "127.0.0.1:notaport"/);

bad_conf('unresolvable redis host',
         'oauth2_redis no-such-host.invalid:6379;', '',
         qr/no-such-host.invalid/);

bad_conf('redis in a location', '',
         "location / { oauth2_redis 127.0.0.1:$redis; }",
         qr/"oauth2_redis" directive is not allowed here/);

bad_conf('duplicate redis',
         "oauth2_redis 127.0.0.1:$redis; oauth2_redis 127.0.0.1:$redis;", '',
         qr/"oauth2_redis" directive is duplicate/);

bad_conf('bad flag', "oauth2_redis 127.0.0.1:$redis;",
         'location / { oauth2 maybe; }',
         qr/invalid value "maybe" in "oauth2" directive/);

bad_conf('bad db', "oauth2_redis 127.0.0.1:$redis; oauth2_redis_db -1;", '',
         qr/oauth2_redis_db/);

bad_conf('db out of range',
         "oauth2_redis 127.0.0.1:$redis; oauth2_redis_db 70000;", '',
         qr/oauth2_redis_db/);

bad_conf('bad timeout',
         "oauth2_redis 127.0.0.1:$redis; oauth2_redis_timeout soon;", '',
         qr/oauth2_redis_timeout/);

bad_conf('claim variable without $',
         "oauth2_redis 127.0.0.1:$redis;
          oauth2_jwt_claim_variable jwt_user userName;", '',
         qr/invalid variable name "jwt_user" in "oauth2_jwt_claim_variable": \$NAME expected/);

bad_conf('claim variable with an empty member',
         "oauth2_redis 127.0.0.1:$redis;
          oauth2_jwt_claim_variable \$x cnf..jkt;", '',
         qr/invalid claim "cnf\.\.jkt" in "oauth2_jwt_claim_variable": an empty name/);

bad_conf('connect_timeout without a time',
         "oauth2_redis 127.0.0.1:$redis;
          oauth2_redis_timeout 1s connect_timeout=;", '',
         qr/"oauth2_redis_timeout" must be more than 0/);

# oauth2_redis_timeout: a time or timeout=, connect_timeout=,
# handshake_timeout=, in any order, each once
ok_conf("oauth2_redis_timeout $_",
        "oauth2_redis 127.0.0.1:$redis; oauth2_redis_timeout $_;", '')
    for 'timeout=500ms', 'connect_timeout=2s', 'handshake_timeout=2s',
        'connect_timeout=2s 500ms', 'timeout=500ms connect_timeout=1s',
        '500ms connect_timeout=1s handshake_timeout=3s',
        'handshake_timeout=3s connect_timeout=1s timeout=500ms';

bad_conf('oauth2_redis_timeout: a time and timeout=',
         "oauth2_redis 127.0.0.1:$redis;
          oauth2_redis_timeout 500ms timeout=1s;", '',
         qr/"oauth2_redis_timeout" sets "timeout=1s" twice/);

bad_conf('oauth2_redis_timeout: connect_timeout= twice',
         "oauth2_redis 127.0.0.1:$redis;
          oauth2_redis_timeout connect_timeout=1s connect_timeout=2s;", '',
         qr/"oauth2_redis_timeout" sets "connect_timeout=2s" twice in/);

bad_conf('oauth2_redis_timeout: not a time',
         "oauth2_redis 127.0.0.1:$redis; oauth2_redis_timeout abc;", '',
         qr/invalid time "abc" in "oauth2_redis_timeout"/);

bad_conf('oauth2_redis_timeout: an unknown parameter',
         "oauth2_redis 127.0.0.1:$redis;
          oauth2_redis_timeout read_timeout=1s;", '',
         qr/invalid parameter "read_timeout=1s" in "oauth2_redis_timeout"/);

bad_conf('oauth2_redis_timeout twice',
         "oauth2_redis 127.0.0.1:$redis;
          oauth2_redis_timeout 1s; oauth2_redis_timeout connect_timeout=2s;",
         '', qr/"oauth2_redis_timeout" directive is duplicate/);

bad_conf('oauth2_redis and oauth2_redis_sentinel together',
         "oauth2_redis 127.0.0.1:$redis;
          oauth2_redis_sentinel 127.0.0.1:26379 master=m;", '',
         qr/"oauth2_redis" and "oauth2_redis_sentinel" both say where Redis is/);

bad_conf('oauth2_redis_sentinel without master=',
         "oauth2_redis_sentinel 127.0.0.1:26379 127.0.0.1:26380;", '',
         qr/"oauth2_redis_sentinel" needs at least one Sentinel address and master=NAME/);

# the Sentinels' credentials: user= and password= are accepted; an empty
# password= or user=, or a user= without a password=, fail with the
# directive named
ok_conf('oauth2_redis_sentinel with user= and password=',
        'oauth2_redis_sentinel 127.0.0.1:26379 master=m user=gw password=x;',
        'location / { oauth2 on; }');

bad_conf('oauth2_redis_sentinel with an empty password=',
         'oauth2_redis_sentinel 127.0.0.1:26379 master=m password=;', '',
         qr/"oauth2_redis_sentinel": an empty user or password, or a user without a password/);

bad_conf('oauth2_redis_sentinel with an empty user=',
         'oauth2_redis_sentinel 127.0.0.1:26379 master=m user= password=x;',
         '',
         qr/"oauth2_redis_sentinel": an empty user or password, or a user without a password/);

bad_conf('oauth2_redis_sentinel with user= but no password=',
         'oauth2_redis_sentinel 127.0.0.1:26379 master=m user=gw;', '',
         qr/"oauth2_redis_sentinel": an empty user or password, or a user without a password/);

bad_conf('a database in the URL out of range',
         "oauth2_redis redis://127.0.0.1:$redis/70000;", '',
         qr/invalid "oauth2_redis" URL "redis:\/\/127\.0\.0\.1:\d+\/70000": the database must be 0 to 65535/);

# a URL's TLS, database and credentials said again by the directives, in
# either order: the same value is fine, another one an error naming both
for my $order (0, 1) {
    my $both = sub { $order ? "$_[1] $_[0]" : "$_[0] $_[1]" };
    my $o = $order ? 'directive first' : 'URL first';
    ok_conf("rediss:// and oauth2_redis_ssl on, $o",
            $both->("oauth2_redis rediss://127.0.0.1:$redis;",
                    'oauth2_redis_ssl on; oauth2_redis_ssl_verify off;'), '');
    bad_conf("rediss:// and oauth2_redis_ssl off, $o",
             $both->("oauth2_redis rediss://127.0.0.1:$redis;",
                     'oauth2_redis_ssl off;'), '',
             qr/"oauth2_redis" "rediss:\/\/127\.0\.0\.1:\d+" asks for TLS but "oauth2_redis_ssl off" is set/);
    bad_conf("redis:// and oauth2_redis_ssl on, $o",
             $both->("oauth2_redis redis://127.0.0.1:$redis;",
                     'oauth2_redis_ssl on;'), '',
             qr/"oauth2_redis" "redis:\/\/127\.0\.0\.1:\d+" asks for no TLS but "oauth2_redis_ssl on" is set/);
    ok_conf("an address without a scheme and oauth2_redis_ssl on, $o",
            $both->("oauth2_redis 127.0.0.1:$redis;",
                    'oauth2_redis_ssl on; oauth2_redis_ssl_verify off;'), '');
    ok_conf("redis://.../2 and oauth2_redis_db 2, $o",
            $both->("oauth2_redis redis://127.0.0.1:$redis/2;",
                    'oauth2_redis_db 2;'), '');
    bad_conf("redis://.../2 and oauth2_redis_db 3, $o",
             $both->("oauth2_redis redis://127.0.0.1:$redis/2;",
                     'oauth2_redis_db 3;'), '',
             qr/"oauth2_redis" "redis:\/\/127\.0\.0\.1:\d+\/2" selects database 2 but "oauth2_redis_db 3" is set/);
    ok_conf("a URL's password and oauth2_redis_password, the same, $o",
            $both->("oauth2_redis redis://gw:pw\@127.0.0.1:$redis;",
                    'oauth2_redis_password gw pw;'), '');
    bad_conf("a URL's password and oauth2_redis_password, another, $o",
             $both->("oauth2_redis redis://gw:pw\@127.0.0.1:$redis;",
                     'oauth2_redis_password gw other;'), '',
             qr/the "oauth2_redis" URL's user and password are not those of "oauth2_redis_password": keep one of the two/);
    bad_conf("a URL's password and oauth2_redis_password's user, $o",
             $both->("oauth2_redis redis://:pw\@127.0.0.1:$redis;",
                     'oauth2_redis_password gw pw;'), '',
             qr/are not those of "oauth2_redis_password"/);
}

bad_conf('oauth2_redis_connections 0',
         "oauth2_redis 127.0.0.1:$redis; oauth2_redis_connections 0;", '',
         qr/"oauth2_redis_connections" must be between 1 and 64/);

bad_conf('rate limit zone too small',
         "oauth2_redis 127.0.0.1:$redis; oauth2_plan p 1r/s;
          oauth2_rate_limit_zone 4k;", '',
         qr/"oauth2_rate_limit_zone" zone "oauth2_rate_limit" of 4096 bytes is too small/);

ok_conf('URLs, TLS, Sentinel, dry run, claim variables',
        "oauth2_redis_sentinel 127.0.0.1:26379 [::1]:26380 master=m
             password=x;
         oauth2_redis_ssl on; oauth2_redis_ssl_verify off;
         oauth2_redis_connections 4;
         oauth2_redis_timeout 200ms connect_timeout=2s;
         oauth2_jwt_claim_variable \$jwt_thumb cnf.x5t#S256;",
        'location / { oauth2 on; oauth2_dry_run on;
                      oauth2_subrequests off; }');

bad_conf('zero timeout',
         "oauth2_redis 127.0.0.1:$redis; oauth2_redis_timeout 0;", '',
         qr/"oauth2_redis_timeout" must be more than 0/);

bad_conf('empty password',
         "oauth2_redis 127.0.0.1:$redis; oauth2_redis_password \"\";", '',
         qr/empty user or password in "oauth2_redis_password"/);

bad_conf('scope with a quote', "oauth2_redis 127.0.0.1:$redis;",
         "location / { oauth2 on; oauth2_scope 'a\"b'; }",
         qr/invalid scope "a"b" in "oauth2_scope"/);

bad_conf('duplicate scope directive', "oauth2_redis 127.0.0.1:$redis;",
         'location / { oauth2_scope a; oauth2_scope b; }',
         qr/"oauth2_scope" directive is duplicate/);

bad_conf('realm with a quote', "oauth2_realm 'a\"b';", '',
         qr/invalid "oauth2_realm"/);

bad_conf('error message code', 'oauth2_error_message 404 nope;', '',
         qr/invalid code "404" in "oauth2_error_message"/);

bad_conf('error message not UTF-8',
         "oauth2_error_message 401 \"\xff\xfe\";", '',
         qr/"oauth2_error_message" text for 401 is not valid UTF-8/);

bad_conf('duplicate error message',
         'oauth2_error_message 401 a; oauth2_error_message 401 b;', '',
         qr/duplicate "oauth2_error_message" for 401/);

bad_conf('token length too small', 'oauth2_token_max_length 8;', '',
         qr/oauth2_token_max_length/);

bad_conf('cache without zone', "oauth2_cache ttl=10s;", '',
         qr/"oauth2_cache" needs zone=NAME:SIZE/);

bad_conf('cache zone too small', "oauth2_cache zone=a:1k;", '',
         qr/"oauth2_cache" zone "a" of 1024 bytes is too small: \d+ bytes at least \(8 memory pages\)/);

bad_conf('cache bad ttl', "oauth2_cache zone=a:1m ttl=never;", '',
         qr/invalid parameter "ttl=never" in "oauth2_cache"/);

bad_conf('cache bad parameter', "oauth2_cache zone=a:1m size=3;", '',
         qr/invalid parameter "size=3" in "oauth2_cache"/);

# JWT keys are read and parsed at configuration time
my $kdir = tempdir(CLEANUP => 1);
system("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
       . "-out $kdir/ec.pem >/dev/null 2>&1") == 0 or die;
system("openssl pkey -in $kdir/ec.pem -pubout -out $kdir/ec.pub "
       . ">/dev/null 2>&1") == 0 or die;
system("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 "
       . "-out $kdir/small.pem >/dev/null 2>&1") == 0 or die;
system("openssl pkey -in $kdir/small.pem -pubout -out $kdir/small.pub "
       . ">/dev/null 2>&1") == 0 or die;
open my $junk, '>', "$kdir/junk.pem" or die;
print $junk "not a key\n";
close $junk;

ok_conf('jwt keys', "oauth2_redis 127.0.0.1:$redis;
         oauth2_jwt_key ES256 $kdir/ec.pub kid=k1;
         oauth2_jwt_key HS256 0123456789abcdef0123456789abcdef;",
        'location / { oauth2 on; oauth2_token_type auto; }');

bad_conf('jwt key file missing', "oauth2_jwt_key RS256 $kdir/nope.pub;", '',
         qr/"oauth2_jwt_key": cannot open "\Q$kdir\E\/nope.pub"/);

bad_conf('jwt key file not PEM', "oauth2_jwt_key RS256 $kdir/junk.pem;", '',
         qr/"oauth2_jwt_key": "\Q$kdir\E\/junk.pem" is not a PEM public key/);

bad_conf('RS key that is EC', "oauth2_jwt_key RS256 $kdir/ec.pub;", '',
         qr/is not an RSA key of 2048 bits at least/);

bad_conf('RSA key too small', "oauth2_jwt_key RS256 $kdir/small.pub;", '',
         qr/is not an RSA key of 2048 bits at least/);

bad_conf('ES384 key on P-256', "oauth2_jwt_key ES384 $kdir/ec.pub;", '',
         qr/is not an EC key on the curve of ES384/);

bad_conf('short HS secret', 'oauth2_jwt_key HS256 short;', '',
         qr/the HS256 secret must be 32 bytes at least/);

bad_conf('two keys with one kid',
         "oauth2_jwt_key ES256 $kdir/ec.pub kid=k1;
          oauth2_jwt_key HS256 0123456789abcdef0123456789abcdef kid=k1;", '',
         qr/"oauth2_jwt_key": a key with kid "k1" is already configured/);

bad_conf('two keys without kid',
         "oauth2_jwt_key ES256 $kdir/ec.pub;
          oauth2_jwt_key HS256 0123456789abcdef0123456789abcdef;", '',
         qr/"oauth2_jwt_key": a key without kid is already configured/);

bad_conf('unknown alg', "oauth2_jwt_key none $kdir/ec.pub;", '',
         qr/invalid algorithm "none" in "oauth2_jwt_key"/);

bad_conf('alg case', "oauth2_jwt_key es256 $kdir/ec.pub;", '',
         qr/write it as "ES256"/);

bad_conf('jwt without key', "oauth2_redis 127.0.0.1:$redis;",
         'location / { oauth2 on; oauth2_token_type jwt; }',
         qr/"oauth2_token_type" jwt or auto needs an "oauth2_jwt_key"/);

bad_conf('bad claim field', 'oauth2_jwt_claim email mail;', '',
         qr/invalid field "email" in "oauth2_jwt_claim"/);

bad_conf('bad plan limit', 'oauth2_plan gold 10r/w;', '',
         qr/invalid limit "10r\/w" in "oauth2_plan" "gold"/);

bad_conf('plan faster than a request per microsecond',
         'oauth2_plan fast 2000000r/s;', '',
         qr/invalid limit "2000000r\/s" in "oauth2_plan" "fast".*1000000r\/s at most/);

bad_conf('bad plan name', 'oauth2_plan "go ld" 10r/s;', '',
         qr/invalid plan name "go ld" in "oauth2_plan"/);

bad_conf('duplicate plan', 'oauth2_plan a 1r/s; oauth2_plan a 2r/s;', '',
         qr/duplicate "oauth2_plan" "a"/);

bad_conf('unknown default plan', 'oauth2_plan a 1r/s; oauth2_default_plan b;',
         '', qr/"oauth2_default_plan" "b" is not an "oauth2_plan"/);

bad_conf('bad fallback', 'oauth2_rate_limit_fallback maybe;', '',
         qr/invalid value "maybe" in \S+nginx.conf:7/);

# oauth2_metrics, oauth2_metrics_label

ok_conf('metrics', "oauth2_redis 127.0.0.1:$redis; oauth2_metrics_label api;",
        "location /metrics { oauth2_metrics; }
         location /metrics.json { oauth2_metrics json; }
         location /a { oauth2 on; oauth2_metrics_label \"comptes \xc3\xa9\"; }");

bad_conf('metrics label with a quote', '',
         q{location /a { oauth2_metrics_label 'a"b'; }},
         qr/invalid "oauth2_metrics_label" "a"b": 1 to 64 bytes of UTF-8 expected, without quotes, backslashes or control characters/);

bad_conf('metrics label with a tab', '',
         'location /a { oauth2_metrics_label "a\tb"; }',
         qr/invalid "oauth2_metrics_label"/);

bad_conf('metrics label of 65 bytes', '',
         'location /a { oauth2_metrics_label ' . ('x' x 65) . '; }',
         qr/invalid "oauth2_metrics_label" "x{65}": 1 to 64 bytes/);

bad_conf('metrics label not UTF-8', '',
         "location /a { oauth2_metrics_label a\xff\xfeb; }",
         qr/invalid "oauth2_metrics_label"/);

bad_conf('65 metrics labels', '',
         join(' ', map { "location /l$_ { oauth2_metrics_label l$_; }" }
                   1 .. 65),
         qr/too many "oauth2_metrics_label" values: 64 different ones at most/);

bad_conf('oauth2_metrics yaml', '', 'location /m { oauth2_metrics yaml; }',
         qr/invalid parameter "yaml" in "oauth2_metrics": "json" or nothing expected/);

bad_conf('oauth2_metrics in a server', '', 'oauth2_metrics;',
         qr/"oauth2_metrics" directive is not allowed here/);

bad_conf('more plans than the metrics count',
         join(' ', map { "oauth2_plan p$_ 1r/s;" } 1 .. 65),
         'location /m { oauth2_metrics; }',
         qr/"oauth2_metrics" counts 64 plans at most, and 65 "oauth2_plan" are configured/);

done_testing();
