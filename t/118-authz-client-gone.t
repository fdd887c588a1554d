# Clients of the authorization server's endpoints that go away while
# their request waits on Redis: nginx ends the request (499), the pool
# cleanup cancels the Redis call, and the late reply finds no request.
# Without the cancel, the reply would run a freed request (a crash, or an
# invalid read under make test-valgrind).

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;
use OAuth2Authz;
use Time::HiRes qw(sleep);

our $Auth = OAuth2Authz::basic('tpp-g', 's3cret-g');

our $Post = "POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\n"
    . "$Auth\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    . "Content-Length: 29\r\n\r\ngrant_type=client_credentials";

my $default_config = <<'_EOC_';
    location = /oauth2/token {
        oauth2_token;
    }
    location = /oauth2/authorize {
        oauth2_authorize;
        oauth2_authorize_login /login;
    }
    location /consents/ {
        oauth2_consent_api;
    }
_EOC_

OAuth2Blocks::defaults(
    http_config => "oauth2_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;\n"
                   . "oauth2_redis_timeout 5s;\n",
    config => $default_config,
    no_error_log => "[alert]\n[crit]\n[emerg]\nexited on signal\n",
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: token requests whose clients leave while Redis sleeps; the next one is served
--- init
OAuth2Authz::seed_client('tpp-g', 's3cret-g',
                         grant_types => 'client_credentials');
my $sleeper = OAuth2Test::sleep_redis(1);
OAuth2Test::clients_leave(5, $::Post, 0.3);
waitpid($sleeper, 0);
Time::HiRes::sleep(0.2);
--- request
POST /oauth2/token
grant_type=client_credentials
--- more_headers eval
"Content-Type: application/x-www-form-urlencoded\n$::Auth"
--- error_code: 200
--- response_body_like eval
qr/"token_type":"Bearer"/
--- error_log
client prematurely closed connection



=== TEST 2: authorization requests whose clients leave
--- init
OAuth2Authz::seed_client('tpp-g', 's3cret-g');
my $sleeper = OAuth2Test::sleep_redis(1);
OAuth2Test::clients_leave(5, "GET /oauth2/authorize?response_type=code&client_id=tpp-g HTTP/1.1\r\nHost: localhost\r\n\r\n", 0.3);
waitpid($sleeper, 0);
Time::HiRes::sleep(0.2);
--- request
GET /oauth2/authorize?client_id=nobody
--- error_code: 401



=== TEST 3: consent requests whose clients leave
--- init
OAuth2Authz::seed_client('tpp-g', 's3cret-g');
my $sleeper = OAuth2Test::sleep_redis(1);
OAuth2Test::clients_leave(5, "GET /consents/c-1 HTTP/1.1\r\nHost: localhost\r\n$::Auth\r\n\r\n", 0.3);
waitpid($sleeper, 0);
Time::HiRes::sleep(0.2);
--- request
GET /consents/c-none
--- more_headers eval
$::Auth
--- error_code: 404



=== TEST 4: a body that is slow to come, its client gone: nothing left waiting
--- init
OAuth2Authz::seed_client('tpp-g', 's3cret-g',
                         grant_types => 'client_credentials');
(my $half = $::Post) =~ s/grant_type=client_credentials$/grant_type=/;
OAuth2Test::clients_leave(3, $half, 0.2);
--- request
POST /oauth2/token
grant_type=client_credentials
--- more_headers eval
"Content-Type: application/x-www-form-urlencoded\n$::Auth"
--- error_code: 200
