# oauth2_metrics: each counter moves when it should, with two workers
# adding to one set; the JSON view has the same numbers as Prometheus's
# text; a reload keeps the counters.  (What nginx -t refuses: t/001.)

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;
use OAuth2JWT;
use JSON::PP ();
use Time::HiRes ();

OAuth2JWT::setup();

# the samples of a metrics location: { 'name{labels}' => value }, and
# their names in the order they came
sub metrics {
    my ($path) = @_;
    my ($status, $body) = OAuth2Test::http_get($path // '/metrics');
    die "metrics: $status\n" unless $status == 200;
    my (%m, @order);
    for my $line (split /\n/, $body) {
        next if $line =~ /^#/;
        $line =~ /^(\S+(?:\{[^}]*\})?) (\S+)$/
            or die "metrics: a line that is not a sample: $line\n";
        $m{$1} = $2;
        push @order, $1;
    }
    return wantarray ? (\%m, \@order) : \%m;
}

# the same from the JSON view, named as Prometheus names them
sub metrics_json {
    my ($status, $body) = OAuth2Test::http_get('/metrics.json');
    die "metrics.json: $status\n" unless $status == 200;
    my $j = JSON::PP->new->decode($body);
    my %m;
    for my $name (keys %$j) {
        if (!ref $j->{$name}) {
            $m{$name} = $j->{$name};
            next;
        }
        for my $s (@{ $j->{$name} }) {
            my @l = map { "$_=\"$s->{$_}\"" }
                    grep { $_ ne 'value' } sort keys %$s;
            # Prometheus's order: outcome before location, alg before result
            @l = reverse @l if $name eq 'oauth2_requests_total';
            $m{$name . '{' . join(',', @l) . '}'} = $s->{value};
        }
    }
    return \%m;
}

sub req {
    my ($path, $token) = @_;
    my ($s) = OAuth2Test::http_get($path,
                                   $token ? "Authorization: Bearer $token"
                                          : ());
    return $s;
}

sub servroot { $ENV{TEST_NGINX_SERVROOT} || 't/servroot' }

sub workers_of {
    my ($master) = @_;
    my @w = `pgrep -P $master`;
    chomp @w;
    return sort @w;
}

# HUP to nginx's master; returns once only new workers are left
sub reload {
    open my $fh, '<', servroot() . '/logs/nginx.pid' or die "pid: $!";
    chomp(my $master = <$fh>);
    close $fh;
    my %old = map { $_ => 1 } workers_of($master);
    kill 'HUP', $master;
    for (1 .. 100) {
        Time::HiRes::sleep(0.05);
        my @w = workers_of($master);
        return scalar @w if @w && !grep { $old{$_} } @w;
    }
    die "the old workers are still there\n";
}

our $Http = <<'_EOC_';
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_plan small 2r/m;
    oauth2_plan big 1000r/s;
    oauth2_default_plan big;
    oauth2_jwt_key HS256 $TEST_NGINX_JWT_DIR/hs.secret;
    oauth2_jwt_key RS256 $TEST_NGINX_JWT_DIR/rsa.pub kid=rsa1;
_EOC_

our $Config = <<'_EOC_';
    location /accounts {
        oauth2 on;
        oauth2_scope accounts;
        oauth2_metrics_label accounts;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /payments {
        oauth2 on;
        oauth2_scope payments;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /jwt {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_consent off;
        oauth2_metrics_label jwt;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        add_header X-Pid $pid;
        return 200 "ok\n";
    }
    location /metrics { oauth2_metrics; }
    location /metrics.json { oauth2_metrics json; }
_EOC_

OAuth2Blocks::defaults(
    http_config => $Http,
    config => $Config,
    request => "GET /metrics\n",
    error_code => 200,
);

master_on();
workers(2);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a decision of each kind, counted once, with the location label where one is set
--- init
OAuth2Test::seed_valid('m1-ok', client_id => 'm1', scope => 'accounts');
OAuth2Test::seed_consent('m1-revoked', 'revoked');
OAuth2Test::seed_token('m1-consent', client_id => 'm1', scope => 'payments',
                       consent_id => 'm1-revoked');
OAuth2Test::redis('DEL', OAuth2Test::token_key('m1-unknown'));
my @s = (main::req('/accounts', 'm1-ok'), main::req('/accounts', 'm1-ok'),
         main::req('/accounts', 'm1-unknown'), main::req('/accounts'),
         main::req('/payments', 'm1-ok'), main::req('/payments', 'm1-consent'),
         main::req('/accounts?access_token=m1-ok', 'm1-ok'));
Test::More::is("@s", '200 200 401 401 403 403 400', 'the answers');
my $m = main::metrics();
my %want = (
    'oauth2_requests_total{outcome="allowed",location="accounts"}' => 2,
    'oauth2_requests_total{outcome="invalid_token",location="accounts"}' => 2,
    'oauth2_requests_total{outcome="invalid_request",location="accounts"}' => 1,
    'oauth2_requests_total{outcome="insufficient_scope"}' => 1,
    'oauth2_requests_total{outcome="consent_invalid"}' => 1,
    'oauth2_requests_total{outcome="allowed"}' => 0,
    'oauth2_requests_total{outcome="allowed",location="jwt"}' => 0,
    'oauth2_token_source_total{source="redis"}' => 5,
    'oauth2_token_source_total{source="cache"}' => 0,
    'oauth2_token_failures_total{reason="unknown"}' => 1,
    'oauth2_token_failures_total{reason="missing"}' => 1,
    'oauth2_token_failures_total{reason="malformed"}' => 1,
    'oauth2_token_failures_total{reason="store_unavailable"}' => 0,
    'oauth2_rate_limited_total{plan="small"}' => 0,
    'oauth2_redis_connections_per_worker' => 1,
    'oauth2_redis_connections_up{worker="0"}' => 1,
    'oauth2_redis_connections_up{worker="1"}' => 1,
);
Test::More::is($m->{$_}, $want{$_}, $_) for sort keys %want;
my $sum = 0;
$sum += $m->{$_} for grep { /^oauth2_requests_total/ } keys %$m;
Test::More::is($sum, 7, 'seven requests, seven decisions');
--- response_headers
Content-Type: text/plain; version=0.0.4; charset=utf-8
--- response_body_like chomp
^# HELP oauth2_requests_total .*\n# TYPE oauth2_requests_total counter\noauth2_requests_total\{outcome="allowed"\} 0\n



=== TEST 2: 429: rate_limited with the location label, and the plan's counter
--- init
OAuth2Test::seed_valid('m2-small', client_id => 'm2-small-' . time,
                       scope => 'accounts', plan => 'small');
my @s = map { main::req('/accounts', 'm2-small') } 1 .. 3;
Test::More::is("@s", '200 200 429', 'over the small plan at the third');
my $m = main::metrics();
Test::More::is($m->{'oauth2_requests_total{outcome="rate_limited",location="accounts"}'},
               1, 'rate_limited');
Test::More::is($m->{'oauth2_rate_limited_total{plan="small"}'}, 1, 'plan small');
Test::More::is($m->{'oauth2_rate_limited_total{plan="big"}'}, 0, 'plan big');
--- response_body_like chomp
\noauth2_rate_limited_total\{plan="small"\} 1\noauth2_rate_limited_total\{plan="big"\} 0\n



=== TEST 3: Redis on a dead port: 503 store_unavailable, connection errors, no connection up
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_DEAD_PORT;
    oauth2_jwt_key HS256 $TEST_NGINX_JWT_DIR/hs.secret;
--- init
Time::HiRes::sleep(0.2);
my @s = map { main::req('/accounts', 'm3-any') } 1 .. 2;
Test::More::is("@s", '503 503', 'the answers');
my $m = main::metrics();
Test::More::is($m->{'oauth2_requests_total{outcome="store_unavailable",location="accounts"}'},
               2, 'store_unavailable');
Test::More::is($m->{'oauth2_token_failures_total{reason="store_unavailable"}'},
               2, 'a failure of the token source');
Test::More::cmp_ok($m->{'oauth2_redis_errors_total{type="connection"}'}, '>=', 2,
                   'failed connections counted');
Test::More::is($m->{'oauth2_redis_connections_up{worker="0"}'}
               + $m->{'oauth2_redis_connections_up{worker="1"}'}, 0,
               'no connection up');
# each try queues the connection's set-up, which is never answered
Test::More::cmp_ok($m->{'oauth2_redis_commands_total'}, '>=', 6,
                   'set-up commands queued');
Test::More::is($m->{'oauth2_redis_duration_seconds_count'}, 0,
               'none answered');
--- response_body_like chomp
\noauth2_redis_connections_up\{worker="0"\} 0\noauth2_redis_connections_up\{worker="1"\} 0\n
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 4: the fallback, by mode, for a JWT Redis was needed to count only
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_DEAD_PORT;
    oauth2_plan big 1000r/s;
    oauth2_default_plan big;
    oauth2_jwt_key HS256 $TEST_NGINX_JWT_DIR/hs.secret;
--- config
    location /local {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_consent off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /deny {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_consent off;
        oauth2_rate_limit_fallback deny;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "ok\n"; }
    location /metrics { oauth2_metrics; }
--- init
my $t = OAuth2JWT::sign('HS256', { client_id => 'm4', scope => 'a' });
my @s = (main::req('/local', $t), main::req('/local', $t), main::req('/deny', $t));
Test::More::is("@s", '200 200 503', 'local lets through, deny refuses');
my $m = main::metrics();
Test::More::is($m->{'oauth2_rate_limit_fallbacks_total{mode="local"}'}, 2, 'local');
Test::More::is($m->{'oauth2_rate_limit_fallbacks_total{mode="deny"}'}, 1, 'deny');
Test::More::is($m->{'oauth2_rate_limit_fallbacks_total{mode="allow"}'}, 0, 'allow');
Test::More::is($m->{'oauth2_requests_total{outcome="store_unavailable"}'}, 1,
               'the 503 of deny');
Test::More::is($m->{'oauth2_token_failures_total{reason="store_unavailable"}'}, 0,
               'not a failure of the token: it was valid');
Test::More::is($m->{'oauth2_rate_limit_zone_entries'}, 1,
               'the local counter of the client');
Test::More::is($m->{'oauth2_jwt_verifications_total{alg="HS256",result="valid"}'},
               3, 'three signatures checked');
--- response_body_like chomp
\noauth2_rate_limit_fallbacks_total\{mode="local"\} 2\n



=== TEST 5: cache hits and misses, entries, the token's source
--- http_config eval
$main::Http . "    oauth2_cache zone=m5:1m ttl=1h;\n"
--- init
OAuth2Test::seed_valid('m5-tok', client_id => 'm5', scope => 'accounts');
my @s = map { main::req('/accounts', 'm5-tok') } 1 .. 3;
Test::More::is("@s", '200 200 200', 'the answers');
my $m = main::metrics();
Test::More::is($m->{'oauth2_cache_lookups_total{result="hit"}'}, 2, 'hits');
Test::More::is($m->{'oauth2_cache_lookups_total{result="miss"}'}, 1, 'miss');
Test::More::is($m->{'oauth2_token_source_total{source="cache"}'}, 2, 'from the cache');
Test::More::is($m->{'oauth2_token_source_total{source="redis"}'}, 1, 'from Redis');
Test::More::is($m->{'oauth2_cache_entries'}, 1, 'one entry');
Test::More::is($m->{'oauth2_cache_evictions_total'}, 0, 'no eviction');
Test::More::is($m->{'oauth2_cache_no_room_total'}, 0, 'no no-room event');
--- response_body_like chomp
\noauth2_cache_entries 1\n



=== TEST 6: a full cache: evictions counted
--- http_config eval
$main::Http . "    oauth2_cache zone=m6:32k ttl=1h;\n"
--- init
OAuth2Test::seed_consent('m6-c', 'valid');
for my $i (1 .. 200) {
    OAuth2Test::seed_token("m6-$i", client_id => 'm6', consent_id => 'm6-c',
                           scope => 'accounts ' . ('x' x 200));
    main::req('/accounts', "m6-$i");
}
my $m = main::metrics();
Test::More::cmp_ok($m->{'oauth2_cache_evictions_total'}, '>', 0,
                   "evictions ($m->{'oauth2_cache_evictions_total'})");
Test::More::is($m->{'oauth2_cache_entries'} + $m->{'oauth2_cache_evictions_total'},
               200, 'entries and evictions: every record stored');
Test::More::is($m->{'oauth2_requests_total{outcome="allowed",location="accounts"}'},
               200, 'every request let through');
--- response_body_like chomp
\noauth2_cache_no_room_total 0\n



=== TEST 7: JWT verifications by algorithm and result; failures by reason
--- init
my %c = (client_id => 'm7', scope => 'accounts');
my @s = (main::req('/jwt', OAuth2JWT::sign('HS256', \%c)),
         main::req('/jwt', OAuth2JWT::sign('HS256', \%c)),
         main::req('/jwt', OAuth2JWT::sign('HS256', \%c, key => 'x' x 40)),
         main::req('/jwt', OAuth2JWT::sign('RS256', \%c, header => { kid => 'rsa1' })),
         main::req('/jwt', OAuth2JWT::sign('RS256', \%c, header => { kid => 'nope' })),
         main::req('/jwt', OAuth2JWT::sign('HS256', { %c, exp => time - 60 })));
Test::More::is("@s", '200 200 401 200 401 401', 'the answers');
my $m = main::metrics();
my %want = (
    'oauth2_jwt_verifications_total{alg="HS256",result="valid"}' => 3,
    'oauth2_jwt_verifications_total{alg="HS256",result="invalid"}' => 1,
    'oauth2_jwt_verifications_total{alg="RS256",result="valid"}' => 1,
    'oauth2_jwt_verifications_total{alg="RS256",result="invalid"}' => 0,
    'oauth2_token_source_total{source="jwt"}' => 6,
    'oauth2_token_failures_total{reason="jwt_invalid"}' => 3,
    'oauth2_requests_total{outcome="allowed",location="jwt"}' => 3,
    'oauth2_requests_total{outcome="invalid_token",location="jwt"}' => 3,
);
Test::More::is($m->{$_}, $want{$_}, $_) for sort keys %want;
Test::More::ok(!exists $m->{'oauth2_jwt_verifications_total{alg="ES256",result="valid"}'},
               'an algorithm without a signature checked is not shown');
--- response_body_like chomp
\noauth2_jwt_verifications_total\{alg="HS256",result="valid"\} 3\n



=== TEST 8: a revoked JWT: the reason revoked, its signature valid
--- config eval
$main::Config . <<'_EOC_';
    location /revocable {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_consent off;
        oauth2_jwt_revocation on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
_EOC_
--- init
my $t = OAuth2JWT::sign('HS256', { client_id => 'm7b', jti => 'm7b-jti' });
OAuth2Test::redis('SET', 'oauth2:revoked:m7b-jti', 1, 'EX', 60);
Test::More::is(main::req('/revocable', $t), 401, 'revoked: 401');
my $m = main::metrics();
Test::More::is($m->{'oauth2_token_failures_total{reason="revoked"}'}, 1, 'revoked');
Test::More::is($m->{'oauth2_token_failures_total{reason="jwt_invalid"}'}, 0,
               'not jwt_invalid');
Test::More::is($m->{'oauth2_jwt_verifications_total{alg="HS256",result="valid"}'},
               1, 'its signature was valid');
Test::More::is($m->{'oauth2_requests_total{outcome="invalid_token"}'}, 1,
               'invalid_token, without a label');
--- response_body_like chomp
\noauth2_token_failures_total\{reason="revoked"\} 1\n



=== TEST 9: the Redis histogram: one command per opaque lookup, each timed once
--- init
OAuth2Test::seed_valid('m8-tok', client_id => 'm8', scope => 'accounts');
main::req('/accounts', 'm8-tok');
my $m0 = main::metrics();
my @s = map { main::req('/accounts', 'm8-tok') } 1 .. 10;
my $m = main::metrics();
Test::More::is("@s", join(' ', ('200') x 10), 'the answers');
Test::More::is($m->{'oauth2_redis_commands_total'}
               - $m0->{'oauth2_redis_commands_total'}, 10,
               'ten lookups, ten commands');
Test::More::is($m->{'oauth2_redis_duration_seconds_count'},
               $m->{'oauth2_redis_commands_total'},
               'the histogram counts every command (set-up included)');
Test::More::is($m->{'oauth2_redis_duration_seconds_bucket{le="+Inf"}'},
               $m->{'oauth2_redis_duration_seconds_count'}, '+Inf is the count');
my @b = map { $m->{"oauth2_redis_duration_seconds_bucket{le=\"$_\"}"} }
        qw(0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1
           0.25 0.5 1 +Inf);
Test::More::ok(!grep({ !defined } @b), 'fourteen buckets, 100 us to 1 s');
Test::More::is_deeply([sort { $a <=> $b } @b], \@b, 'cumulative');
Test::More::cmp_ok($m->{'oauth2_redis_duration_seconds_sum'}, '>', 0, 'a sum');
Test::More::cmp_ok($m->{'oauth2_redis_duration_seconds_sum'}, '<',
                   $m->{'oauth2_redis_duration_seconds_count'},
                   'under a second each');
Test::More::is($m->{'oauth2_redis_errors_total{type="reply"}'}, 0, 'no error');
Test::More::is($m->{'oauth2_redis_timeouts_total'}, 0, 'no timeout');
--- response_body_like chomp
\n# TYPE oauth2_redis_duration_seconds histogram\noauth2_redis_duration_seconds_bucket\{le="0.0001"\} \d+\n



=== TEST 10: a Redis that does not answer in time: timeouts, and a reconnect
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_redis_timeout 200ms;
    oauth2_jwt_key HS256 $TEST_NGINX_JWT_DIR/hs.secret;
--- init
OAuth2Test::seed_valid('m9-tok', client_id => 'm9', scope => 'accounts');
Test::More::is(main::req('/accounts', 'm9-tok'), 200, 'before');
my $pid = OAuth2Test::sleep_redis(0.6);
my $s = main::req('/accounts', 'm9-tok');
waitpid($pid, 0);
Test::More::is($s, 503, 'Redis asleep: 503');
Time::HiRes::sleep(0.5);
Test::More::is(main::req('/accounts', 'm9-tok'), 200, 'after');
my $m = main::metrics();
Test::More::is($m->{'oauth2_redis_timeouts_total'}, 1, 'one timeout');
Test::More::is($m->{'oauth2_redis_reconnects_total'}, 1, 'one reconnect');
Test::More::cmp_ok($m->{'oauth2_redis_errors_total{type="connection"}'}, '>=', 1,
                   'the connection dropped');
Test::More::is($m->{'oauth2_redis_connections_up{worker="0"}'}
               + $m->{'oauth2_redis_connections_up{worker="1"}'}, 2,
               'both up again');
--- response_body_like chomp
\noauth2_redis_timeouts_total 1\n
--- no_error_log
[alert]
[crit]



=== TEST 11: the JSON view has the same samples, the same numbers
--- init
OAuth2Test::seed_valid('m10-tok', client_id => 'm10', scope => 'accounts');
main::req('/accounts', 'm10-tok') for 1 .. 3;
main::req('/payments', 'm10-tok');
main::req('/jwt', OAuth2JWT::sign('HS256', { client_id => 'm10' }));
my ($text, $order) = main::metrics();
my $json = main::metrics_json();
# as numbers: JSON::PP reads 0.003940 as 0.00394
$_ += 0 for values %$text, values %$json;
Test::More::is_deeply($json, $text, 'the same samples, the same values');
Test::More::cmp_ok(scalar(keys %$text), '>', 60, scalar(keys %$text)
                   . ' samples');
--- request
GET /metrics.json
--- response_headers
Content-Type: application/json
--- response_body_like chomp
^\{\n"oauth2_requests_total":\[\{"outcome":"allowed","value":0\},



=== TEST 12: a reload keeps the counters, and a new label gets its own
--- init
OAuth2Test::seed_valid('m11-tok', client_id => 'm11', scope => 'accounts');
main::req('/accounts', 'm11-tok') for 1 .. 3;
my $m0 = main::metrics();
my $conf = main::servroot() . '/conf/nginx.conf';
open my $fh, '<', $conf or die $!;
my $text = do { local $/; <$fh> };
close $fh;
$text =~ s/oauth2_metrics_label jwt;/oauth2_metrics_label jwt-v2;/ or die;
open $fh, '>', $conf or die $!;
print $fh $text;
close $fh;
Test::More::is(main::reload(), 2, 'two new workers');
Time::HiRes::sleep(0.2);
main::req('/accounts', 'm11-tok') for 1 .. 2;
main::req('/jwt', OAuth2JWT::sign('HS256', { client_id => 'm11' }));
my $m = main::metrics();
Test::More::is($m0->{'oauth2_requests_total{outcome="allowed",location="accounts"}'},
               3, 'three before');
Test::More::is($m->{'oauth2_requests_total{outcome="allowed",location="accounts"}'},
               5, 'five after: kept across the reload');
Test::More::is($m->{'oauth2_requests_total{outcome="allowed",location="jwt-v2"}'},
               1, 'the new label');
Test::More::ok(!exists $m->{'oauth2_requests_total{outcome="allowed",location="jwt"}'},
               'the label no longer configured is not shown');
Test::More::cmp_ok($m->{'oauth2_redis_commands_total'}, '>',
                   $m0->{'oauth2_redis_commands_total'}, 'Redis commands kept');
Test::More::is($m->{'oauth2_redis_connections_up{worker="0"}'}
               + $m->{'oauth2_redis_connections_up{worker="1"}'}, 2,
               'the new workers\' connections');



=== TEST 13: two workers add to one set
--- init
OAuth2Test::seed_valid('m12-tok', client_id => 'm12', scope => 'accounts');
my (%pids, $n);
# which worker answered: the backend's X-Pid (http_get returns no headers)
for my $i (1 .. 200) {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => OAuth2Test::server_port());
    print $sock "GET /accounts HTTP/1.0\r\nAuthorization: Bearer m12-tok\r\n\r\n";
    local $/;
    my $res = <$sock>;
    $n++ if $res =~ m{^HTTP/1\.\d 200};
    $pids{$1}++ if $res =~ /\r\nX-Pid: (\d+)/;
    last if keys %pids >= 2 && $i >= 20;
}
Test::More::is(scalar(keys %pids), 2, 'both workers answered');
my $m = main::metrics();
Test::More::is($m->{'oauth2_requests_total{outcome="allowed",location="accounts"}'},
               $n, "$n requests, $n counted");



=== TEST 14: an internal redirect is counted once, with the first location's label
--- config
    location /first {
        oauth2 on;
        oauth2_scope accounts;
        oauth2_metrics_label first;
        try_files /nothing-here @second;
    }
    location @second {
        oauth2 on;
        oauth2_scope accounts;
        oauth2_metrics_label second;
        rewrite ^ /backend break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
    location /backend { return 200 "ok\n"; }
    location /metrics { oauth2_metrics; }
--- init
OAuth2Test::seed_valid('m13-tok', client_id => 'm13', scope => 'accounts');
Test::More::is(main::req('/first', 'm13-tok'), 200, 'let through');
my $m = main::metrics();
Test::More::is($m->{'oauth2_requests_total{outcome="allowed",location="first"}'},
               1, 'counted for the first location');
Test::More::is($m->{'oauth2_requests_total{outcome="allowed",location="second"}'},
               0, 'not again after the redirect');
Test::More::is($m->{'oauth2_token_source_total{source="redis"}'}, 1, 'one lookup');



=== TEST 15: oauth2_dry_run: let through, counted with the outcome it would have had
--- config eval
$main::Config . <<'_EOC_';
    location /rollout {
        oauth2 on;
        oauth2_dry_run on;
        oauth2_scope payments;
        oauth2_metrics_label rollout;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
_EOC_
--- init
OAuth2Test::seed_valid('m15-tok', client_id => 'm15', scope => 'accounts');
my @s = (main::req('/rollout', 'm15-tok'), main::req('/rollout'));
Test::More::is("@s", '200 200', 'both let through');
my $m = main::metrics();
Test::More::is($m->{'oauth2_requests_total{outcome="insufficient_scope",location="rollout"}'},
               1, 'counted as the refusal it would have been');
Test::More::is($m->{'oauth2_requests_total{outcome="invalid_token",location="rollout"}'},
               1, 'the missing token too');
Test::More::is($m->{'oauth2_requests_total{outcome="allowed",location="rollout"}'},
               0, 'none counted allowed');
Test::More::is($m->{'oauth2_token_failures_total{reason="missing"}'}, 1,
               'the reason');
--- response_body_like chomp
\noauth2_requests_total\{outcome="insufficient_scope",location="rollout"\} 1\n



=== TEST 16: GET and HEAD only
--- request
POST /metrics
x=1
--- error_code: 405
--- response_headers
Allow: GET, HEAD



=== TEST 17: HEAD: the headers only
--- request
HEAD /metrics
--- response_headers
Content-Type: text/plain; version=0.0.4; charset=utf-8
--- response_body



=== TEST 18: labels without oauth2_metrics: no zone, nothing counted, nothing breaks
--- config
    location /accounts {
        oauth2 on;
        oauth2_scope accounts;
        oauth2_metrics_label accounts;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "ok\n"; }
--- init
OAuth2Test::seed_valid('m16-tok', client_id => 'm16', scope => 'accounts');
--- more_headers
Authorization: Bearer m16-tok
--- request
GET /accounts
--- response_body
ok



=== TEST 19: a label of UTF-8 is kept as it is
--- config
    location /accounts {
        oauth2 on;
        oauth2_scope accounts;
        oauth2_metrics_label "comptes é v1";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "ok\n"; }
    location /metrics { oauth2_metrics; }
--- init
OAuth2Test::seed_valid('m25-tok', client_id => 'm25', scope => 'accounts');
main::req('/accounts', 'm25-tok');
--- response_body_like chomp
\noauth2_requests_total\{outcome="allowed",location="comptes é v1"\} 1\n
