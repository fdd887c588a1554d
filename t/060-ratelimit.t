# Per-plan rate limits: GCRA in Redis, 429, RateLimit headers, plans,
# fallback while Redis cannot be reached.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;

our $TooMany = '{"httpCode":"429","httpMessage":"Too Many Requests",'
    . '"moreInformation":"Rate Limit exceeded"}';

# Private Redis servers for the fallback tests, which stop them mid-test;
# started here, before any nginx, so that their ports are in the config.
our %Private;
for my $name (qw(LOCAL ALLOW DENY)) {
    my $port = OAuth2Test::start_private_redis();
    $Private{$name} = $port;
    $ENV{"TEST_NGINX_REDIS_${name}_PORT"} = $port;
}
END { OAuth2Test::stop_private_redis($_) for values %Private }

my $default_http_config = <<'_EOC_';
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_consent off;
    oauth2_plan bronze 3r/m;
    oauth2_plan gold 100r/m 2r/s;
    oauth2_default_plan bronze;
_EOC_

my $default_config = <<'_EOC_';
    location /api {
        oauth2 on;
        add_header X-OAuth2-Status $oauth2_status always;
        add_header X-Remaining $oauth2_ratelimit_remaining always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /payments {
        oauth2 on;
        oauth2_scope paymentRequest;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /unlimited {
        oauth2 on;
        oauth2_rate_limit off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /quiet {
        oauth2 on;
        oauth2_rate_limit_headers off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /redirected {
        oauth2 on;
        try_files /nonexistent @named;
    }
    location @named {
        oauth2 on;
        rewrite ^ /backend break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
    location /backend {
        return 200 "ok\n";
    }
_EOC_

OAuth2Blocks::defaults(
    http_config => $default_http_config,
    config => $default_config,
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the default plan, 3r/m: three requests, then 429
--- init
OAuth2Test::seed_token('tok-rl1', client_id => 'rl-client-1');
--- request eval
["GET /api", "GET /api", "GET /api", "GET /api"]
--- more_headers eval
[("Authorization: Bearer tok-rl1") x 4]
--- error_code eval
[200, 200, 200, 429]
--- response_body eval
["ok\n", "ok\n", "ok\n", $::TooMany]



=== TEST 2: the RateLimit headers on a 200
--- init
OAuth2Test::seed_token('tok-rl2', client_id => 'rl-client-2');
--- more_headers
Authorization: Bearer tok-rl2
--- request
GET /api
--- error_code: 200
--- response_headers
RateLimit-Policy: "bronze";q=3;w=60
RateLimit: "bronze";r=2;t=20
X-RateLimit-Limit: 3
X-RateLimit-Remaining: 2
X-RateLimit-Reset: 20
X-Remaining: 2
X-OAuth2-Status: ok



=== TEST 3: the 429: body, Retry-After, headers, $oauth2_status
--- init
OAuth2Test::seed_token('tok-rl3', client_id => 'rl-client-3');
OAuth2Test::http_get('/api', 'Authorization: Bearer tok-rl3') for 1 .. 3;
--- more_headers
Authorization: Bearer tok-rl3
--- request
GET /api
--- error_code: 429
--- response_headers
Content-Type: application/json
Retry-After: 20
RateLimit-Policy: "bronze";q=3;w=60
RateLimit: "bronze";r=0;t=60
X-RateLimit-Remaining: 0
X-OAuth2-Status: rate_limited
!WWW-Authenticate
--- response_body eval
$::TooMany
--- error_log
oauth2: client "rl-client-3" is over plan "bronze", retry in 20s



=== TEST 4: the record's plan; the tightest limit of two (2r/s) decides
--- init
OAuth2Test::seed_token('tok-rl4', client_id => 'rl-client-4', plan => 'gold');
--- request eval
["GET /api", "GET /api", "GET /api"]
--- more_headers eval
[("Authorization: Bearer tok-rl4") x 3]
--- error_code eval
[200, 200, 429]
--- response_headers eval
['RateLimit-Policy: "gold";q=2;w=1', 'RateLimit: "gold";r=0;t=1', "Retry-After: 1\nRateLimit-Policy: \"gold\";q=2;w=1"]



=== TEST 5: a plan that is not configured: the default plan, warned once
--- init
OAuth2Test::seed_token('tok-rl5', client_id => 'rl-client-5',
                       plan => 'platinum');
OAuth2Test::http_get('/api', 'Authorization: Bearer tok-rl5') for 1 .. 2;
--- more_headers
Authorization: Bearer tok-rl5
--- request
GET /api
--- error_code: 200
--- response_headers
RateLimit-Policy: "bronze";q=3;w=60
X-RateLimit-Remaining: 0
--- grep_error_log eval
qr/plan "platinum" is not configured, the default plan "bronze" applies/
--- grep_error_log_out
plan "platinum" is not configured, the default plan "bronze" applies



=== TEST 6: rejected requests consume nothing
Five 403s (no paymentRequest scope) and a 401 leave the quota whole.
--- init
OAuth2Test::seed_token('tok-rl6', client_id => 'rl-client-6', scope => 'accounts');
my @s = map { (OAuth2Test::http_get('/payments', 'Authorization: Bearer tok-rl6'))[0] } 1 .. 5;
Test::More::is("@s", "403 403 403 403 403", 'five 403s');
--- request eval
["GET /api", "GET /api", "GET /api", "GET /api"]
--- more_headers eval
[("Authorization: Bearer tok-rl6") x 4]
--- error_code eval
[200, 200, 200, 429]



=== TEST 7: oauth2_rate_limit off
--- init
OAuth2Test::seed_token('tok-rl7', client_id => 'rl-client-7');
--- request eval
["GET /unlimited", "GET /unlimited", "GET /unlimited", "GET /unlimited"]
--- more_headers eval
[("Authorization: Bearer tok-rl7") x 4]
--- error_code eval
[200, 200, 200, 200]
--- response_headers eval
[("!RateLimit-Policy\n!X-RateLimit-Limit") x 4]



=== TEST 8: oauth2_rate_limit_headers off: limited, without headers
--- init
OAuth2Test::seed_token('tok-rl8', client_id => 'rl-client-8');
--- request eval
["GET /quiet", "GET /quiet", "GET /quiet", "GET /quiet"]
--- more_headers eval
[("Authorization: Bearer tok-rl8") x 4]
--- error_code eval
[200, 200, 200, 429]
--- response_headers eval
[("!RateLimit-Policy\n!RateLimit\n!X-RateLimit-Remaining") x 3, "Retry-After: 20\n!RateLimit"]



=== TEST 9: the counter key keeps a client in one hash slot
--- init
OAuth2Test::seed_token('tok-rl9', client_id => 'rl-client-9', plan => 'gold');
OAuth2Test::http_get('/api', 'Authorization: Bearer tok-rl9');
my $keys = OAuth2Test::redis('KEYS', 'oauth2:rl:{rl-client-9}:*');
Test::More::is(join(' ', sort @$keys),
               'oauth2:rl:{rl-client-9}:gold:100:60000000 oauth2:rl:{rl-client-9}:gold:2:1000000',
               'one key per limit, {client_id} hash tag');
my $ttl = OAuth2Test::redis('PTTL', 'oauth2:rl:{rl-client-9}:gold:2:1000000');
Test::More::cmp_ok($ttl, '<=', 1500, 'keys expire once the bucket is full again');
--- more_headers
Authorization: Bearer tok-rl9
--- request
GET /api
--- error_code: 200



=== TEST 10: without a default plan, a token without plan is not limited
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_consent off;
    oauth2_plan bronze 1r/m;
--- init
OAuth2Test::seed_token('tok-rl10', client_id => 'rl-client-10');
--- request eval
["GET /api", "GET /api"]
--- more_headers eval
[("Authorization: Bearer tok-rl10") x 2]
--- error_code eval
[200, 200]



=== TEST 11: fallback local (the default): Redis stopped, this node counts
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_LOCAL_PORT;
    oauth2_redis_timeout 3s;
    oauth2_consent off;
    oauth2_cache zone=oauth2_tokens:1m ttl=1m;
    oauth2_plan bronze 3r/m;
    oauth2_default_plan bronze;
--- init
OAuth2Test::seed_token_on($::Private{LOCAL}, 'tok-fb1', client_id => 'fb-1');
my ($s1) = OAuth2Test::http_get('/api', 'Authorization: Bearer tok-fb1');
OAuth2Test::stop_private_redis($::Private{LOCAL});
my @s = map { (OAuth2Test::http_get('/api', 'Authorization: Bearer tok-fb1'))[0] } 1 .. 3;
Test::More::is("$s1 @s", "200 200 200 200", 'counted in Redis, then locally');
--- more_headers
Authorization: Bearer tok-fb1
--- request
GET /api
--- error_code: 429
--- response_body eval
$::TooMany
--- error_log
oauth2_rate_limit_fallback local: this node counts alone



=== TEST 12: fallback allow: Redis stopped, requests go through
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_ALLOW_PORT;
    oauth2_redis_timeout 3s;
    oauth2_consent off;
    oauth2_cache zone=oauth2_tokens:1m ttl=1m;
    oauth2_plan bronze 1r/m;
    oauth2_default_plan bronze;
    oauth2_rate_limit_fallback allow;
--- init
OAuth2Test::seed_token_on($::Private{ALLOW}, 'tok-fb2', client_id => 'fb-2');
my ($s1) = OAuth2Test::http_get('/api', 'Authorization: Bearer tok-fb2');
OAuth2Test::stop_private_redis($::Private{ALLOW});
my @s = map { (OAuth2Test::http_get('/api', 'Authorization: Bearer tok-fb2'))[0] } 1 .. 3;
Test::More::is("$s1 @s", "200 200 200 200", 'not limited while Redis is away');
--- more_headers
Authorization: Bearer tok-fb2
--- request
GET /api
--- error_code: 200
--- response_headers
!RateLimit
--- error_log
oauth2_rate_limit_fallback allow: not limited



=== TEST 13: fallback deny: Redis stopped, 503
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_DENY_PORT;
    oauth2_redis_timeout 3s;
    oauth2_consent off;
    oauth2_cache zone=oauth2_tokens:1m ttl=1m;
    oauth2_plan bronze 10r/m;
    oauth2_default_plan bronze;
    oauth2_rate_limit_fallback deny;
--- init
OAuth2Test::seed_token_on($::Private{DENY}, 'tok-fb3', client_id => 'fb-3');
my ($s1) = OAuth2Test::http_get('/api', 'Authorization: Bearer tok-fb3');
Test::More::is($s1, 200, 'counted in Redis');
OAuth2Test::stop_private_redis($::Private{DENY});
--- more_headers
Authorization: Bearer tok-fb3
--- request
GET /api
--- error_code: 503
--- response_headers
Retry-After: 1
--- error_log
oauth2_rate_limit_fallback deny: 503



=== TEST 14: an internal redirect does not count the request twice
--- init
OAuth2Test::seed_token('tok-rl14', client_id => 'rl-client-14');
--- request eval
["GET /redirected", "GET /redirected", "GET /redirected", "GET /redirected"]
--- more_headers eval
[("Authorization: Bearer tok-rl14") x 4]
--- error_code eval
[200, 200, 200, 429]
--- raw_response_headers_like eval
[qr/RateLimit: "bronze";r=2;t=20\r\n(?!.*RateLimit: )/s, qr/RateLimit: "bronze";r=1;t=40\r\n(?!.*RateLimit: )/s, qr/RateLimit: "bronze";r=0;t=60\r\n(?!.*RateLimit: )/s, qr/Retry-After: 20/]



=== TEST 15: a record with an empty exp is counted like one without
--- init
OAuth2Test::seed_token('tok-rl15', client_id => 'rl-client-15', exp => '');
--- request eval
["GET /api", "GET /api", "GET /api", "GET /api"]
--- more_headers eval
[("Authorization: Bearer tok-rl15") x 4]
--- error_code eval
[200, 200, 200, 429]



=== TEST 16: fast limits whose interval is not a whole microsecond
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_consent off;
    oauth2_plan odd 9r/s 11r/s 7r/m;
    oauth2_default_plan odd;
--- init
OAuth2Test::seed_token('tok-rl16', client_id => 'rl-client-16');
my %n;
$n{ (OAuth2Test::http_get('/api', 'Authorization: Bearer tok-rl16'))[0] }++
    for 1 .. 300;
Test::More::is($n{200}, 7, '7 of 300 within the 7r/m burst');
Test::More::is($n{429}, 293, 'the others 429, never a 503');
--- more_headers
Authorization: Bearer tok-rl16
--- request
GET /api
--- error_code: 429



=== TEST 17: an unknown plan without a default plan is logged too
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_consent off;
    oauth2_plan bronze 1r/m;
--- init
OAuth2Test::seed_token('tok-rl17', client_id => 'rl-client-17', plan => 'diamond');
--- more_headers
Authorization: Bearer tok-rl17
--- request
GET /api
--- error_code: 200
--- error_log
oauth2: plan "diamond" is not configured and there is no "oauth2_default_plan": not rate limited



=== TEST 18: many plans (every plan's limits go with each lookup): the last one counts
--- http_config eval
"    oauth2_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;
    oauth2_consent off;
" . join('', map { "    oauth2_plan p$_ 1000r/s 1000r/m 1000r/h 1000r/d;\n" } 1 .. 19)
  . "    oauth2_plan last 2r/m 5r/h 9r/d 20r/d;\n"
--- init
OAuth2Test::seed_token('tok-rl18', client_id => 'rl-client-18-' . time,
                       plan => 'last');
--- more_headers
Authorization: Bearer tok-rl18
--- request eval
["GET /api", "GET /api", "GET /api"]
--- error_code eval
[200, 200, 429]
