# The Debian package (make deb, util/debian): built from this tree,
# installed on this machine with apt-get, then
#
#   - its files: the module in /usr/lib/nginx/modules, mod-http-oauth2.conf
#     in /usr/share/nginx/modules-available, enabled by the symlink
#     /etc/nginx/modules-enabled/50-mod-http-oauth2.conf;
#   - dpkg -s: installed, Depends on the nginx ABI of Debian's nginx-dev
#     (and the installed nginx provides it) and on the package of every
#     library the module links;
#   - the stock /etc/nginx/nginx.conf with examples/sites-available/
#     oauth2-gateway in /etc/nginx/sites-enabled: nginx -t, then 200 with a
#     valid token, 401 without.  nginx runs on a copy of nginx.conf whose
#     only changes are its pid and log files and, instead of every site,
#     the test's site alone (the default site's port 80 is never touched);
#     the module comes from the package's modules-enabled symlink;
#   - the maintainer scripts: an admin's disabling survives a reinstall,
#     remove keeps the choice (50-...conf.removed), install enables it
#     again, purge leaves nothing behind.
#
# Whatever happens, the package is purged, the site removed and nginx
# stopped at the end.  Runs only as root, and not when the package is
# already installed (it would purge it).  Concurrent runs (other clones)
# wait for each other on a lock.  Plain Test::More.

use strict;
use warnings;

use Test::More;
use Cwd qw(abs_path);
use Fcntl qw(:flock);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;

$ENV{TEST_NGINX_REDIS_PORT} or plan skip_all => 'run by util/run-tests.sh';
$> == 0 or plan skip_all => 'installs a package: needs root';
-x '/usr/bin/apt-get' && -x '/usr/sbin/nginx'
    or plan skip_all => 'needs apt-get and Debian\'s nginx';

my $top   = abs_path("$FindBin::Bin/..");
my $pkg   = 'libnginx-mod-http-oauth2';
my $nginx = '/usr/sbin/nginx';
my $so    = '/usr/lib/nginx/modules/ngx_http_oauth2_module.so';
my $conf  = '/usr/share/nginx/modules-available/mod-http-oauth2.conf';
my $link  = '/etc/nginx/modules-enabled/50-mod-http-oauth2.conf';
my $site  = "oauth2-gateway-test-$$";

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or die "$f: $!\n";
    local $/;
    return <$fh>;
}

sub spew {
    my ($f, $text) = @_;
    open my $fh, '>', $f or die "$f: $!\n";
    print $fh $text;
    close $fh or die "$f: $!\n";
}

sub free_port {
    my $l = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0',
                                  ReuseAddr => 1) or die "listen: $!";
    return $l->sockport;
}

# the output of a command (stderr too) and its exit status
sub run {
    my $out = `@_ 2>&1`;
    return ($? >> 8, $out);
}

sub apt {
    return run('DEBIAN_FRONTEND=noninteractive apt-get -q -y'
               . ' -o DPkg::Lock::Timeout=300 --no-install-recommends', @_);
}

# dpkg's state of the package: '' when dpkg has never heard of it
sub pkg_state {
    my $s = `dpkg-query -W -f='\${db:Status-Abbrev}' $pkg 2>/dev/null`;
    $s =~ s/\s+$//;
    return $s;
}

sub listing { opendir my $d, $_[0] or return ''; join ' ', sort readdir $d }

# one run at a time on this machine
open my $lock, '>', '/run/lock/oauth2-deb-test.lock' or die "lock: $!";
flock $lock, LOCK_EX or die "flock: $!";

my $before = pkg_state();
$before eq '' || $before =~ /^[up]n/
    or plan skip_all => "$pkg is on this machine ($before): the test would "
                      . "purge it (apt-get purge $pkg first)";

my %was = (
    enabled   => listing('/etc/nginx/modules-enabled'),
    sites     => listing('/etc/nginx/sites-enabled'),
    modules   => -e '/usr/lib/nginx/modules',
    available => -e '/usr/share/nginx/modules-available',
);

my $tmp = tempdir(CLEANUP => 1);
chmod 0755, $tmp;
my $ngx = "$nginx -e $tmp/error.log -c $tmp/nginx.conf";
my ($installed, $started) = (0, 0);

sub stop_nginx {
    return unless $started;
    $started = 0;
    my $pid = -f "$tmp/nginx.pid" ? slurp("$tmp/nginx.pid") : undef;
    system("$ngx -s stop 2>/dev/null");
    if ($pid) {
        chomp $pid;
        for (1 .. 100) { last unless kill 0, $pid; sleep 0.05 }
    }
}

sub remove_site {
    unlink "/etc/nginx/sites-enabled/$site", "/etc/nginx/sites-available/$site";
}

sub cleanup {
    local ($?, $!, $@);
    stop_nginx();
    remove_site();
    if ($installed) {
        $installed = 0;
        my ($rc, $out) = apt('purge', $pkg);
        diag("cleanup: apt-get purge $pkg failed:\n$out") if $rc;
    }
    # the symlinks a broken package would leave (the test makes one itself)
    for my $l ($link, "$link.removed") {
        unlink $l if -l $l && readlink($l) eq $conf && pkg_state() !~ /^.i/;
    }
}

END { cleanup() }
$SIG{INT} = $SIG{TERM} = sub { exit 1 };    # END runs

# 1. build

my $deb = do {
    my ($version) = slurp("$top/util/debian/changelog") =~ /^\S+ \(([^)]+)\)/
        or die "util/debian/changelog: no version\n";
    chomp(my $arch = `dpkg --print-architecture`);
    "$top/build/${pkg}_${version}_$arch.deb";
};

{
    local @ENV{qw(MAKEFLAGS MFLAGS MAKELEVEL)};
    delete @ENV{qw(MAKEFLAGS MFLAGS MAKELEVEL)};
    my ($rc, $out) = run("make -s -C $top deb");
    is($rc, 0, 'make deb') or diag($out);
}
ok(-f $deb, "make deb made $deb") or BAIL_OUT("no package to test");

# 2. install

$installed = 1;
{
    my ($rc, $out) = apt('install', $deb);
    is($rc, 0, "apt-get install $deb") or diag($out);
}
is(pkg_state(), 'ii', 'dpkg: installed');

ok(-f $so, "the module is $so");
is(-f $conf ? slurp($conf) : undef,
   "load_module modules/ngx_http_oauth2_module.so;\n",
   "$conf loads it from nginx's modules directory");
ok(-l $link, "$link is a symlink");
is(readlink($link), $conf, "$link points to $conf");

{
    my %files = map { $_ => 1 } split /\n/, `dpkg -L $pkg`;
    ok($files{$_}, "dpkg -L $pkg lists $_") for $so, $conf;
}

# 3. Depends

my %status;
{
    my ($rc, $out) = run("dpkg -s $pkg");
    while ($out =~ /^([\w-]+): (.*(?:\n .*)*)/mg) { $status{$1} = $2 }
}
my @depends = map { (split ' ', $_)[0] } split /,\s*/, $status{Depends} // '';
my %depends = map { $_ => 1 } @depends;
note("Depends: " . ($status{Depends} // ''));

my ($abi) = slurp('/usr/share/nginx/src/debian/libnginx-mod.abisubstvars')
    =~ /^nginx:abi=(\S+)/m;
ok($abi, "nginx-dev's ABI: " . ($abi // 'none'));
ok($abi && $depends{$abi}, "Depends on $abi");
{
    my ($rc, $out) = run('dpkg -s nginx');
    my ($provides) = $out =~ /^Provides: (.*)$/m;
    like($provides // '', qr/(?:^|,\s*)\Q$abi\E(?:,|$)/,
         "the installed nginx provides $abi");
}

# the package of every library the module links
my @needed = `objdump -p $so` =~ /^\s*NEEDED\s+(\S+)/mg;
ok(scalar(@needed), "the module links @needed");
my %path = `ldd $so` =~ /^\s*(\S+) => (\S+)/mg;
for my $lib (@needed) {
    my $p = $path{$lib};
    my $owner;
    # dpkg knows a library by the path its package ships (/lib or /usr/lib)
    for my $c (grep { defined } $p, $p && abs_path($p),
                                $p && $p =~ s{^/usr}{}r, $p && "/usr$p") {
        last if ($owner) = `dpkg -S $c 2>/dev/null` =~ /^([\w.+-]+)(?::\S+)?: /;
    }
    ok($owner && $depends{$owner},
       "$lib (" . ($p // 'not found') . ", package " . ($owner // '?')
       . ") is in Depends");
}

# 4. the stock nginx.conf with the example site

my ($port, $backend) = (free_port(), free_port());
my $redis = $ENV{TEST_NGINX_REDIS_PORT};

# replaces exactly one match of $re in $$text
sub once {
    my ($text, $re, $with, $what) = @_;
    my $n = () = $$text =~ /$re/g;
    is($n, 1, "$what: one line to adapt") or return;
    $$text =~ s/$re/$with/;
}

my $example = slurp("$top/examples/sites-available/oauth2-gateway");
once(\$example, qr/^oauth2_redis\s+127\.0\.0\.1:6379;$/m,
     "oauth2_redis 127.0.0.1:$redis;", 'site: oauth2_redis');
once(\$example, qr/listen\s+8080;/, "listen 127.0.0.1:$port;",
     'site: listen');
once(\$example, qr/server\s+127\.0\.0\.1:8081;/,
     "server 127.0.0.1:$backend;", 'site: the upstream');
$example =~ s{/var/log/nginx/}{$tmp/}g;
$example .= <<"_EOC_";

# the test's backend
server {
    listen 127.0.0.1:$backend;
    default_type application/json;
    location / {
        return 200 '{"path":"\$uri","client":"\$http_x_oauth2_client_id"}';
    }
}
_EOC_

spew("/etc/nginx/sites-available/$site", $example);
symlink("/etc/nginx/sites-available/$site", "/etc/nginx/sites-enabled/$site")
    or die "symlink: $!";

my $main = slurp('/etc/nginx/nginx.conf');
like($main, qr{^include /etc/nginx/modules-enabled/\*\.conf;$}m,
     'nginx.conf includes /etc/nginx/modules-enabled/*.conf');
once(\$main, qr{^pid\s+\S+;$}m, "pid $tmp/nginx.pid;", 'nginx.conf: pid');
once(\$main, qr{include /etc/nginx/sites-enabled/\*;},
     "include /etc/nginx/sites-enabled/$site;", 'nginx.conf: the sites');
$main =~ s{^(\s*(?:error|access)_log\s+)/var/log/nginx/}{$1$tmp/}mg;
spew("$tmp/nginx.conf", $main);

{
    my ($rc, $out) = run("$ngx -t");
    is($rc, 0, 'nginx -t: the stock nginx.conf and the site') or diag($out);
}

{
    my ($rc, $out) = run($ngx);
    is($rc, 0, 'nginx starts') or diag($out);
    $started = 1;
    for (1 .. 100) {
        last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
        sleep 0.05;
    }
}

$ENV{TEST_NGINX_SERVER_PORT} = $port;
my $token = "deb-test-token-$$";
# (status, body); status 0 when nginx does not answer
sub get {
    my @r = eval { OAuth2Test::http_get(@_) };
    return @r ? @r : (0, $@);
}

OAuth2Test::seed_valid($token, client_id => 'tpp-deb',
                       scope => 'accounts paymentRequest');

{
    my ($status, $body) = get(
        '/open-banking/v3.1/aisp/accounts', "Authorization: Bearer $token");
    is($status, 200, 'a valid token: 200');
    like($body, qr/"client":"tpp-deb"/, 'the backend got $oauth2_client_id');

    ($status, $body) = get('/open-banking/v3.1/aisp/accounts');
    is($status, 401, 'no token: 401');
    like($body, qr/"httpCode":"401"/, "the module's JSON error");

    ($status, $body) = get('/open-banking/v3.1/pisp/x',
                           'Authorization: Bearer nope');
    is($status, 401, 'an unknown token: 401');

    ($status, $body) = get('/health');
    is($status, 200, '/health (oauth2 off): 200');
}

stop_nginx();
my $log = -f "$tmp/error.log" ? slurp("$tmp/error.log") : '';
unlike($log, qr/\[(?:alert|crit|emerg)\]/, 'no alert, crit or emerg')
    or diag($log);
like(-f "$tmp/oauth2-gateway.access.log"
         ? slurp("$tmp/oauth2-gateway.access.log") : '',
     qr/ 200 client=tpp-deb /, "the site's access log has the client");
remove_site();
OAuth2Test::redis('DEL', OAuth2Test::token_key($token));

# 5. the maintainer scripts: disabled stays disabled, remove, purge

unlink $link;
{
    my ($rc, $out) = apt('install --reinstall', $deb);
    is($rc, 0, 'apt-get install --reinstall') or diag($out);
}
ok(!-e $link && !-l $link, 'a module the admin disabled stays disabled');
symlink($conf, $link) or die "symlink: $!";

{
    my ($rc, $out) = apt('remove', $pkg);
    is($rc, 0, "apt-get remove $pkg") or diag($out);
}
ok(!-e $so && !-e $conf, 'remove: module and conf gone');
ok(!-l $link && -l "$link.removed",
   'remove: the symlink kept as 50-mod-http-oauth2.conf.removed');

{
    my ($rc, $out) = apt('install', $deb);
    is($rc, 0, 'apt-get install again') or diag($out);
}
ok(-l $link && !-l "$link.removed", 'installed again: enabled again');

{
    my ($rc, $out) = apt('purge', $pkg);
    is($rc, 0, "apt-get purge $pkg") or diag($out);
    $installed = 0 if $rc == 0;
}
like(pkg_state(), qr/^(?:|[up]n)$/, 'dpkg: not installed');
ok(!-e $so, "purge: $so gone");
ok(!-e $conf, "purge: $conf gone");
ok(!-l $link && !-l "$link.removed", 'purge: no symlink left');
is(listing('/etc/nginx/modules-enabled'), $was{enabled},
   '/etc/nginx/modules-enabled as it was');
is(listing('/etc/nginx/sites-enabled'), $was{sites},
   '/etc/nginx/sites-enabled as it was');
is(!!-e '/usr/lib/nginx/modules', !!$was{modules},
   '/usr/lib/nginx/modules there as before (or not)');
is(!!-e '/usr/share/nginx/modules-available', !!$was{available},
   '/usr/share/nginx/modules-available there as before (or not)');

done_testing();
