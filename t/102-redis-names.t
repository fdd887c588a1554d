# Where Redis is, in the other ways: a name resolved by nginx's resolver
# at run time (a DNS server of the test's own: when the name moves, the
# module follows), IPv6, a unix socket, redis:// URLs, and several
# connections per worker.
#
# Plain Test::More: its own DNS server, Redis servers and nginx.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(time sleep);
use OAuth2Redis;
use OAuth2Nginx;
use OAuth2DNS;

$ENV{TEST_NGINX_LOAD_MODULES}
    or plan skip_all => 'run by util/run-tests.sh';

sub seed {
    my ($r, $token, $client) = @_;
    my $key = 'oauth2:token:' . sha256_hex($token);
    $r->command('HSET', $key, client_id => $client, scope => 'accounts');
    $r->command('EXPIRE', $key, 3600);
}

sub gateway {
    my ($conf, %o) = @_;
    return OAuth2Nginx->gateway($conf, %o);
}

# the body of the first 200 within $secs, or ''
sub served {
    my ($n, $token, $secs) = @_;
    my $until = time + ($secs // 3);
    while (time < $until) {
        my ($s, undef, $b) = $n->request('/api', "Authorization: Bearer $token");
        return $b =~ /^client=(.*)\n\z/ ? $1 : $b if $s == 200;
        sleep 0.05;
    }
    return '';
}

# 1. a name, resolved by nginx's resolver; the name moves to another server

{
    my $port = OAuth2Redis::free_port();
    my $a = OAuth2Redis->start(port => $port, host => '127.0.0.1');
    my $b = OAuth2Redis->start(port => $port, host => '127.0.0.2');
    seed($a, 'tok-name', 'from-a');
    seed($b, 'tok-name', 'from-b');

    my $dns = OAuth2DNS->start('redis.test' => '127.0.0.1');
    my $n = gateway(<<"_EOC_");
    resolver 127.0.0.1:@{[$dns->port]} valid=1s ipv6=off;
    resolver_timeout 1s;
    oauth2_redis redis.test:$port;
    oauth2_redis_timeout 300ms;
_EOC_

    is(served($n, 'tok-name'), 'from-a',
       'a name resolved at run time: the server it names answers');

    # the managed endpoint fails over: the name now names another server
    $dns->set('redis.test' => '127.0.0.2');
    $a->kill;
    my $t0 = time;
    is(served($n, 'tok-name', 8), 'from-b',
       'the name moved: the module follows it after the DNS TTL');
    diag(sprintf('followed the name in %.2f s', time - $t0));

    ok((grep { /oauth2: connection to redis .* (lost|failed)|cannot connect to redis/ } $n->error_log),
       'the lost connection is in the log');
    my @crit = grep { /\[(alert|crit|emerg)\]/ } $n->error_log;
    is(scalar(@crit), 0, 'no alert, crit or emerg') or diag(@crit);

    # a name that does not resolve at run time: 503, logged
    $dns->set('other.test' => '127.0.0.1');
    $b->kill;
    my ($s) = $n->request('/api', 'Authorization: Bearer tok-name');
    ok($s == 503 || $s == 200, 'Redis gone: 503 (or a last 200)');
    sleep 3;
    ($s) = $n->request('/api', 'Authorization: Bearer tok-name');
    is($s, 503, 'the name resolves to nothing: 503');
    ok((grep { /oauth2: redis host "redis\.test" could not be resolved/ } $n->error_log),
       'the resolver failure is in the log')
        or diag(grep { /oauth2/ } $n->error_log);
    $n->stop;
    $dns->stop;
}

# 2. IPv6

SKIP: {
    skip 'no IPv6 on loopback', 2 unless OAuth2Redis::have_ipv6();
    my $r = OAuth2Redis->start(ipv6 => 1);
    seed($r, 'tok-v6', 'from-v6');
    my $n = gateway("oauth2_redis [::1]:@{[$r->port]};");
    is(served($n, 'tok-v6'), 'from-v6', 'oauth2_redis [::1]:port');
    $n->stop;
    $n = gateway("oauth2_redis redis://[::1]:@{[$r->port]}/0;");
    is(served($n, 'tok-v6'), 'from-v6', 'oauth2_redis redis://[::1]:port/0');
    $n->stop;
}

# 3. a unix socket, a URL with an ACL user and a database

{
    my $r = OAuth2Redis->start(unix => 1, acl_user => ['gw', 's3cret']);
    my $key = 'oauth2:token:' . sha256_hex('tok-unix');
    $r->cli('-n', 2, 'HSET', $key, 'client_id', 'from-db2', 'scope', 'x');
    $r->cli('-n', 2, 'EXPIRE', $key, 3600);
    my $n = gateway("oauth2_redis unix:@{[$r->socket]};\n"
                    . "    oauth2_redis_password gw s3cret;\n"
                    . "    oauth2_redis_db 2;");
    is(served($n, 'tok-unix'), 'from-db2', 'unix socket, ACL user, db 2');
    $n->stop;
    $n = gateway("oauth2_redis redis://gw:s3cret\@127.0.0.1:@{[$r->port]}/2;");
    is(served($n, 'tok-unix'), 'from-db2',
       'redis://user:password@host:port/db');
    $n->stop;
    # a wrong password in the URL: the log says it was the URL's
    $n = gateway("oauth2_redis redis://gw:wrong\@127.0.0.1:@{[$r->port]}/2;");
    my ($s) = $n->request('/api', 'Authorization: Bearer tok-unix');
    is($s, 503, 'a wrong password in the URL: 503');
    ok((grep { /refused the password of the oauth2_redis URL: WRONGPASS/ }
        $n->error_log), '... and the log names the URL\'s password');
    $n->stop;
    $r->stop;
}

# 4. oauth2_redis_connections: that many connections per worker, all used

{
    my $r = OAuth2Redis->start();
    seed($r, 'tok-conns', 'from-conns');
    my $n = gateway("oauth2_redis 127.0.0.1:@{[$r->port]};\n"
                    . "    oauth2_redis_connections 4;", workers => 2);
    is(served($n, 'tok-conns'), 'from-conns',
       'oauth2_redis_connections 4: requests served');
    sleep 0.3;
    my @clients = grep { /cmd=/ && !/cmd=client/ }
                  split /\n/, join '', $r->cli('CLIENT', 'LIST');
    is(scalar(@clients), 8, '2 workers x 4 connections')
        or diag(join "\n", @clients);
    $r->cli('CONFIG', 'RESETSTAT');
    my $ok = 0;
    for (1 .. 40) {
        my ($s) = $n->request('/api', 'Authorization: Bearer tok-conns');
        $ok++ if $s == 200;
    }
    is($ok, 40, '40 requests over the connections');
    my $used = grep { /cmd=evalsha/ } split /\n/, join '', $r->cli('CLIENT', 'LIST');
    cmp_ok($used, '>=', 4, "the calls went over several connections ($used)");
    $n->stop;
    $r->stop;
}

# 5. oauth2_redis names a replica (a name after a failover, a mistake):
# the lookup's write gets READONLY, a 503; the module checks ROLE before
# it uses that server again, so it does not connect again and again
# (each time with its SCRIPT LOADs and error lines; 1405 times in 2 s
# before), it backs off (50 ms doubling to 1 s: about 7 times); once
# the server is a primary, requests pass again

{
    my $p = OAuth2Redis->start();
    my $r = OAuth2Redis->start(replicaof => $p);
    $r->wait_link_up;
    seed($p, 'tok-replica', 'from-replica');
    $p->wait_replicated;
    my $n = gateway("oauth2_redis 127.0.0.1:@{[$r->port]};\n"
                    . "    oauth2_plan p 1000r/s; oauth2_default_plan p;\n"
                    . "    oauth2_redis_timeout 500ms;");
    sleep 0.3;
    my $before = $r->info('stats')->{total_connections_received};
    my %status;
    my $until = time + 2;
    while (time < $until) {
        my ($s) = $n->request('/api', 'Authorization: Bearer tok-replica');
        $status{$s}++;
    }
    my $conns = $r->info('stats')->{total_connections_received} - $before;
    is(join(',', sort keys %status), '503',
       "a replica: 503 only ($status{503} requests in 2 s)");
    cmp_ok($conns, '<=', 10,
           "... and $conns connections to it in 2 s, not one per READONLY");
    my @lines = grep { /\[error\]/ } $n->error_log;
    cmp_ok(scalar(@lines), '<=', 30,
           "... @{[scalar @lines]} error lines")
        or diag @lines[0 .. 9];
    ok((grep { /READONLY/ } @lines), '... one names READONLY');
    ok((grep { /is not the primary \(ROLE "slave"\), trying again later/ }
        @lines), '... and one the ROLE it found');

    $r->cli('REPLICAOF', 'NO', 'ONE');
    is(served($n, 'tok-replica', 3), 'from-replica',
       'the server made a primary: requests pass again');
    $n->stop;
    $r->stop;
    $p->stop;
}

# 6. connect_timeout= longer than the timeout: a connection still being
# made (Redis stopped after it accepted, the set-up unanswered) is not
# dropped when a request's call times out; the request gets its 503 at
# the timeout, and once Redis answers, the same connection serves

{
    my $r = OAuth2Redis->start();
    seed($r, 'tok-ct', 'from-ct');
    my $c0 = $r->info('stats')->{total_connections_received};
    kill 'STOP', $r->pid;
    my $n = gateway("oauth2_redis 127.0.0.1:@{[$r->port]};\n"
                    . "    oauth2_redis_timeout 300ms connect_timeout=5s;");
    my $t0 = time;
    my ($s) = $n->request('/api', 'Authorization: Bearer tok-ct');
    my $took = time - $t0;
    is($s, 503, 'Redis stopped while the connection is set up: 503');
    cmp_ok($took, '<', 2, "... at the call's timeout ($took s)");
    sleep 0.5;
    kill 'CONT', $r->pid;
    is(served($n, 'tok-ct', 3), 'from-ct', 'Redis answers: 200');
    # nginx's one connection, and the one asking
    is($r->info('stats')->{total_connections_received} - $c0, 2,
       '... on the connection made first');
    is(scalar(grep { /dropping the connection/ } $n->error_log), 0,
       '... which was not dropped');
    $n->stop;
    $r->stop;
}

# 6b. handshake_timeout=: once TCP is up, the set-up's answers (and TLS)
# have a timer of their own, here shorter than connect_timeout=

{
    my $r = OAuth2Redis->start();
    seed($r, 'tok-hs', 'from-hs');
    kill 'STOP', $r->pid;
    my $n = gateway("oauth2_redis 127.0.0.1:@{[$r->port]};\n"
                    . "    oauth2_redis_timeout timeout=300ms "
                    . "connect_timeout=10s handshake_timeout=400ms;");
    sleep 1.5;
    my @hs = grep { /connecting to redis 127\.0\.0\.1:\d+ timed out \(connected: no TLS handshake, or no answer to its set-up, in handshake_timeout\)/ }
             $n->error_log;
    cmp_ok(scalar(@hs), '>=', 1,
           'handshake_timeout=400ms: the set-up gave up, not after 10s');
    kill 'CONT', $r->pid;
    is(served($n, 'tok-hs', 3), 'from-hs', 'Redis answers again: 200');
    $n->stop;
    $r->stop;
}

# 7. the cache manager and loader (any proxy_cache_path) run the modules'
# init_process too: they do not connect to Redis, the worker alone does

{
    my $r = OAuth2Redis->start();
    seed($r, 'tok-cm', 'from-cm');
    my $dir = OAuth2Redis::tmpdir() . '/proxy-cache';
    my $n = gateway("oauth2_redis 127.0.0.1:@{[$r->port]};\n"
                    . "    proxy_cache_path $dir keys_zone=pc:1m;");
    is(served($n, 'tok-cm'), 'from-cm', 'with a proxy_cache_path: 200');
    sleep 0.5;
    my @clients = grep { /cmd=/ && !/cmd=client/ }
                  split /\n/, join '', $r->cli('CLIENT', 'LIST');
    is(scalar(@clients), 1, 'one connection: the worker\'s')
        or diag(join "\n", @clients);
    $n->stop;
    $r->stop;
}

# 8. TCP_NODELAY on the connections to Redis (not on a unix socket):
# pipelined calls do not wait for the ACK of the previous write.  Seen
# with strace on the worker while it connects again.

SKIP: {
    skip 'strace is not installed', 2 unless -x '/usr/bin/strace';
    my $r = OAuth2Redis->start();
    seed($r, 'tok-nd', 'from-nd');
    my $n = gateway("oauth2_redis 127.0.0.1:@{[$r->port]};");
    is(served($n, 'tok-nd'), 'from-nd', 'served');
    open my $pf, '<', $n->dir . '/logs/nginx.pid' or die $!;
    chomp(my $master = <$pf>);
    my ($worker) = split ' ', `pgrep -P $master`;
    my $out = OAuth2Redis::tmpdir() . '/strace.out';
    my $st = fork // die "fork: $!";
    if ($st == 0) {
        exec '/usr/bin/strace', '-qq', '-e', 'trace=setsockopt', '-o', $out,
             '-p', $worker;
        die "exec strace: $!";
    }
    sleep 1;
    $r->kill;
    $r->restart;
    seed($r, 'tok-nd', 'from-nd');          # nothing kept over a kill
    is(served($n, 'tok-nd', 5), 'from-nd', 'served after Redis restarted');
    kill 'INT', $st;
    waitpid $st, 0;
    open my $fh, '<', $out or die "$out: $!";
    my $trace = do { local $/; <$fh> };
    like($trace, qr/setsockopt\(\d+, SOL_TCP, TCP_NODELAY, \[1\]/,
         'the new connection is set TCP_NODELAY');
    $n->stop;
    $r->stop;
}

# 9. the calls of many requests queued in one turn of the event loop
# leave in writes of about 1 KB each (NGX_OAUTH2_CONN_EARLY_WRITE), not in
# one write at the end of the turn: Redis starts on the first calls while
# the worker still reads the next requests.  30 keep-alive connections
# each send a request while the worker is stopped, so that it finds all
# 30 in one turn; strace shows its writes to Redis.

SKIP: {
    skip 'strace is not installed', 5 unless -x '/usr/bin/strace';
    my $r = OAuth2Redis->start();
    seed($r, "tok-ew$_", "from-ew$_") for 1 .. 30;
    my $n = gateway("oauth2_redis 127.0.0.1:@{[$r->port]};");
    is(served($n, 'tok-ew1'), 'from-ew1', 'served');
    my @socks;
    my $req = sub {
        my ($i) = @_;
        return "GET /api HTTP/1.1\r\nHost: x\r\n"
               . "Authorization: Bearer tok-ew$i\r\n\r\n";
    };
    my $read = sub {      # one response on a keep-alive connection
        my ($sock) = @_;
        my $buf = '';
        while ($buf !~ /\r\n\r\n/) {
            sysread($sock, $buf, 4096, length $buf) or last;
        }
        my ($len) = $buf =~ /Content-Length: (\d+)/i;
        my ($head, $body) = split /\r\n\r\n/, $buf, 2;
        while (defined $len && length($body) < $len) {
            sysread($sock, $body, 4096, length $body) or last;
        }
        my ($st) = $head =~ m{^HTTP/1\.1 (\d+)};
        return ($st // 0) . " $body";
    };
    for my $i (1 .. 30) {
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                         PeerPort => $n->port) or die $!;
        syswrite($sock, $req->($i));
        $read->($sock);
        push @socks, $sock;
    }
    open my $pf, '<', $n->dir . '/logs/nginx.pid' or die $!;
    chomp(my $master = <$pf>);
    my ($worker) = split ' ', `pgrep -P $master`;
    my $out = OAuth2Redis::tmpdir() . '/strace-ew.out';
    my $st = fork // die "fork: $!";
    if ($st == 0) {
        exec '/usr/bin/strace', '-qq', '-s', '8', '-e',
             'trace=write,writev,sendto', '-o', $out, '-p', $worker;
        die "exec strace: $!";
    }
    sleep 1;
    kill 'STOP', $worker;
    syswrite($socks[$_ - 1], $req->($_)) for 1 .. 30;
    kill 'CONT', $worker;
    my @got = map { $read->($socks[$_ - 1]) } 1 .. 30;
    is(scalar(grep { $got[$_ - 1] eq "200 client=from-ew$_\n" } 1 .. 30), 30,
       'all 30 requests served, each with its own client');
    sleep 0.2;
    kill 'INT', $st;
    waitpid $st, 0;
    open my $fh, '<', $out or die "$out: $!";
    # the RESP commands: write(fd, "*17\r\n$7"..., n) = n
    my @w = map { /= (\d+)$/ ? $1 : () } grep { /^\w+\(\d+, "\*\d/ } <$fh>;
    my $total = 0;
    $total += $_ for @w;
    my ($max) = sort { $b <=> $a } @w;
    cmp_ok($total, ">", 30 * 200, "30 calls written ($total bytes)")
        or diag(join " ", @w);
    cmp_ok(scalar(@w), '>=', 4, 'in several writes (' . scalar(@w) . ')');
    cmp_ok($max // 0, '<', 2048, "none over 2 KB (the largest: "
           . ($max // 0) . ' bytes)');
    $n->stop;
    $r->stop;
}

done_testing();
