# oauth2_rate_limit_lease: permits taken from the shared GCRA in batches
# and spent by each node without a Redis call.  Configuration errors
# (nginx -t); a slow client takes one permit per request, as without
# leases; two nginx instances of two workers each within the bounds of
# docs/rate-limiting.md ("Leases"); the permits of an ended lease are
# given back.  Plain Test::More: it runs its own nginx instances.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2JWT;
use OAuth2Nodes;

my $nginx  = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES}
    or plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set';
my $redis  = $ENV{TEST_NGINX_REDIS_PORT}
    or plan skip_all => 'TEST_NGINX_REDIS_PORT is not set';

# the lease of the hammered locations: max=10 time=1s, two nodes
my ($MAX, $TIME, $NODES) = (10, 1, 2);


# 1. nginx -t

sub nginx_t {
    my ($location) = @_;
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/$_" for qw(conf logs);
    open my $fh, '>', "$dir/conf/nginx.conf" or die $!;
    print $fh <<"_CONF_";
load_module $module;
error_log logs/error.log;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    oauth2_redis 127.0.0.1:$redis;
    oauth2_plan p 10r/s;
    server {
        listen 127.0.0.1:1;
        location / { oauth2 on; $location }
    }
}
_CONF_
    close $fh;
    my $out = `$nginx -p $dir/ -c conf/nginx.conf -t 2>&1`;
    return ($? >> 8, $out);
}

for my $ok ('oauth2_rate_limit_lease on;',
            'oauth2_rate_limit_lease on max=10000 time=60s;',
            'oauth2_rate_limit_lease on time=250ms max=1;',
            'oauth2_rate_limit_lease off;')
{
    my ($rc, $out) = nginx_t($ok);
    is($rc, 0, "nginx -t accepts \"$ok\"") or diag $out;
}

for my $bad (
    [ 'oauth2_rate_limit_lease on max=0;',
      qr/invalid "max=0" in "oauth2_rate_limit_lease": a number of permits from 1 to 10000 expected/ ],
    [ 'oauth2_rate_limit_lease on max=10001;',
      qr/invalid "max=10001" in "oauth2_rate_limit_lease"/ ],
    [ 'oauth2_rate_limit_lease on max=x;',
      qr/invalid "max=x" in "oauth2_rate_limit_lease"/ ],
    [ 'oauth2_rate_limit_lease on time=0;',
      qr/invalid "time=0" in "oauth2_rate_limit_lease": a time from 1ms to 60s expected/ ],
    [ 'oauth2_rate_limit_lease on time=61s;',
      qr/invalid "time=61s" in "oauth2_rate_limit_lease"/ ],
    [ 'oauth2_rate_limit_lease on time=soon;',
      qr/invalid "time=soon" in "oauth2_rate_limit_lease"/ ],
    [ 'oauth2_rate_limit_lease on size=3;',
      qr/invalid parameter "size=3" in "oauth2_rate_limit_lease": max=N or time=T expected/ ],
    [ 'oauth2_rate_limit_lease yes;',
      qr/invalid value "yes" in "oauth2_rate_limit_lease": "on" or "off" expected/ ],
    [ 'oauth2_rate_limit_lease off max=3;',
      qr/"oauth2_rate_limit_lease off" takes no parameters/ ],
    [ 'oauth2_rate_limit_lease on; oauth2_rate_limit_lease on;',
      qr/"oauth2_rate_limit_lease" directive is duplicate/ ],
    [ 'oauth2_rate_limit_lease;',
      qr/invalid number of arguments in "oauth2_rate_limit_lease"/ ])
{
    my ($rc, $out) = nginx_t($bad->[0]);
    isnt($rc, 0, "nginx -t refuses \"$bad->[0]\"");
    like($out, $bad->[1], "\"$bad->[0]\": the message names the directive");
}


# 2. two nodes of two workers each, started below with this http block

my $http = <<"_CONF_";
    oauth2_redis 127.0.0.1:$redis;
    oauth2_consent off;
    oauth2_cache zone=tokens:1m ttl=1h;
    oauth2_plan slow5 5r/m;
    oauth2_plan burst100 100r/h;
    oauth2_plan rate20 20r/s;
    oauth2_plan wide 10000r/s;
    oauth2_plan three 3r/h;
    oauth2_jwt_key HS256 "$OAuth2JWT::Secret";
    server {
        listen 127.0.0.1:\$PORT reuseport;
        location /api {
            oauth2 on;
            oauth2_rate_limit_lease on max=$MAX time=${TIME}s;
            add_header X-Status \$oauth2_status always;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /slow {
            oauth2 on;
            oauth2_rate_limit_lease on max=$MAX time=200ms;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /long {
            oauth2 on;
            oauth2_rate_limit_lease on max=$MAX time=60s;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /jwt {
            oauth2 on;
            oauth2_token_type jwt;
            oauth2_rate_limit_lease on max=$MAX time=${TIME}s;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /jwtlong {
            oauth2 on;
            oauth2_token_type jwt;
            oauth2_rate_limit_lease on max=$MAX time=60s;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /backend { return 200 "ok\\n"; }
    }
_CONF_

# Redis's clock and a limit's TAT, in microseconds
sub redis_now {
    my $t = OAuth2Test::redis('TIME');
    return $t->[0] * 1e6 + $t->[1];
}

# the scripts Redis has run so far
sub evalsha_calls {
    my $info = OAuth2Test::redis('INFO', 'commandstats');
    return $info =~ /^cmdstat_evalsha:calls=(\d+)/m ? $1 : 0;
}

sub tat {
    my ($client, $plan, $count, $usec) = @_;
    return OAuth2Test::redis('GET', "oauth2:rl:{$client}:$plan:$count:$usec");
}

my @nginx = OAuth2Nodes::start($NODES, $http);
my @nodes = map { $_->port } @nginx;
sleep 0.5;

my $run = "$$-" . int(time);

# 2a. a slow client: one permit per request, exactly as without leases
{
    my $client = "lease-slow-$run";
    my $token = "tok-lease-slow-$run";
    OAuth2Test::seed_token($token, client_id => $client, plan => 'slow5');

    my @got;
    for my $i (1 .. 7) {
        push @got, scalar OAuth2Nodes::request($nodes[0], $token, '/slow');
        if ($i == 3) {
            # 3 counted, 12 s apart each: nothing held beyond them
            my $ahead = (tat($client, 'slow5', 5, 60000000) - redis_now())
                        / 1e6;
            cmp_ok($ahead, '>', 36 - 3,
                   sprintf('slow: 3 requests counted (TAT %.1f s ahead)',
                           $ahead));
            cmp_ok($ahead, '<=', 36,
                   'slow: no permit taken beyond the 3 requests');
        }
        sleep 0.3;
    }
    is("@got", '200 200 200 200 200 429 429',
       'slow: 5 of 7 accepted, then 429, as without leases');
}

# 2b. a burst of 480 requests from 8 clients over both nodes, 100r/h
my $bound_burst = 1;    # min(nodes x max, ceil(T x N / P)) = min(20, 1)
my $early = $NODES * $MAX;
{
    my $client = "lease-burst-$run";
    my $token = "tok-lease-burst-$run";
    OAuth2Test::seed_token($token, client_id => $client, plan => 'burst100');

    my $start = redis_now();
    my ($ok, $limited, $other) =
        OAuth2Nodes::hammer(\@nodes, $token, 8, time + 30, 60);
    is($other, 0, 'burst: every answer is a 200 or a 429');
    cmp_ok($ok, '<=', 100 + $bound_burst,
           "burst: $ok accepted, not above the limit + $bound_burst");
    cmp_ok($ok, '>=', 100 - $early,
           "burst: $ok accepted, at most $early refused early");
    diag("burst: $ok accepted, $limited limited");

    # what Redis counted: (TAT - first request) / 36 s
    my $counted = (tat($client, 'burst100', 100, 3600000000) - $start)
                  / 36e6;
    cmp_ok($counted, '<=', 100.01, 'burst: Redis counted 100 at most');
    cmp_ok($counted, '>=', $ok - 0.01,
           sprintf('burst: every accepted request was counted in Redis '
                   . '(%.2f counted, %d accepted)', $counted, $ok));
}

# 2c. a client that stops: the permits its lease held are given back when
# the lease ends, and another node spends them
{
    my $client = "lease-back-$run";
    my $token = "tok-lease-back-$run";
    OAuth2Test::seed_token($token, client_id => $client, plan => 'burst100');

    my $start = redis_now();
    my $ok = 0;
    for (1 .. 30) {
        $ok++ if OAuth2Nodes::request($nodes[0], $token) == 200;
    }
    is($ok, 30, 'stopping client: 30 of 30 accepted');
    sleep 0.2;
    my $held = (tat($client, 'burst100', 100, 3600000000) - $start) / 36e6;
    cmp_ok($held, '>', 30.5,
           sprintf('stopping client: permits taken ahead (%.2f counted)',
                   $held));

    sleep $TIME + 2;
    # the permits of the node's last take come back; those of a take
    # below it (a refill landed on top before the lease ended) come back
    # only when the last take was not spent at all, else they lapse: one
    # batch at most
    my $net = (tat($client, 'burst100', 100, 3600000000) - $start) / 36e6;
    cmp_ok($net, '<', $held - 0.8,
           sprintf('ended lease: unspent permits were given back '
                   . '(%.2f counted, %.2f before)', $net, $held));
    cmp_ok($net, '>', 29.8, 'ended lease: ... none that was spent');
    cmp_ok($net, '<', 30 + $MAX + 0.2,
           'ended lease: ... a batch at most lapsed');

    my $more = 0;
    for (1 .. 90) {
        $more++ if OAuth2Nodes::request($nodes[1], $token) == 200;
    }
    # never more than the 70 left; a few fewer when one of the node's own
    # give-backs finds the TAT moved by its next take (those lapse)
    my $left = 100 - int($net + 0.999);
    cmp_ok($more, '<=', $left, "ended lease: the other node gets $more, "
                               . "not more than the $left left");
    cmp_ok($more, '>=', $left - $MAX, "ended lease: ... and at least "
                                      . ($left - $MAX));
}

# 2d. a rate: 20 per second for 2 seconds, both nodes
{
    my $token = "tok-lease-rate-$run";
    OAuth2Test::seed_token($token, client_id => "lease-rate-$run",
                           plan => 'rate20');
    my ($ok, $limited, $other, $first, $last) =
        OAuth2Nodes::hammer(\@nodes, $token, 8, time + 2, 100000);
    my $span = $last - $first;
    my $gcra = 20 + int($span / 0.05);

    # spent up to T after being counted: min(nodes x max, ceil(T N / P))
    my $bound = $NODES * $MAX < $TIME * 20 ? $NODES * $MAX : $TIME * 20;
    is($other, 0, 'rate: every answer is a 200 or a 429');
    cmp_ok($ok, '<=', $gcra + 1 + $bound,
           "rate: $ok accepted, GCRA allows $gcra (+1), + $bound at most");
    cmp_ok($ok, '>=', $gcra - 1 - $early,
           "rate: $ok accepted, GCRA allows $gcra (-1), $early refused "
           . "early at most");
    diag(sprintf('rate: %d accepted, %d limited over %.3f s; GCRA %d',
                 $ok, $limited, $span, $gcra));
}

# 2e. a client under its limit: admitted from the lease, few script calls.
# Without leases 400 requests are 400 calls.  With max=10, each node's
# batch grows to 10 within its first 10 takes, and a background take
# refills it when 5 are left, so the warm path is one call per 5 requests:
# about 2 x (10 + 190 / 5) = 96 calls (about 92 measured on an idle box).
# A request that finds none held while a take is in flight takes one
# permit of its own, which a loaded machine does more often (CI once saw
# more than 100): the bound is half the calls without leases.
my $LEASE_CALLS = 200;
{
    my $token = "tok-lease-wide-$run";
    OAuth2Test::seed_token($token, client_id => "lease-wide-$run",
                           plan => 'wide');
    my $calls = evalsha_calls();
    my ($ok, $limited, $other) =
        OAuth2Nodes::hammer(\@nodes, $token, 8, time + 30, 50);
    $calls = evalsha_calls() - $calls;
    is($ok, 400, "under the limit: 400 of 400 accepted ($calls calls)");
    cmp_ok($calls, '<=', $LEASE_CALLS,
           "under the limit: $calls script calls for 400 requests");

    # the headers of a request admitted from the lease
    my ($status, $head) = OAuth2Nodes::request($nodes[0], $token);
    is($status, 200, 'under the limit: one more, from the lease');
    like($head, qr/^RateLimit-Policy: "wide";q=10000;w=1\r$/m,
         'lease: RateLimit-Policy');
    like($head, qr/^X-RateLimit-Remaining: (\d+)\r$/m,
         'lease: X-RateLimit-Remaining');
    my ($rem) = $head =~ /^X-RateLimit-Remaining: (\d+)/m;
    cmp_ok($rem // -1, '>', 9000, 'lease: most of the limit remains');
    cmp_ok($rem // 1e9, '<=', 10000, 'lease: never more than the limit');
}

# 2f. a JWT verified in the worker: counted through the lease too
{
    my $jwt = OAuth2JWT::sign('HS256', { client_id => "lease-jwt-$run",
                                         plan => 'wide' });
    my $calls = evalsha_calls();
    my ($ok, $limited, $other) =
        OAuth2Nodes::hammer(\@nodes, $jwt, 8, time + 30, 50, '/jwt');
    $calls = evalsha_calls() - $calls;
    is($ok, 400, "JWT: 400 of 400 accepted ($calls calls)");
    cmp_ok($calls, '<=', $LEASE_CALLS,
           "JWT: $calls script calls for 400 requests");
}

# 2g. locations that share a plan share the node's permits, but each
# spends only those taken within its own time=: /slow (200ms) does not
# spend what /long (60s) took more than a second before
{
    my $tok = "tok-share-$run";
    OAuth2Test::seed_token($tok, client_id => "lease-share-$run",
                           plan => 'wide');
    OAuth2Nodes::request($nodes[0], $tok, '/long') for 1 .. 12;
    sleep 1.3;
    my $calls = evalsha_calls();
    my @s = map { scalar OAuth2Nodes::request($nodes[0], $tok, '/slow') }
                1 .. 3;
    $calls = evalsha_calls() - $calls;
    is("@s", '200 200 200', 'shared plan: /slow answered');
    cmp_ok($calls, '>=', 1,
           "shared plan: /slow took permits of its own ($calls calls), "
           . 'not those /long took 1.3 s before');
}

# 2h. a give-back moves a TAT back by no more than the take's TAT is
# ahead of now: node A takes 5 of a 10r/s limit and spends none; 0.6 s
# later (A's 5 are behind now: time gave them back) node B takes 10;
# A's late give-back must not give the 5 a second time, or node C would
# get 5 more than the limit's burst (the lease script, run as nginx runs
# it)
{
    my $script = `$FindBin::Bin/../util/gen-scripts.pl --text lease`;
    my $client = "lease-twice-$run";
    my @limit = (1, 10, 1000000);
    my $take = sub {
        OAuth2Test::redis('EVAL', $script, 0, 'oauth2:', $client, 'p10',
                          'take', $_[0], @limit);
    };
    my $a = $take->(5);
    is($a->[6], 5, 'script: node A takes 5');
    sleep 0.6;
    my $b = $take->(10);
    is($b->[6], 10, 'script: node B takes the burst of 10');
    OAuth2Test::redis('EVAL', $script, 0, 'oauth2:', $client, 'p10',
                      'return', 5, @limit, $a->[7], $a->[6]);
    my $c = $take->(10);
    is($c->[6], 0, 'script: after A gives back 5 late, node C gets none '
                   . '(10 counted in the last 0.1 s already)');
    # a give-back in time still gives back
    my $d = OAuth2Test::redis('EVAL', $script, 0, 'oauth2:', "$client-b",
                              'p10', 'take', 10, @limit);
    OAuth2Test::redis('EVAL', $script, 0, 'oauth2:', "$client-b", 'p10',
                      'return', 4, @limit, $d->[7], $d->[6]);
    my $e = OAuth2Test::redis('EVAL', $script, 0, 'oauth2:', "$client-b",
                              'p10', 'take', 10, @limit);
    cmp_ok($e->[6], '>=', 4, 'script: 4 given back at once can be taken '
                             . "again ($e->[6])");

    # give-backs of takes below the top of the TAT: A and B take 10 each
    # of 100 per 100 s, A gives back (B took since: A's permits are not
    # the last counted), C takes 10, B gives back (C took since): none
    # of it comes back, 70 are left, not more
    my @wide = (1, 100, 100000000);
    my $c3 = "$client-c";
    my $tk = sub {
        OAuth2Test::redis('EVAL', $script, 0, 'oauth2:', $c3, 'p100',
                          'take', $_[0], @wide);
    };
    my $ra = $tk->(10);
    my $rb = $tk->(10);
    OAuth2Test::redis('EVAL', $script, 0, 'oauth2:', $c3, 'p100',
                      'return', 10, @wide, $ra->[7], $ra->[6]);
    my $rc = $tk->(10);
    OAuth2Test::redis('EVAL', $script, 0, 'oauth2:', $c3, 'p100',
                      'return', 10, @wide, $rb->[7], $rb->[6]);
    my $rd = $tk->(100);
    is("$ra->[6] $rb->[6] $rc->[6]", '10 10 10', 'script: A, B, C take 10');
    cmp_ok($rd->[6], '<=', 70, 'script: give-backs of takes counted over '
                               . "do not come back: D gets $rd->[6] of 70");
}

# 2i. the sweep reaches an ended lease behind many idle clients: it
# frees the idle ones as it goes, so that the permits come back
{
    for my $i (1 .. 300) {
        my $t = "tok-idle-$run-$i";
        OAuth2Test::seed_token($t, client_id => "lease-idle-$run-$i",
                               plan => 'burst100');
        OAuth2Nodes::request($nodes[1], $t) for 1 .. 2;
    }
    my $client = "lease-swept-$run";
    my $tok = "tok-swept-$run";
    OAuth2Test::seed_token($tok, client_id => $client, plan => 'burst100');
    my $ok = grep { OAuth2Nodes::request($nodes[1], $tok) == 200 } 1 .. 30;
    my $counted = sub {
        my $v = tat($client, 'burst100', 100, 3600000000) // 0;
        return ($v - redis_now()) / 36e6;
    };
    my $held = $counted->();
    sleep 4;
    my $after = $counted->();
    diag sprintf("sweep: %d accepted, counted %.2f, then %.2f", $ok, $held,
                 $after);
    cmp_ok($after, '<', $held - 1,
           'sweep: the ended lease was given back behind 300 idle clients');
}

# 2j. a client that goes away while its node's take is in flight: the
# take goes on for the node, and the permit counted for it in Redis is
# spent by the next request (3 per hour: three 200s in all, not two).
# The statuses of 4 requests after a client of $client hung up during the
# node's take (Redis held by DEBUG SLEEP, under the 1s timeout); with
# $flush, Redis lost its scripts first.
sub gone_during_take {
    my ($client, $flush) = @_;
    my $jwt = OAuth2JWT::sign('HS256', { client_id => $client,
                                         plan => 'three' });
    OAuth2Test::redis('SCRIPT', 'FLUSH') if $flush;
    my $busy = OAuth2Test::sleep_redis(0.6);
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $nodes[0], Proto => 'tcp')
        or die "connect: $!";
    print $sock "GET /jwtlong HTTP/1.0\r\nHost: localhost\r\n"
                . "Authorization: Bearer $jwt\r\n\r\n";
    select(undef, undef, undef, 0.2);
    close $sock;                                # before Redis answers
    waitpid($busy, 0);
    select(undef, undef, undef, 0.2);
    return join ' ', map {
        scalar OAuth2Nodes::request($nodes[0], $jwt, '/jwtlong')
    } 1 .. 4;
}

is(gone_during_take("lease-gone-$run"), '200 200 200 429',
   'a client gone during its take: the next requests spend its permit');
ok((grep { /client prematurely closed connection/ } $nginx[0]->error_log),
   '... the client was gone before the answer');

# 2k. the same after SCRIPT FLUSH: Redis answers the handed-over take
# NOSCRIPT, and the take is sent again as EVAL with the job's arguments
# (the request's pool is gone by then)
{
    my $lost = sub { scalar grep { /redis lost its scripts/ }
                     $nginx[0]->error_log };
    my $lost0 = $lost->();
    is(gone_during_take("lease-gone2-$run", 1), '200 200 200 429',
       'after SCRIPT FLUSH too: the take, sent again as EVAL, reaches the '
       . 'node');
    cmp_ok($lost->(), '>', $lost0, '... which Redis answered NOSCRIPT');
}

for my $n (@nginx) {
    my @bad = grep { /\[(alert|crit|emerg)\]|lease: unexpected/ }
              $n->error_log;
    is(scalar(@bad), 0, 'no alert, crit or emerg in ' . $n->dir)
        or diag @bad;
}

END { $_->stop for @nginx }

done_testing();
