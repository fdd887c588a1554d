# Sentinels that require a password (oauth2_redis_sentinel's password=
# and user=): one primary with a password of its own, three Sentinels
# (t/lib/OAuth2Redis.pm) with requirepass and an ACL user, which they also
# use between themselves.  The right password= (the Sentinels' default
# user), and the right user= and password= (their ACL user), find the
# primary: a seeded token gets 200.  A wrong password, a wrong user, or no
# password at all get the 503 JSON, and the error log names the Sentinel
# and what it refused (WRONGPASS, NOAUTH), never the password.
#
# Plain Test::More: its own Redis server, Sentinels and nginx instances.

use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(time sleep);
use OAuth2Redis;
use OAuth2Nginx;

$ENV{TEST_NGINX_LOAD_MODULES}
    or plan skip_all => 'run by util/run-tests.sh';

my $t0 = time;

my $Unavailable = '{"httpCode":"503","httpMessage":"Service Unavailable",'
    . '"moreInformation":"The service is temporarily unavailable, please '
    . 'retry later"}';

# the primary's password is not the Sentinels': the module must send each
# its own
my $topo = OAuth2Redis::topology(replicas => 0, sentinels => 3,
                                 name => 'oauth2',
                                 password => 'primary-pw',
                                 sentinel_password => 'sentinel-pw',
                                 sentinel_acl_user => ['sgw', 'sgw-pw']);
my $primary = $topo->primary;
my $sentinels = $topo->sentinels;
my %sentinel_port = map { $_ => 1 } $sentinels->ports;
my $addrs = join ' ', $sentinels->addrs;

my $key = 'oauth2:token:' . sha256_hex('tok-auth');
$primary->command('HSET', $key, client_id => 'tpp-sentinel-auth',
                  scope => 'accounts');
$primary->command('EXPIRE', $key, 3600);

# 0. the harness: the Sentinels really require a password, and take the
#    default user's and the ACL user's (else the 200s below prove nothing)

{
    my ($s) = $sentinels->nodes;
    like($s->cli_as({ user => undef, password => undef },
                    'SENTINEL', 'get-master-addr-by-name', 'oauth2'),
         qr/^NOAUTH/, 'a Sentinel without AUTH: NOAUTH');
    like($s->cli_as({ user => undef, password => 'sentinel-pw' },
                    'SENTINEL', 'get-master-addr-by-name', 'oauth2'),
         qr/\A127\.0\.0\.1\n${\ $primary->port}\z/,
         'a Sentinel, AUTH with requirepass: names the primary');
    like($s->cli_as({ user => 'sgw', password => 'sgw-pw' },
                    'SENTINEL', 'get-master-addr-by-name', 'oauth2'),
         qr/\A127\.0\.0\.1\n${\ $primary->port}\z/,
         'a Sentinel, AUTH with the ACL user: names the primary');
}

# an nginx whose oauth2_redis_sentinel ends with $auth
sub gateway {
    my ($auth) = @_;
    return OAuth2Nginx->gateway(<<"_EOC_");
    oauth2_redis_sentinel $addrs master=oauth2 $auth;
    oauth2_redis_password primary-pw;
    oauth2_redis_timeout 500ms;
_EOC_
}

sub get {
    my ($n) = @_;
    return $n->request('/api', 'Authorization: Bearer tok-auth');
}

# the first 200 within 3 s (the worker connects to a Sentinel, then to
# the primary), or the last answer
sub get_ok {
    my ($n) = @_;
    my @r;
    for (1 .. 60) {
        @r = get($n);
        last if $r[0] == 200;
        sleep 0.05;
    }
    return @r;
}

# every answer for 1 s (the worker has tried, and retried, the Sentinels)
sub statuses_for_1s {
    my ($n) = @_;
    my (%seen, $body);
    my $until = time + 1;
    while (time < $until) {
        my ($s, undef, $b) = get($n);
        $seen{$s}++;
        $body = $b if $s == 503;
        sleep 0.05;
    }
    return (join(',', sort keys %seen), $body);
}

sub log_lines {
    my ($n, $re) = @_;
    return grep { /$re/ } $n->error_log;
}

sub no_alert {
    my ($n, $label) = @_;
    my @bad = log_lines($n, qr/\[(alert|crit|emerg)\]/);
    is(scalar(@bad), 0, "$label: no alert, crit or emerg") or diag(@bad);
}

# 1. password= (requirepass, the Sentinels' default user): 200

{
    my $n = gateway('password=sentinel-pw');
    my ($s, undef, $body) = get_ok($n);
    is($s, 200, 'password=: 200');
    is($body, "client=tpp-sentinel-auth\n", 'password=: the record was read');
    is(scalar(log_lines($n, qr/refused|does not name a primary/)), 0,
       'password=: no refusal in the log')
        or diag(log_lines($n, qr/\[error\]/));
    no_alert($n, 'password=');
    $n->stop;
}

# 2. user= and password= (the Sentinels' ACL user): 200

{
    my $n = gateway('user=sgw password=sgw-pw');
    my ($s, undef, $body) = get_ok($n);
    is($s, 200, 'user= password=: 200');
    is($body, "client=tpp-sentinel-auth\n",
       'user= password=: the record was read');
    no_alert($n, 'user= password=');
    $n->stop;
}

# 3. refused by the Sentinels: every request a 503 with the JSON body, and
#    an error line "sentinel ADDR refused oauth2_redis_sentinel's
#    password: WRONGPASS ..." naming one of the Sentinels; the password
#    itself is not in the log

my $refused = qr/\[error\] .*oauth2: sentinel 127\.0\.0\.1:(\d+) refused oauth2_redis_sentinel's password: WRONGPASS invalid username-password pair or user is disabled\./;

for my $case (['a wrong password=', 'password=wrong-pw', 'wrong-pw'],
              ['a wrong user=', 'user=nobody password=sgw-pw', 'sgw-pw'],
              ['the ACL user with a wrong password=',
               'user=sgw password=wrong-pw', 'wrong-pw'])
{
    my ($label, $auth, $secret) = @$case;
    my $n = gateway($auth);
    my ($seen, $body) = statuses_for_1s($n);
    is($seen, '503', "$label: every request a 503");
    is($body, $Unavailable, "$label: the 503 JSON");
    my @lines = log_lines($n, $refused);
    ok(scalar(@lines), "$label: the log says the Sentinel refused the "
                       . 'password') or diag(log_lines($n, qr/\[error\]/));
    my ($port) = @lines ? $lines[0] =~ $refused : ();
    ok($port && $sentinel_port{$port},
       "$label: the line names one of the Sentinels")
        or diag($lines[0] // 'no line');
    is(scalar(log_lines($n, qr/\Q$secret\E/)), 0,
       "$label: the password is not in the log");
    no_alert($n, $label);
    $n->stop;
}

# 4. no password= at all: the Sentinels answer NOAUTH, a 503 too, and the
#    error line names the Sentinel and its NOAUTH (not "does not name a
#    primary", which would send one looking at the Sentinels' state)

{
    my $n = gateway('');
    my ($seen, $body) = statuses_for_1s($n);
    is($seen, '503', 'no password=: every request a 503');
    is($body, $Unavailable, 'no password=: the 503 JSON');
    my $noauth = qr/\[error\] .*oauth2: sentinel 127\.0\.0\.1:(\d+) refused SENTINEL get-master-addr-by-name: NOAUTH Authentication required\./;
    my @lines = log_lines($n, $noauth);
    ok(scalar(@lines) && $sentinel_port{ ($lines[0] =~ $noauth)[0] },
       'no password=: the log names the Sentinel and its NOAUTH')
        or diag(log_lines($n, qr/\[error\]/));
    is(scalar(log_lines($n, qr/does not name a primary/)), 0,
       'no password=: not said to be a missing primary');
    no_alert($n, 'no password=');
    $n->stop;
}

$topo->stop;

diag(sprintf 'the whole test: %.1f s', time - $t0);

done_testing();
