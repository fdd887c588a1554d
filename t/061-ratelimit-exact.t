# Exactness of the shared rate limit: two nginx instances of two workers
# each, on one Redis, many concurrent clients, one client id.  Plain
# Test::More: it runs its own nginx instances.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Nodes;

$ENV{TEST_NGINX_LOAD_MODULES}
    or plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set';
my $redis  = $ENV{TEST_NGINX_REDIS_PORT}
    or plan skip_all => 'TEST_NGINX_REDIS_PORT is not set';

# two nodes of two workers each
my @nginx = OAuth2Nodes::start(2, <<"_CONF_");
    oauth2_redis 127.0.0.1:$redis;
    oauth2_consent off;
    oauth2_plan burst100 100r/h;
    oauth2_plan rate20 20r/s;
    server {
        listen 127.0.0.1:\$PORT reuseport;
        location /api {
            oauth2 on;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /backend { return 200 "ok\\n"; }
    }
_CONF_
my @nodes = map { $_->port } @nginx;
sleep 0.5;

my $run = "$$-" . int(time);

# 1. a burst: 100 per hour, 8 clients send 480 requests over both nodes
{
    my $token = "tok-exact-burst-$run";
    OAuth2Test::seed_token($token, client_id => "exact-burst-$run",
                           plan => 'burst100');
    my ($ok, $limited, $other) =
        OAuth2Nodes::hammer(\@nodes, $token, 8, time + 30, 60);
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
        OAuth2Nodes::hammer(\@nodes, $token, 8, time + 2, 100000);
    my $span = $last - $first;
    my $expected = 20 + int($span / 0.05);
    is($other, 0, 'rate: every answer is a 200 or a 429');
    cmp_ok(abs($ok - $expected), '<=', 1,
           sprintf('rate: %d accepted over %.3f s, GCRA allows %d (+-1)',
                   $ok, $span, $expected));
    diag(sprintf('rate: %d accepted, %d limited over %.3f s; expected %d',
                 $ok, $limited, $span, $expected));
}

for my $n (@nginx) {
    my @bad = grep { /\[(alert|crit|emerg)\]/ } $n->error_log;
    is(scalar(@bad), 0, 'no alert, crit or emerg in ' . $n->dir)
        or diag @bad;
}

END { $_->stop for @nginx }

done_testing();
