# The module beside Debian's own dynamic modules (nginx-extras).
#
# nginx loads modules with dlopen(RTLD_GLOBAL): a name one module exports
# can bind the calls of the modules loaded after it.  Debian's nchan
# (libnginx-mod-nchan, pulled by nginx-extras) carries a hiredis 1.x and
# exports it; a module linked against libhiredis.so 0.14 then calls into
# the wrong hiredis and its workers die on signal 11.  So:
#
#   - the built .so exports exactly the module's own names and does not
#     need libhiredis.so (hiredis is linked in, hidden; see
#     docs/operations.md);
#   - nginx-extras is installed when missing (the test skips only when apt
#     cannot be used), and an nginx that loads every module of
#     /etc/nginx/modules-enabled and ours, ours first and ours last,
#     answers a known token with the upstream's 200 and an unknown one with
#     401, nchan publishes through Redis, and nothing at [alert], [crit] or
#     [emerg] is logged (no worker exits on a signal).
#
# Plain Test::More: it runs its own nginx.

use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Cwd qw(realpath);
use Time::HiRes qw(sleep);
use OAuth2Test;
use OAuth2Nginx;

$ENV{TEST_NGINX_LOAD_MODULES} && $ENV{TEST_NGINX_REDIS_PORT}
    or plan skip_all => 'run by util/run-tests.sh';

my $nginx = realpath(OAuth2Nginx::binary()) // '';
$nginx eq '/usr/sbin/nginx'
    or plan skip_all => "Debian's modules load only into Debian's nginx,"
                        . " not $nginx";

my $redis = $ENV{TEST_NGINX_REDIS_PORT};
my $so = OAuth2Nginx::module();
my $enabled = '/etc/nginx/modules-enabled';

sub installed {
    my ($pkg) = @_;
    return `dpkg-query -W -f='\${Status}' $pkg 2>/dev/null`
        =~ /install ok installed/;
}

# 1. nginx-extras: installed when missing, like make deps does

my $apt_out = '';

if (!installed('nginx-extras')) {
    my $sudo = $> == 0 ? '' : 'sudo -n ';

    system('command -v apt-get >/dev/null 2>&1') == 0
        or plan skip_all => 'nginx-extras is not installed and there is no'
                            . ' apt-get';
    $> == 0 || system('sudo -n true >/dev/null 2>&1') == 0
        or plan skip_all => 'nginx-extras is not installed and apt-get'
                            . ' needs root (no root, no sudo -n)';

    my $install = "${sudo}env DEBIAN_FRONTEND=noninteractive apt-get install"
                  . " -y -qq --no-install-recommends nginx-extras";
    $apt_out = `${sudo}apt-get update -qq 2>&1 && $install 2>&1`;
}

ok(installed('nginx-extras'), 'nginx-extras is installed')
    or diag("apt-get install nginx-extras failed:\n$apt_out");

# 2. what the module exports, what it needs

my @nm = `nm -D --defined-only $so 2>&1`;
is($?, 0, 'nm -D runs') or diag(@nm);

my @exported = sort map { /^[0-9a-f]*\s+\w\s+(\S+)$/ ? $1 : "?$_" } @nm;

is_deeply(\@exported,
          [qw(ngx_http_oauth2_module ngx_module_names ngx_module_order
              ngx_modules)],
          'the module exports its four names and nothing else')
    or diag("nm -D --defined-only $so:\n", @nm);

my @needed = map { /\(NEEDED\).*\[(.*)\]/ ? $1 : () } `readelf -d $so`;

ok(@needed, 'readelf -d lists the libraries the module needs')
    or diag(`readelf -d $so 2>&1`);
is_deeply([grep /hiredis/, @needed], [],
          'libhiredis.so is not needed (hiredis is linked in)')
    or diag("NEEDED: @needed");

# 3. nginx with every module of modules-enabled, ours first and ours last

my @confs = sort glob "$enabled/*.conf";
ok(scalar(grep m{/[^/]*nchan[^/]*\.conf$}, @confs),
   "$enabled has nchan (" . scalar(@confs) . " modules)")
    or diag("$enabled: @confs");

# load_module lines name "modules/x.so", relative to nginx's prefix
my ($prefix) = `$nginx -V 2>&1` =~ /--prefix=(\S+)/;
$prefix //= '/usr/share/nginx';

my %common = (links => { modules => "$prefix/modules" },
              main => "include $enabled/*.conf;",
              timeout => 5);

my $http = <<"_EOC_";
    oauth2_redis 127.0.0.1:$redis;

    upstream nchan_redis {
        nchan_redis_server redis://127.0.0.1:$redis;
    }

    server {
        listen 127.0.0.1:\$PORT;

        location /api {
            oauth2 on;
            proxy_set_header X-Client \$oauth2_client_id;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }

        location /backend {
            return 200 "ok client=\$http_x_client\\n";
        }

        location /pub {
            nchan_publisher;
            nchan_channel_id \$arg_ch;
            nchan_redis_pass nchan_redis;
        }
    }
_EOC_

# Debian's modules alone, without ours: they all load with this set-up
# (start dies with nginx's message otherwise)
my $plain = OAuth2Nginx->start(%common, no_module => 1, http => <<'_EOC_');
    server {
        listen 127.0.0.1:$PORT;
        location / { return 200 "plain\n"; }
    }
_EOC_
my ($status, undef, $body) = $plain->request('/');
is("$status $body", "200 plain\n", "nginx with the " . scalar(@confs)
                                    . " modules of $enabled, without ours");
$plain->stop;

for my $order ('first', 'last') {
    my $token = "t095-token-$order";
    OAuth2Test::seed_valid($token, client_id => "client-$order",
                           scope => 'accounts');

    my $n = OAuth2Nginx->start(%common, http => $http,
                               module_after => $order eq 'last');

    my $h;
    ($status, $h, $body) = $n->request('/api',
                                       "Authorization: Bearer $token");
    is("$status $body", "200 ok client=client-$order\n",
       "ours $order: a known token gets the upstream's answer");

    ($status, $h, $body) = $n->request('/api',
                                       'Authorization: Bearer t095-unknown');
    is($status, 401, "ours $order: an unknown token gets 401");
    like($body, qr/"httpCode":"401"/, "ours $order: with the JSON body");

    ($status) = $n->request('/api', "Authorization: Bearer $token");
    is($status, 200, "ours $order: the known token again");

    # nchan answers 503 until its Redis connection is up
    my @seen;
    for (1 .. 50) {
        ($status) = $n->request({ method => 'POST',
                                  path => "/pub?ch=t095-$order",
                                  body => "hello $order" });
        push @seen, $status;
        last unless $status == 503;
        sleep 0.1;
    }
    is($status, 202, "ours $order: nchan publishes")
        or diag("statuses: @seen");
    my $keys = OAuth2Test::redis('KEYS', "{channel:/t095-$order}*");
    ok(@$keys, "ours $order: through Redis (@$keys)");
    OAuth2Test::redis('DEL', @$keys) if @$keys;

    $n->stop;

    my @bad = grep { /\[(alert|crit|emerg)\]/ || /exited on signal/ }
              $n->error_log;
    is_deeply(\@bad, [], "ours $order: nothing at [alert], [crit] or"
                         . " [emerg], no worker killed")
        or diag(scalar(@bad) . " lines, the first:\n",
                @bad[0 .. ($#bad < 4 ? $#bad : 4)]);
}

done_testing();
