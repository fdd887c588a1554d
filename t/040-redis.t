# Redis: addresses, authentication, db, failures (503, never 401, never a
# 200), timeouts, one round trip per request, and no blocking of the worker.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;

our $Unavailable = '{"httpCode":"503","httpMessage":"Service Unavailable",'
    . '"moreInformation":"The service is temporarily unavailable, please '
    . 'retry later"}';

my $default_config = <<'_EOC_';
    location /api {
        oauth2 on;
        oauth2_consent off;
        add_header X-OAuth2-Status $oauth2_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }

    location /open {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }

    location /backend {
        return 200 "ok\n";
    }
_EOC_

OAuth2Blocks::defaults(
    config => $default_config,
    request => "GET /api\n",
);

# A "blackhole" Redis: a listening socket whose accept queue is full, so that
# connecting to it hangs (SYNs are dropped) instead of being refused.  Made
# here, before any nginx starts.
our @Blackhole;
{
    my $l = IO::Socket::INET->new(Listen => 0, LocalAddr => '127.0.0.1:0',
                                  ReuseAddr => 1) or die "listen: $!";
    push @Blackhole, $l;
    for (1 .. 3) {
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $l->sockport,
                                      Blocking => 0);
        push @Blackhole, $c if $c;
    }
    $ENV{TEST_NGINX_BLACKHOLE_PORT} = $l->sockport;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: Redis unreachable: 503 JSON with Retry-After, and a log line
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_DEAD_PORT;
--- more_headers
Authorization: Bearer tok-any
--- error_code: 503
--- response_headers
Content-Type: application/json
Retry-After: 1
!WWW-Authenticate
X-OAuth2-Status: store_unavailable
--- response_body eval
$::Unavailable
--- error_log eval
[qr/\[error\] .*oauth2: cannot connect to redis 127\.0\.0\.1:\d+: Connection refused/,
 qr/oauth2: answering 503, the token store is unavailable/]



=== TEST 2: while Redis is down, every request gets its 503 at once
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_DEAD_PORT;
    oauth2_redis_timeout 10s;
--- request eval
["GET /api", "GET /api", "GET /api", "GET /open"]
--- more_headers eval
["Authorization: Bearer a", "Authorization: Bearer b", "Authorization: Bearer c", ""]
--- error_code eval
[503, 503, 503, 200]
--- timeout: 1



=== TEST 3: a Redis that cannot be reached is not waited for on every request
The first request waits at most oauth2_redis_timeout for the connection;
once the connect has timed out, Redis is known to be down and requests get
their 503 at once while the worker retries in the background.
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_BLACKHOLE_PORT;
    oauth2_redis_timeout 700ms;
--- init
my ($s1, undef, $t1) = OAuth2Test::http_get('/api', 'Authorization: Bearer a');
Test::More::is($s1, 503, 'first request: 503');
Test::More::cmp_ok($t1, '<', 1.2, 'after at most the timeout');
my @t;
for (1 .. 5) {
    my ($s, undef, $t) = OAuth2Test::http_get('/api', 'Authorization: Bearer a');
    push @t, $t if $s == 503;
}
Test::More::is(scalar(@t), 5, 'then five 503s');
Test::More::cmp_ok((sort { $b <=> $a } @t)[0], '<', 0.2, 'each at once');
--- more_headers
Authorization: Bearer b
--- error_code: 503
--- timeout: 1
--- error_log eval
qr/oauth2: connecting to redis 127\.0\.0\.1:\d+ timed out/



=== TEST 4: Redis slower than oauth2_redis_timeout: 503, not a hang
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_redis_timeout 300ms;
--- init
OAuth2Test::seed_token('tok-slow', client_id => 'tpp-1');
OAuth2Test::sleep_redis(1.2);
--- more_headers
Authorization: Bearer tok-slow
--- error_code: 503
--- response_body eval
$::Unavailable
--- timeout: 1
--- error_log eval
[qr/\[error\] .*oauth2: redis 127\.0\.0\.1:\d+ did not answer within 300 ms \(oauth2_redis_timeout\)/,
 qr/oauth2: dropping the connection to redis 127\.0\.0\.1:\d+: timed out/]



=== TEST 5: a stalled Redis does not stall the worker
A protected request waits on a sleeping Redis while a request to a location
without oauth2 is sent to the same (single) worker: it is answered at once,
and the protected one gets its 200 when Redis wakes up.
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_redis_timeout 5s;
--- init
my $file = OAuth2Test::scratch_file('stalled');
unlink $file;
OAuth2Test::seed_token('tok-stall', client_id => 'tpp-1');
OAuth2Test::http_get('/api', 'Authorization: Bearer tok-stall');   # warm up
OAuth2Test::sleep_redis(1.5);
my $pid = OAuth2Test::http_get_background($file, '/api',
                                          'Authorization: Bearer tok-stall');
select(undef, undef, undef, 0.2);
my ($status, $body, $took) = OAuth2Test::http_get('/open');
Test::More::is($status, 200, 'the open location answers');
Test::More::cmp_ok($took, '<', 0.3, 'at once, while Redis sleeps');
waitpid($pid, 0);
open my $fh, '<', $file or die "no result from the protected request: $!";
my $line = <$fh>;
Test::More::like($line, qr/^200 1\.\d+$/,
                 'the protected request waited for Redis, then got its 200');
--- more_headers
Authorization: Bearer tok-stall
--- error_code: 200



=== TEST 6: one Redis round trip per request: a single EVALSHA
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /accounts {
        oauth2 on;
        oauth2_scope accounts;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "ok\n"; }
--- init
OAuth2Test::seed_consent('cons-rt', 'valid');
OAuth2Test::seed_token('tok-rt', client_id => 'tpp-1', scope => 'accounts',
                       consent_id => 'cons-rt');
OAuth2Test::http_get('/accounts', 'Authorization: Bearer tok-rt');   # warm up
OAuth2Test::monitor_start();
my @s = map { (OAuth2Test::http_get('/accounts',
                                    'Authorization: Bearer tok-rt'))[0] }
        1 .. 3;
my @cmds = OAuth2Test::monitor_commands();
Test::More::is("@s", "200 200 200", 'three requests let through');
Test::More::is(scalar(@cmds), 3, 'three requests, three commands')
    or Test::More::diag(join "\n", @cmds);
Test::More::is(scalar(grep { /^EVALSHA "[0-9a-f]{40}" "1" "oauth2:token:[0-9a-f]{64}" "oauth2:" / } @cmds),
               3, 'each an EVALSHA of the hashed token');
--- request
GET /accounts
--- more_headers
Authorization: Bearer tok-rt
--- error_code: 200



=== TEST 7: the script cache flushed: NOSCRIPT, the script is loaded again
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- init
OAuth2Test::seed_token('tok-noscript', client_id => 'tpp-1');
OAuth2Test::http_get('/api', 'Authorization: Bearer tok-noscript');
OAuth2Test::redis('SCRIPT', 'FLUSH');
--- more_headers
Authorization: Bearer tok-noscript
--- error_code: 200
--- error_log
oauth2: redis lost its scripts, loading them again



=== TEST 8: a unix socket address
--- http_config
    oauth2_redis unix:$TEST_NGINX_REDIS_SOCKET;
--- init
OAuth2Test::seed_token('tok-unix', client_id => 'tpp-1');
--- more_headers
Authorization: Bearer tok-unix
--- error_code: 200



=== TEST 9: oauth2_redis_db selects the database
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_redis_db 3;
--- init
OAuth2Test::seed_token('tok-db', client_id => 'tpp-1');
my $key = OAuth2Test::token_key('tok-db');
OAuth2Test::redis('MOVE', $key, 3);
--- more_headers
Authorization: Bearer tok-db
--- error_code: 200



=== TEST 10: the token is not found in database 0 when db 3 is selected
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_redis_db 3;
--- init
OAuth2Test::seed_token('tok-db0', client_id => 'tpp-1');
--- more_headers
Authorization: Bearer tok-db0
--- error_code: 401



=== TEST 11: an ACL user and password (Redis 6+)
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_redis_password gateway s3cret;
--- init
OAuth2Test::redis('ACL', 'SETUSER', 'gateway', 'reset', 'on', '>s3cret',
                  '~oauth2:*', '+evalsha', '+eval', '+script|load', '+pttl',
                  '+hmget', '+hget');
OAuth2Test::seed_token('tok-acl', client_id => 'tpp-1');
# nginx was up before the user existed: let it reconnect (backoff <= 1s)
select(undef, undef, undef, 1.2);
--- more_headers
Authorization: Bearer tok-acl
--- error_code: 200



=== TEST 12: a wrong password: 503 and the reason in the log
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_redis_password gateway wrong;
--- init
OAuth2Test::redis('ACL', 'SETUSER', 'gateway', 'reset', 'on', '>s3cret',
                  '~oauth2:*', '+evalsha', '+eval', '+script|load');
OAuth2Test::seed_token('tok-acl2', client_id => 'tpp-1');
--- more_headers
Authorization: Bearer tok-acl2
--- error_code: 503
--- response_body eval
$::Unavailable
--- error_log eval
qr/\[error\] .*oauth2: redis 127\.0\.0\.1:\d+ refused oauth2_redis_password: WRONGPASS/



=== TEST 13: Redis comes back: requests succeed again within a second
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_redis_timeout 200ms;
--- init
OAuth2Test::seed_token('tok-back', client_id => 'tpp-1');
OAuth2Test::sleep_redis(0.6);
my ($s1) = OAuth2Test::http_get('/api', 'Authorization: Bearer tok-back');
Test::More::is($s1, 503, 'stalled Redis: 503');
select(undef, undef, undef, 0.6);
my ($s2, $took, $ok);
for (1 .. 20) {
    ($s2) = OAuth2Test::http_get('/api', 'Authorization: Bearer tok-back');
    last if $s2 == 200;
    select(undef, undef, undef, 0.05);
}
Test::More::is($s2, 200, 'Redis answers again: 200 within a second');
--- more_headers
Authorization: Bearer tok-back
--- error_code: 200
--- error_log
oauth2: connected to redis



=== TEST 14: Redis slow for 2 s (DEBUG SLEEP 0.2 in a loop): open requests keep their latency
Four clients send protected requests back to back for the whole 2 s, so
the worker always has Redis calls in flight (each waits up to 0.2 s); 40
requests to a location without oauth2, sent to the same single worker
meanwhile, are each answered in well under the 0.2 s a blocked worker
would add.
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_redis_timeout 2s;
--- init
my $file = OAuth2Test::scratch_file('slow-loop');
OAuth2Test::seed_token('tok-slow-loop', client_id => 'tpp-1');
OAuth2Test::http_get('/api', 'Authorization: Bearer tok-slow-loop');
my $sleeper = OAuth2Test::sleep_redis_loop(0.2, 2);
my $until = Time::HiRes::time() + 2;
my @kids;
for my $n (1 .. 4) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my ($ok, $other, $max) = (0, 0, 0);
        while (Time::HiRes::time() < $until) {
            my ($status, $body, $took) = OAuth2Test::http_get('/api',
                                    'Authorization: Bearer tok-slow-loop');
            $status == 200 ? $ok++ : $other++;
            $max = $took if $took > $max;
        }
        open my $fh, '>', "$file-$n" or POSIX::_exit(1);
        print $fh "$ok $other $max\n";
        close $fh;
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
my (@took, @status);
for (1 .. 40) {
    my ($status, $body, $took) = OAuth2Test::http_get('/open');
    push @status, $status;
    push @took, $took;
    select(undef, undef, undef, 0.04);
}
waitpid($_, 0) for @kids, $sleeper;
my $max = (sort { $b <=> $a } @took)[0];
Test::More::is(scalar(grep { $_ == 200 } @status), 40,
               'every open request: 200');
Test::More::cmp_ok($max, '<', 0.1,
                   'no open request took 0.1 s or more, while Redis slept');
my ($ok, $other, $waited) = (0, 0, 0);
for my $n (1 .. 4) {
    open my $fh, '<', "$file-$n" or die "no result from client $n: $!";
    my ($o, $x, $m) = split ' ', scalar <$fh>;
    unlink "$file-$n";
    $ok += $o;
    $other += $x;
    $waited = $m if $m > $waited;
}
Test::More::cmp_ok($ok, '>=', 8, "protected requests answered 200 ($ok)");
Test::More::is($other, 0, 'no protected request got anything but 200');
Test::More::cmp_ok($waited, '>=', 0.1,
                   'the protected requests did wait for the slow Redis');
--- more_headers
Authorization: Bearer tok-slow-loop
--- error_code: 200
