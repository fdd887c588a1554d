# Clients that go away while their request waits on Redis: nginx ends the
# request at once (499), the module's pool cleanup cancels its Redis call,
# and the reply that comes later finds no request.  Without the cancel,
# the late reply would run a freed request (a crash, or an invalid read
# under make test-valgrind, which runs this file).

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;
use Time::HiRes qw(sleep);

# $n clients send a protected request and close their connection after
# $after seconds, while Redis sleeps
sub clients_leave {
    my ($n, $token, $after) = @_;
    OAuth2Test::clients_leave($n, "GET /api HTTP/1.1\r\nHost: localhost\r\n"
                                  . "Authorization: Bearer $token\r\n\r\n",
                              $after);
}

my $default_http_config = <<'_EOC_';
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_redis_timeout 5s;
    oauth2_plan p 1000r/s;
    oauth2_default_plan p;
_EOC_

my $default_config = <<'_EOC_';
    location /api {
        oauth2 on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend { return 200 "in\n"; }
_EOC_

OAuth2Blocks::defaults(
    http_config => $default_http_config,
    config => $default_config,
    no_error_log => "[alert]\n[crit]\n[emerg]\nexited on signal\n",
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: one client leaves while Redis sleeps; the next request is served
--- init
OAuth2Test::seed_valid('tok-gone1', client_id => 'tpp-gone1');
my $sleeper = OAuth2Test::sleep_redis(1);
main::clients_leave(1, 'tok-gone1', 0.3);
waitpid($sleeper, 0);
Time::HiRes::sleep(0.2);
--- request
GET /api
--- more_headers
Authorization: Bearer tok-gone1
--- error_code: 200
--- response_body
in
--- error_log
client prematurely closed connection



=== TEST 2: forty clients leave at once while Redis sleeps; the worker lives on
--- init
OAuth2Test::seed_valid('tok-gone2', client_id => 'tpp-gone2');
my $sleeper = OAuth2Test::sleep_redis(1);
main::clients_leave(40, 'tok-gone2', 0.3);
waitpid($sleeper, 0);
Time::HiRes::sleep(0.2);
--- request eval
["GET /api", "GET /api", "GET /api"]
--- more_headers
Authorization: Bearer tok-gone2
--- error_code eval
[200, 200, 200]
--- response_body eval
["in\n", "in\n", "in\n"]



=== TEST 3: clients that leave before Redis is asked and after it answered
--- init
OAuth2Test::seed_valid('tok-gone3', client_id => 'tpp-gone3');
main::clients_leave(20, 'tok-gone3', 0);
main::clients_leave(20, 'tok-gone3', 0.05);
--- request
GET /api
--- more_headers
Authorization: Bearer tok-gone3
--- error_code: 200
--- response_body
in
