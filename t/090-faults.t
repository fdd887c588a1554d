# Faults under load: Redis killed and started again while clients send
# requests, and nginx reloaded (HUP) under load.  Plain Test::More: it runs
# its own nginx (master and one worker) and its own Redis.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;

my $nginx  = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES}
    or plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set';

# Redis keeps its data in $rdir: started again after a SIGKILL it has the
# token from its first connection on, so that no request can find it empty
my $rdir = tempdir(CLEANUP => 1);
my $rport = OAuth2Test::start_private_redis(undef, $rdir);
my $l = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0',
                              ReuseAddr => 1) or die;
my $port = $l->sockport;
close $l;

my $dir = tempdir(CLEANUP => 1);
chmod 0755, $dir;
mkdir "$dir/$_" for qw(conf logs tmp);
open my $fh, '>', "$dir/conf/nginx.conf" or die $!;
print $fh <<"_CONF_";
load_module $module;
master_process on;
worker_processes 1;
daemon on;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path tmp;
    proxy_temp_path tmp;
    oauth2_redis 127.0.0.1:$rport;
    oauth2_redis_timeout 500ms;
    oauth2_consent off;
    server {
        listen 127.0.0.1:$port;
        location /api {
            oauth2 on;
            proxy_pass http://127.0.0.1:$port/backend;
        }
        location /backend { return 200 "ok\\n"; }
    }
}
_CONF_
close $fh;

sub seed {
    local $OAuth2Test::Port = $rport;
    OAuth2Test::seed_token('tok-fault', client_id => 'tpp-fault', ttl => 0);
}

seed();
{
    local $OAuth2Test::Port = $rport;
    OAuth2Test::redis('SAVE');
}
system("$nginx -p $dir/ -c conf/nginx.conf") == 0 or die "nginx did not start";
sleep 0.5;

sub request {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp',
                                     Timeout => 5) or return 'connect';
    print $sock "GET /api HTTP/1.0\r\nHost: localhost\r\n",
                "Authorization: Bearer tok-fault\r\n\r\n";
    my $line = <$sock> // '';
    close $sock;
    return $line =~ m{^HTTP/1\.\d (\d{3})} ? $1 : 'broken';
}

sub worker_pid {
    my $out = `ps -o pid= --ppid \$(cat $dir/logs/nginx.pid)`;
    my ($pid) = $out =~ /(\d+)/;
    return $pid;
}

sub fds { my $pid = shift; my @f = glob("/proc/$pid/fd/*"); scalar @f }

# clients that log "time status" lines until $until
sub load {
    my ($clients, $until) = @_;
    my $out = tempdir(CLEANUP => 1);
    my @pids;
    for my $c (1 .. $clients) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            open my $log, '>', "$out/$c" or POSIX::_exit(1);
            while (time < $until) {
                my $t = time;
                printf $log "%.4f %s\n", $t, request();
            }
            close $log;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    return ($out, @pids);
}

sub results {
    my ($out, $clients) = @_;
    my @r;
    for my $c (1 .. $clients) {
        open my $log, '<', "$out/$c" or next;
        push @r, map { [split] } <$log>;
    }
    return sort { $a->[0] <=> $b->[0] } @r;
}

is(request(), 200, 'Redis up: 200');

my $worker = worker_pid();
my $fds_before = fds($worker);

# 1. Redis killed (SIGKILL) during the load, started again 1.5 s later

my $start = time;
my ($out, @pids) = load(4, $start + 6);
sleep 1;
my $killed = time;
OAuth2Test::stop_private_redis($rport, 'KILL');
sleep 1.5;
OAuth2Test::start_private_redis($rport, $rdir);
my $back = time;
waitpid($_, 0) for @pids;

my @r = results($out, 4);
my %codes;
$codes{ $_->[1] }++ for @r;
my @during = grep { $_->[0] > $killed + 0.05 && $_->[0] < $back - 0.05 } @r;
my @bad_during = grep { $_->[1] ne '503' } @during;
my ($first_ok) = grep { $_->[0] > $back && $_->[1] eq '200' } @r;

ok(scalar(@during) > 10, scalar(@during) . ' requests while Redis was down');
is(scalar(@bad_during), 0, 'every one of them a 503')
    or diag(join ', ', map { $_->[1] } @bad_during[0 .. 9]);
is(join(',', sort grep { !/^(200|503)$/ } keys %codes), '',
   'no answer but 200 and 503 at any time');
ok($first_ok, "requests succeed again once Redis is back")
    or diag(join " ", map { sprintf("%.2f:%s", $_->[0] - $back, $_->[1]) } (grep { $_->[0] > $back - 0.1 } @r)[0 .. 19]);
cmp_ok($first_ok->[0] - $back, '<', 1,
       sprintf('within %.3f s of Redis being back', $first_ok->[0] - $back))
    if $first_ok;
is(worker_pid(), $worker, 'the same worker: no crash');
is(fds($worker), $fds_before, "no file descriptor leaked ($fds_before)");

# 2. nginx reloaded twice under load: no request lost

($out, @pids) = load(4, time + 3);
sleep 0.8;
system("$nginx -p $dir/ -c conf/nginx.conf -s reload");
sleep 1;
system("$nginx -p $dir/ -c conf/nginx.conf -s reload");
waitpid($_, 0) for @pids;
@r = results($out, 4);
my @lost = grep { $_->[1] ne '200' } @r;
ok(scalar(@r) > 100, scalar(@r) . ' requests across two reloads');
is(scalar(@lost), 0, 'every one of them a 200')
    or diag(join ', ', map { $_->[1] } @lost[0 .. 9]);

# the error log: Redis trouble logged, no crash, nothing alarming

sleep 0.5;
open my $log, '<', "$dir/logs/error.log" or die;
my @lines = <$log>;
ok((grep { /oauth2: connection to redis .* lost|cannot connect to redis/ }
    @lines), 'the outage is in the error log');
is(scalar(grep { /\[(alert|crit|emerg)\]|exited on signal/ } @lines), 0,
   'no alert, crit, emerg or crashed worker')
    or diag(grep { /\[(alert|crit|emerg)\]|exited on signal/ } @lines);

END {
    system("$nginx -p $dir/ -c conf/nginx.conf -s stop 2>/dev/null")
        if $dir;
    OAuth2Test::stop_private_redis($rport) if $rport;
}

done_testing();
