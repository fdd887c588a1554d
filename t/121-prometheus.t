# oauth2_metrics with Debian's prometheus package: `promtool check metrics`
# accepts the output, `promtool check rules` the example alerts, and a real
# prometheus server (one-second scrapes) scraping the `make run` gateway
# (examples/nginx.conf, its ports made free) shows the counters through its
# HTTP API.  The package is installed when missing (apt-get; its service is
# not started); the suite is skipped only when apt cannot install it.
# Plain Test::More.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;

my $top    = "$FindBin::Bin/..";
my $nginx  = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES}
    or plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set';
my $rport  = OAuth2Test::port();

sub have { system("command -v $_[0] >/dev/null 2>&1") == 0 }

sub free_port {
    my $l = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0',
                                  ReuseAddr => 1) or die "listen: $!";
    return $l->sockport;
}

# Debian's prometheus (it brings promtool), installed the Debian way; a
# policy-rc.d keeps its service from being started by the install
if (!have('prometheus') || !have('promtool')) {
    my $sudo = $> == 0 ? '' : have('sudo') ? 'sudo -n ' : undef;
    if (defined $sudo) {
        my $policy = '/usr/sbin/policy-rc.d';
        my $ours = !-e $policy;
        system("printf '#!/bin/sh\\nexit 101\\n' | ${sudo}tee $policy"
               . " >/dev/null && ${sudo}chmod 755 $policy") if $ours;
        system("${sudo}apt-get update -qq >/dev/null 2>&1 && "
               . "DEBIAN_FRONTEND=noninteractive ${sudo}apt-get install -y "
               . "-qq --no-install-recommends prometheus >/dev/null 2>&1");
        system("${sudo}rm -f $policy") if $ours;
    }
    plan skip_all => 'prometheus is not installed and apt-get could not '
                     . 'install it'
        unless have('prometheus') && have('promtool');
}

my $http = HTTP::Tiny->new(timeout => 5);
my ($nginx_dir, $prom_pid);

sub stop_all {
    if ($prom_pid) {
        kill 'TERM', $prom_pid;
        waitpid($prom_pid, 0);
        undef $prom_pid;
    }
    if ($nginx_dir && -f "$nginx_dir/logs/nginx.pid") {
        system("$nginx -p $nginx_dir/ -c conf/nginx.conf -s stop"
               . " >/dev/null 2>&1");
        for (1 .. 50) {
            last unless -f "$nginx_dir/logs/nginx.pid";
            sleep 0.05;
        }
    }
}

END { stop_all() }
$SIG{INT} = $SIG{TERM} = sub { stop_all(); exit 1 };

# the gateway of `make run`: examples/nginx.conf, free ports

my %port = (gateway => free_port(), backend => free_port(),
            metrics => free_port(), prometheus => free_port());

$nginx_dir = tempdir(CLEANUP => 1);
mkdir "$nginx_dir/$_" for qw(conf logs);
my $conf = do {
    open my $fh, '<', "$top/examples/nginx.conf" or die $!;
    local $/;
    <$fh>;
};
$conf =~ s/127\.0\.0\.1:6479\b/127.0.0.1:$rport/g or die 'redis';
$conf =~ s/127\.0\.0\.1:8080\b/127.0.0.1:$port{gateway}/g or die 'gateway';
$conf =~ s/127\.0\.0\.1:8081\b/127.0.0.1:$port{backend}/g or die 'backend';
$conf =~ s/127\.0\.0\.1:9145\b/127.0.0.1:$port{metrics}/g or die 'metrics';
open my $fh, '>', "$nginx_dir/conf/nginx.conf" or die $!;
print $fh "load_module $module;\n$conf";
close $fh;

my $out = `$nginx -p $nginx_dir/ -c conf/nginx.conf 2>&1`;
is($?, 0, 'the make run gateway starts') or diag $out;

my $metrics = "http://127.0.0.1:$port{metrics}/metrics";
for (1 .. 50) {
    last if $http->get($metrics)->{success};
    sleep 0.05;
}

# the requests of the demo

OAuth2Test::seed_valid('p121-pay', client_id => 'tpp-121',
                       scope => 'accounts paymentRequest');
OAuth2Test::seed_valid('p121-acc', client_id => 'tpp-121',
                       scope => 'accounts');

my $base = "http://127.0.0.1:$port{gateway}/open-banking/v3.1";
my @codes;
for my $r (['pisp', 'p121-pay'], ['pisp', 'p121-pay'], ['pisp', 'p121-pay'],
           ['pisp', undef], ['pisp', 'p121-acc'], ['pisp', 'p121-acc'],
           ['aisp', 'p121-pay'])
{
    my $res = $http->get("$base/$r->[0]/x", {
        headers => $r->[1] ? { Authorization => "Bearer $r->[1]" } : {} });
    push @codes, $res->{status};
}
is("@codes", '200 200 200 401 403 403 200', 'the demo\'s answers');

# promtool check metrics

my $res = $http->get($metrics);
is($res->{status}, 200, 'GET /metrics');
like($res->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4\b},
     'the exposition format\'s Content-Type');
my $tmp = tempdir(CLEANUP => 1);
open $fh, '>', "$tmp/metrics.txt" or die $!;
print $fh $res->{content};
close $fh;
$out = `promtool check metrics < $tmp/metrics.txt 2>&1`;
is($?, 0, 'promtool check metrics accepts the output');
is($out, '', 'and has nothing to say about it');

$out = `promtool check rules $top/examples/prometheus/oauth2-alerts.yml 2>&1`;
is($?, 0, 'promtool check rules accepts the example alerts') or diag $out;

# a real prometheus, scraping every second

open $fh, '>', "$tmp/prometheus.yml" or die $!;
print $fh <<"_YML_";
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $top/examples/prometheus/oauth2-alerts.yml
scrape_configs:
  - job_name: oauth2
    static_configs:
      - targets: ['127.0.0.1:$port{metrics}']
_YML_
close $fh;

$prom_pid = fork() // die "fork: $!";
if ($prom_pid == 0) {
    open STDOUT, '>', "$tmp/prometheus.log";
    open STDERR, '>&', \*STDOUT;
    exec('prometheus', "--config.file=$tmp/prometheus.yml",
         "--storage.tsdb.path=$tmp/data",
         "--web.listen-address=127.0.0.1:$port{prometheus}",
         '--log.level=warn') or POSIX::_exit(127);
}

my $api = "http://127.0.0.1:$port{prometheus}";
my $ready;
for (1 .. 200) {
    $ready = $http->get("$api/-/ready")->{success} and last;
    sleep 0.1;
}
ok($ready, 'prometheus is ready') or diag `cat $tmp/prometheus.log`;

# prometheus's view: { 'outcome location' => value } of a query

sub query {
    my ($q) = @_;
    my $r = $http->get("$api/api/v1/query?query="
                       . join('', map { sprintf '%%%02X', ord }
                                  split //, $q));
    return undef unless $r->{success};
    my $j = decode_json($r->{content});
    return $j->{status} eq 'success' ? $j->{data}{result} : undef;
}

sub samples {
    my ($q) = @_;
    my %v;
    for my $s (@{ query($q) // [] }) {
        my $m = $s->{metric};
        $v{join ' ', map { $m->{$_} // '' } qw(outcome location)}
            = $s->{value}[1];
    }
    return \%v;
}

my ($v, $t0) = ({}, time);
while (time - $t0 < 15) {
    $v = samples('oauth2_requests_total');
    last if ($v->{'allowed pisp'} // 0) == 3;
    sleep 0.2;
}

is($v->{'allowed pisp'}, 3, 'prometheus has allowed{location="pisp"} 3');
is($v->{'invalid_token pisp'}, 1, 'invalid_token{location="pisp"} 1');
is($v->{'insufficient_scope pisp'}, 2,
   'insufficient_scope{location="pisp"} 2');
is($v->{'allowed aisp'}, 1, 'allowed{location="aisp"} 1');
is($v->{'store_unavailable pisp'}, 0, 'store_unavailable{location="pisp"} 0');
is(scalar(keys %$v), 24, 'eight outcomes for each of none, pisp and aisp');

my $up = query('up{job="oauth2"}');
is($up && $up->[0]{value}[1], 1, 'the target is up');

my $n = query('oauth2_redis_duration_seconds_count');
cmp_ok($n && $n->[0]{value}[1], '>=', 2,
       'the Redis histogram has the lookups');

my $c = query('oauth2_cache_lookups_total{result="hit"}');
is($c && $c->[0]{value}[1], 4, 'cache hits: the later requests of a token');

# every alert of the example runs on these series

my @rules;
for (1 .. 50) {
    my $groups = decode_json($http->get("$api/api/v1/rules")->{content});
    @rules = map { @{ $_->{rules} } } @{ $groups->{data}{groups} };
    last if @rules && !grep { $_->{health} eq 'unknown' } @rules;
    sleep 0.2;
}
is(scalar(@rules), 4, 'the four example alerts are loaded');
is(join(' ', map { $_->{health} } @rules), 'ok ok ok ok',
   'each evaluates without error')
    or diag explain [map { [$_->{name}, $_->{lastError}] } @rules];

stop_all();

done_testing();
