# Sentinel (oauth2_redis_sentinel): one primary, one replica, three
# Sentinels on loopback (t/lib/OAuth2Redis.pm).  The primary is killed
# under steady load: the requests in between get 503 (never a 401, never
# a 200 that should not be), and within 1 s of the Sentinels announcing
# the new primary (+switch-master) requests succeed again; a token written
# to the primary before the kill is accepted after it.  Also: ROLE keeps
# the module off a replica, READONLY moves it.
#
# Plain Test::More: its own Redis servers, Sentinels and nginx.

use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);
use OAuth2Redis;
use OAuth2Nginx;

$ENV{TEST_NGINX_LOAD_MODULES}
    or plan skip_all => 'run by util/run-tests.sh';

sub seed {
    my ($r, $token, %f) = @_;
    my $key = 'oauth2:token:' . sha256_hex($token);
    $r->command('HSET', $key, client_id => 'tpp-sentinel',
                scope => 'accounts', %f);
    $r->command('EXPIRE', $key, 3600);
}

my $topo = OAuth2Redis::topology(replicas => 1, sentinels => 3,
                                 name => 'oauth2', down_after => 1000,
                                 failover_timeout => 3000);
my $primary = $topo->primary;
my $replica = $topo->replica(0);
my $sentinels = join ' ', $topo->sentinels->addrs;

seed($primary, 'tok-before');
$primary->wait_replicated;

my $n = OAuth2Nginx->gateway(<<"_EOC_", workers => 2);
    oauth2_redis_sentinel $sentinels master=oauth2;
    oauth2_redis_timeout 500ms;
    oauth2_redis_connections 2;
_EOC_

sub get {
    my ($token) = @_;
    my ($s, undef, $b) = $n->request('/api', "Authorization: Bearer $token");
    return wantarray ? ($s, $b) : $s;
}

# 1. the module finds the primary through the Sentinels

my $ok = 0;
for (1 .. 50) {
    last if ($ok = get('tok-before') == 200);
    sleep 0.1;
}
ok($ok, 'the primary named by Sentinel answers: 200');
is(get('tok-unknown'), 401, 'an unknown token: 401');

like(join('', $primary->cli('INFO', 'commandstats')), qr/cmdstat_role:calls=[1-9]/,
     'the module confirmed the primary with ROLE');
unlike(join('', $replica->cli('INFO', 'commandstats')), qr/cmdstat_(evalsha|role|script)/,
       'the replica got no command of the module');

# 2. steady load, the primary killed

my $dir = tempdir(CLEANUP => 1);
my $stop = "$dir/stop";
my @pids;

for my $c (1 .. 2) {
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open my $out, '>', "$dir/load-$c" or POSIX::_exit(1);
        while (!-e $stop) {
            my $t = time;
            my ($s, $b) = get('tok-before');
            printf $out "%.3f %s %s\n", $t, $s, $b =~ /tpp-sentinel/ ? 1 : 0;
            sleep 0.005;
        }
        close $out;
        POSIX::_exit(0);
    }
    push @pids, $pid;
}

sleep 1;
my $killed = $primary->kill;
my ($new_port, $switched) = $topo->sentinels->wait_for_failover($primary->port,
                                                                20);
ok($new_port, 'Sentinel failed over') or diag($topo->sentinels->events);
is($new_port, $replica->port, 'the replica is the new primary');

sleep 2.5;
open my $fh, '>', $stop or die $!;
close $fh;
waitpid($_, 0) for @pids;

my (@all, %count);
for my $c (1 .. 2) {
    open my $in, '<', "$dir/load-$c" or next;
    while (<$in>) {
        my ($t, $s, $body_ok) = split;
        push @all, [$t, $s, $body_ok];
        $count{$s}++;
    }
}
@all = sort { $a->[0] <=> $b->[0] } @all;

my @bad = grep { $_->[1] != 200 && $_->[1] != 503 } @all;
is(scalar(@bad), 0, 'every answer was a 200 or a 503: no 401, nothing else')
    or diag(join ' ', map { $_->[1] } @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
my @wrong = grep { $_->[1] == 200 && !$_->[2] } @all;
is(scalar(@wrong), 0, 'every 200 carried the record');

SKIP: {
    skip 'no failover', 3 unless $switched;
    my @late = grep { $_->[0] > $switched + 1 && $_->[1] != 200 } @all;
    is(scalar(@late), 0,
       'every request sent 1 s after +switch-master succeeded');
    my @after = grep { $_->[0] > $switched + 1 } @all;
    cmp_ok(scalar(@after), '>', 20, 'requests were sent after the failover');
    my ($first) = grep { $_->[0] > $killed && $_->[1] == 503 } @all;
    my ($back) = grep { $_->[0] > $switched && $_->[1] == 200 } @all;
    ok($back, 'requests succeed again after the failover');
    diag(sprintf('failover: %d requests, %d x 200, %d x 503; Sentinel '
                 . 'announced the new primary %.2f s after the kill; the '
                 . 'first 200 after it came %.3f s later',
                 scalar(@all), $count{200} // 0, $count{503} // 0,
                 $switched - $killed,
                 $back ? $back->[0] - $switched : -1));
}

# 3. the token written before the kill, on the new primary

is(get('tok-before'), 200, 'the token written before the kill is accepted');
seed($topo->server_on($new_port), 'tok-after');
is(get('tok-after'), 200, 'a token written to the new primary: 200');

# 4. the old primary comes back as a replica: never written to

$primary->restart;
sleep 1;
is(get('tok-after'), 200, 'the old primary back: requests still succeed');

ok((grep { /oauth2: Sentinel moved the primary of "oauth2" from 127\.0\.0\.1:\d+ to 127\.0\.0\.1:\d+/ } $n->error_log),
   'the failover is in the log') or diag(grep { /oauth2/ } $n->error_log);

my @crit = grep { /\[(alert|crit|emerg)\]/ } $n->error_log;
is(scalar(@crit), 0, 'no alert, crit or emerg') or diag(@crit);

$n->stop;
$topo->stop;

done_testing();
