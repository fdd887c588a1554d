# oauth2_cache: validated tokens kept in shared memory for at most ttl, and
# never past their expiry; a cached token costs no Redis round trip.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;

my $default_http_config = <<'_EOC_';
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_cache zone=oauth2_tokens:1m ttl=2s;
_EOC_

my $default_config = <<'_EOC_';
    location /accounts {
        oauth2 on;
        oauth2_scope accounts;
        proxy_set_header X-Who "$oauth2_client_id|$oauth2_scope|$oauth2_consent_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /payments {
        oauth2 on;
        oauth2_scope paymentRequest;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "who=$http_x_who\n"; }
_EOC_

OAuth2Blocks::defaults(
    http_config => $default_http_config,
    config => $default_config,
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a cached token costs no Redis command, and keeps its record
--- init
OAuth2Test::seed_consent('cons-k1', 'valid');
OAuth2Test::seed_token('tok-k1', client_id => 'tpp-k1', scope => 'accounts',
                       consent_id => 'cons-k1');
OAuth2Test::monitor_start();
my @s = map { (OAuth2Test::http_get('/accounts',
                                    'Authorization: Bearer tok-k1'))[0] }
        1 .. 3;
my @cmds = OAuth2Test::monitor_commands();
Test::More::is("@s", "200 200 200", 'three requests let through');
Test::More::is(scalar(grep { /^EVALSHA/ } @cmds), 1,
               'one lookup in Redis for three requests')
    or Test::More::diag(join "\n", @cmds);
--- more_headers
Authorization: Bearer tok-k1
--- request
GET /accounts
--- error_code: 200
--- response_body
who=tpp-k1|accounts|cons-k1



=== TEST 2: scopes are checked per location on a cached record
--- init
OAuth2Test::seed_consent('cons-k2', 'valid');
OAuth2Test::seed_token('tok-k2', client_id => 'tpp-k2', scope => 'accounts',
                       consent_id => 'cons-k2');
OAuth2Test::http_get('/accounts', 'Authorization: Bearer tok-k2');
--- more_headers
Authorization: Bearer tok-k2
--- request
GET /payments
--- error_code: 403
--- response_headers
WWW-Authenticate: Bearer realm="api", error="insufficient_scope", scope="paymentRequest"



=== TEST 3: a deleted token is served from the cache for at most ttl
--- init
OAuth2Test::seed_consent('cons-k3', 'valid');
OAuth2Test::seed_token('tok-k3', client_id => 'tpp-k3', scope => 'accounts',
                       consent_id => 'cons-k3');
my ($s1) = OAuth2Test::http_get('/accounts', 'Authorization: Bearer tok-k3');
OAuth2Test::redis('DEL', OAuth2Test::token_key('tok-k3'));
my ($s2) = OAuth2Test::http_get('/accounts', 'Authorization: Bearer tok-k3');
Test::More::is("$s1 $s2", "200 200", 'cached within ttl');
select(undef, undef, undef, 2.1);
--- more_headers
Authorization: Bearer tok-k3
--- request
GET /accounts
--- error_code: 401



=== TEST 4: never past the token's expiry, whatever the ttl
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_cache zone=oauth2_tokens:1m ttl=1h;
--- init
OAuth2Test::seed_consent('cons-k4', 'valid');
OAuth2Test::seed_token('tok-k4', client_id => 'tpp-k4', scope => 'accounts',
                       consent_id => 'cons-k4', exp => time() + 2);
my ($s1) = OAuth2Test::http_get('/accounts', 'Authorization: Bearer tok-k4');
OAuth2Test::redis('DEL', OAuth2Test::token_key('tok-k4'));
my ($s2) = OAuth2Test::http_get('/accounts', 'Authorization: Bearer tok-k4');
Test::More::is("$s1 $s2", "200 200", 'valid before exp, from the cache');
select(undef, undef, undef, 2.1);
--- more_headers
Authorization: Bearer tok-k4
--- request
GET /accounts
--- error_code: 401



=== TEST 5: unknown tokens are not cached
--- init
OAuth2Test::redis('DEL', OAuth2Test::token_key('tok-k5'));
my ($s1) = OAuth2Test::http_get('/accounts', 'Authorization: Bearer tok-k5');
Test::More::is($s1, 401, 'unknown first');
OAuth2Test::seed_consent('cons-k5', 'valid');
OAuth2Test::seed_token('tok-k5', client_id => 'tpp-k5', scope => 'accounts',
                       consent_id => 'cons-k5');
--- more_headers
Authorization: Bearer tok-k5
--- request
GET /accounts
--- error_code: 200



=== TEST 6: a full zone makes room (LRU): the oldest entries go, the newest stay, no request fails
--- http_config
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_cache zone=oauth2_small:32k ttl=1h;
--- init
OAuth2Test::seed_consent('cons-k6', 'valid');
my $ok = 0;
for my $i (1 .. 300) {
    OAuth2Test::seed_token("tok-k6-$i", client_id => 'tpp-k6',
                           scope => 'accounts ' . ('x' x 200),
                           consent_id => 'cons-k6');
    my ($s) = OAuth2Test::http_get('/accounts',
                                   "Authorization: Bearer tok-k6-$i");
    $ok++ if $s == 200;
}
Test::More::is($ok, 300, 'every request let through while the zone fills');
# Redis forgets them all: what is still served comes from the cache
OAuth2Test::redis('DEL', OAuth2Test::token_key("tok-k6-$_")) for 1 .. 300;
my ($cached, $gap) = (0, 0);
for (my $i = 300; $i >= 1; $i--) {
    my ($s) = OAuth2Test::http_get('/accounts',
                                   "Authorization: Bearer tok-k6-$i");
    if ($s == 200) { $cached++; $gap++ if $cached != 301 - $i; }
}
Test::More::cmp_ok($cached, '>', 10, "the zone holds entries ($cached)");
Test::More::cmp_ok($cached, '<', 300, "the zone did not hold all 300: "
                   . "the oldest were evicted");
Test::More::is($gap, 0, 'the entries kept are the most recently used');
--- more_headers
Authorization: Bearer tok-k6-1
--- request
GET /accounts
--- error_code: 401
--- no_error_log
no room
[alert]
[crit]
[emerg]
