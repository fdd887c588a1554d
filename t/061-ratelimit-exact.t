# Exactness of the shared rate limit: two nginx instances of two workers
# each, on one Redis, many concurrent clients, one client id.  Plain
# Test::More: it runs its own nginx instances.

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
my $redis  = $ENV{TEST_NGINX_REDIS_PORT}
    or plan skip_all => 'TEST_NGINX_REDIS_PORT is not set';

sub free_port {
    my $l = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0',
                                  ReuseAddr => 1) or die "listen: $!";
    return $l->sockport;
}

my (@nodes, @dirs);

sub start_node {
    my $port = free_port();
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/$_" for qw(conf logs tmp);
    open my $fh, '>', "$dir/conf/nginx.conf" or die $!;
    print $fh <<"_CONF_";
load_module $module;
master_process on;
worker_processes 2;
daemon on;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 1024; accept_mutex off; }
http {
    access_log off;
    client_body_temp_path tmp;
    proxy_temp_path tmp;
    oauth2_redis 127.0.0.1:$redis;
    oauth2_consent off;
    oauth2_plan burst100 100r/h;
    oauth2_plan rate20 20r/s;
    server {
        listen 127.0.0.1:$port reuseport;
        location /api {
            oauth2 on;
            proxy_pass http://127.0.0.1:$port/backend;
        }
        location /backend { return 200 "ok\\n"; }
    }
}
_CONF_
    close $fh;
    system("$nginx -p $dir/ -c conf/nginx.conf") == 0
        or die "cannot start nginx in $dir";
    push @nodes, $port;
    push @dirs, $dir;
}

sub request {
    my ($port, $token) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp',
                                     Timeout => 5) or return 0;
    print $sock "GET /api HTTP/1.0\r\nHost: localhost\r\n",
                "Authorization: Bearer $token\r\n\r\n";
    my $line = <$sock> // '';
    close $sock;
    return $line =~ m{^HTTP/1\.\d (\d{3})} ? $1 : 0;
}

# $clients processes hammer both nodes until $until (or $max requests
# each); returns (accepted, limited, other, first, last) with the times of
# the first and the last request sent
sub hammer {
    my ($token, $clients, $until, $max) = @_;
    my $out = tempdir(CLEANUP => 1);
    my @pids;
    for my $c (1 .. $clients) {
        my $pid = fork();
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            my %n = (200 => 0, 429 => 0, other => 0);
            my ($first, $last);
            for (my $i = 0; $i < $max && time < $until; $i++) {
                my $t = time;
                $first //= $t;
                my $s = request($nodes[($i + $c) % @nodes], $token);
                $last = $t;
                $n{ exists $n{$s} ? $s : 'other' }++;
            }
            open my $fh, '>', "$out/$c" or POSIX::_exit(1);
            print $fh join(' ', $n{200}, $n{429}, $n{other},
                           $first // 0, $last // 0), "\n";
            close $fh;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    waitpid($_, 0) for @pids;
    my ($ok, $limited, $other, $first, $last) = (0, 0, 0, undef, 0);
    for my $c (1 .. $clients) {
        open my $fh, '<', "$out/$c" or die "client $c left no result";
        my @f = split ' ', scalar <$fh>;
        $ok += $f[0];
        $limited += $f[1];
        $other += $f[2];
        $first = $f[3] if $f[3] && (!defined $first || $f[3] < $first);
        $last = $f[4] if $f[4] > $last;
    }
    return ($ok, $limited, $other, $first, $last);
}

start_node() for 1 .. 2;
sleep 0.5;

my $run = "$$-" . int(time);

# 1. a burst: 100 per hour, 8 clients send 480 requests over both nodes
{
    my $token = "tok-exact-burst-$run";
    OAuth2Test::seed_token($token, client_id => "exact-burst-$run",
                           plan => 'burst100');
    my ($ok, $limited, $other) = hammer($token, 8, time + 30, 60);
    is($other, 0, 'burst: every answer is a 200 or a 429');
    is($ok, 100, 'burst: exactly 100 of 480 accepted by 2 nodes x 2 workers');
    is($limited, 380, 'burst: the 380 others limited');
}

# 2. a rate: 20 per second (burst 20, then one every 50 ms) for 2 seconds
{
    my $token = "tok-exact-rate-$run";
    OAuth2Test::seed_token($token, client_id => "exact-rate-$run",
                           plan => 'rate20');
    my ($ok, $limited, $other, $first, $last) =
        hammer($token, 8, time + 2, 100000);
    my $span = $last - $first;
    my $expected = 20 + int($span / 0.05);
    is($other, 0, 'rate: every answer is a 200 or a 429');
    cmp_ok(abs($ok - $expected), '<=', 1,
           sprintf('rate: %d accepted over %.3f s, GCRA allows %d (+-1)',
                   $ok, $span, $expected));
    diag(sprintf('rate: %d accepted, %d limited over %.3f s; expected %d',
                 $ok, $limited, $span, $expected));
}

for my $dir (@dirs) {
    open my $fh, '<', "$dir/logs/error.log" or next;
    my @bad = grep { /\[(alert|crit|emerg)\]/ } <$fh>;
    is(scalar(@bad), 0, "no alert, crit or emerg in $dir") or diag @bad;
}

END {
    for my $dir (@dirs) {
        system("$nginx -p $dir/ -c conf/nginx.conf -s stop 2>/dev/null");
    }
}

done_testing();
