# TLS to Redis (oauth2_redis_ssl*, rediss://): a real redis-server with
# its tls-port (Debian's is built with TLS), test certificates made with
# openssl (t/lib/OAuth2Redis.pm).  With and without client certificates;
# a wrong CA, an expired certificate and a wrong name are a 503 and an
# error line naming the server and the reason, never a fallback to
# plaintext.
#
# Plain Test::More: its own Redis servers and nginx instances.

use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(sleep);
use IO::Socket::INET;
use OAuth2Redis;
use OAuth2Nginx;

$ENV{TEST_NGINX_LOAD_MODULES}
    or plan skip_all => 'run by util/run-tests.sh';
eval { require IO::Socket::SSL; 1 }
    or plan skip_all => 'IO::Socket::SSL (libio-socket-ssl-perl) is needed';

my $pki = OAuth2Redis::pki();

my $Unavailable = '{"httpCode":"503","httpMessage":"Service Unavailable",'
    . '"moreInformation":"The service is temporarily unavailable, please '
    . 'retry later"}';

sub seed {
    my ($r, $token, %f) = @_;
    my $key = 'oauth2:token:' . sha256_hex($token);
    $r->command('HSET', $key, client_id => 'tpp-tls', scope => 'accounts',
                %f);
    $r->command('EXPIRE', $key, 3600);
}

sub gateway {
    my ($redis_conf) = @_;
    $redis_conf .= "    oauth2_redis_timeout 1s;\n"
        unless $redis_conf =~ /oauth2_redis_timeout/;
    return OAuth2Nginx->gateway($redis_conf);
}

# the status after the workers had time to connect
sub get {
    my ($n, $token) = @_;
    my ($status, $h, $body);
    for (1 .. 20) {
        ($status, $h, $body) = $n->request('/api',
                                           "Authorization: Bearer $token");
        last if $status == 200;
        sleep 0.1;
    }
    return ($status, $h, $body);
}

sub log_has {
    my ($n, $re) = @_;
    return scalar grep { /$re/ } $n->error_log;
}

# 1. TLS, the server verified against the test CA, no client certificate

{
    my $r = OAuth2Redis->start(tls => 1, tls_auth_clients => 'no');
    seed($r, 'tok-tls-1');
    my $n = gateway(<<"_EOC_");
    oauth2_redis rediss://localhost:@{[$r->port]};
    oauth2_redis_ssl_trusted_certificate $pki->{ca};
_EOC_
    my ($s, undef, $body) = get($n, 'tok-tls-1');
    is($s, 200, 'rediss:// with the CA: 200');
    is($body, "client=tpp-tls\n", 'rediss://: the record was read over TLS');
    my ($s2) = $n->request('/api', 'Authorization: Bearer tok-unknown');
    is($s2, 401, 'rediss://: an unknown token is a 401');
    is(log_has($n, qr/\[(alert|crit|emerg)\]/), 0, 'no alert, crit, emerg');
    like(join('', $r->cli('CLIENT', 'LIST')), qr/cmd=/,
         'Redis saw the gateway connect');
    $n->stop;
    $r->stop;
}

# 2. oauth2_redis_ssl on with an address, client certificate required

{
    my $r = OAuth2Redis->start(tls => 1, tls_auth_clients => 'yes');
    seed($r, 'tok-tls-2');

    my $n = gateway(<<"_EOC_");
    oauth2_redis 127.0.0.1:@{[$r->port]};
    oauth2_redis_ssl on;
    oauth2_redis_ssl_trusted_certificate $pki->{ca};
    oauth2_redis_ssl_certificate $pki->{client_cert};
    oauth2_redis_ssl_certificate_key $pki->{client_key};
_EOC_
    my ($s) = get($n, 'tok-tls-2');
    is($s, 200, 'client certificate, tls-auth-clients yes: 200');
    $n->stop;

    # the same Redis without a client certificate: refused by Redis, 503
    $n = gateway(<<"_EOC_");
    oauth2_redis 127.0.0.1:@{[$r->port]};
    oauth2_redis_ssl on;
    oauth2_redis_ssl_trusted_certificate $pki->{ca};
_EOC_
    sleep 0.5;
    my ($s2, $h2, $b2) = $n->request('/api', 'Authorization: Bearer tok-tls-2');
    is($s2, 503, 'no client certificate where Redis requires one: 503');
    is($b2, $Unavailable, '... with the JSON body');
    ok(log_has($n, qr/\[error\] .*oauth2: connection to redis 127\.0\.0\.1:\d+ (failed|lost)/),
       '... and an error line naming the server');
    $n->stop;
    $r->stop;
}

# 3. a wrong CA: the certificate does not verify, 503, never plaintext

{
    my $r = OAuth2Redis->start(tls => 1, tls_auth_clients => 'no');
    seed($r, 'tok-tls-3');
    my $n = gateway(<<"_EOC_");
    oauth2_redis rediss://localhost:@{[$r->port]};
    oauth2_redis_ssl_trusted_certificate $pki->{wrong_ca};
_EOC_
    sleep 0.5;
    my ($s, $h, $b) = $n->request('/api', 'Authorization: Bearer tok-tls-3');
    is($s, 503, 'wrong CA: 503');
    is($b, $Unavailable, 'wrong CA: the JSON body');
    is($h->{'retry-after'}, '1', 'wrong CA: Retry-After: 1');
    ok(log_has($n, qr/\[error\] .*oauth2: the TLS certificate of redis 127\.0\.0\.1:\d+ does not verify: \(\d+:[^)]+\)/),
       'wrong CA: an error line naming the server and the reason')
        or diag(grep { /oauth2/ } $n->error_log);
    $n->stop;
    $r->stop;
}

# 4. an expired certificate: 503 and the reason

{
    my $r = OAuth2Redis->start(tls => 1, tls_auth_clients => 'no',
                               expired => 1);
    seed($r, 'tok-tls-4');
    my $n = gateway(<<"_EOC_");
    oauth2_redis rediss://localhost:@{[$r->port]};
    oauth2_redis_ssl_trusted_certificate $pki->{ca};
_EOC_
    sleep 0.5;
    my ($s) = $n->request('/api', 'Authorization: Bearer tok-tls-4');
    is($s, 503, 'expired certificate: 503');
    ok(log_has($n, qr/does not verify: \(10:certificate has expired\)/),
       'expired certificate: "certificate has expired" in the error line')
        or diag(grep { /oauth2/ } $n->error_log);
    $n->stop;
    $r->stop;
}

# 5. a name the certificate does not carry: 503; oauth2_redis_ssl_name fixes it

{
    my $r = OAuth2Redis->start(tls => 1, tls_auth_clients => 'no');
    seed($r, 'tok-tls-5');
    my $n = gateway(<<"_EOC_");
    oauth2_redis rediss://127.0.0.1:@{[$r->port]};
    oauth2_redis_ssl_trusted_certificate $pki->{ca};
    oauth2_redis_ssl_name redis.other.example;
_EOC_
    sleep 0.5;
    my ($s) = $n->request('/api', 'Authorization: Bearer tok-tls-5');
    is($s, 503, 'a name the certificate does not carry: 503');
    ok(log_has($n, qr/the TLS certificate of redis 127\.0\.0\.1:\d+ does not match "redis\.other\.example"/),
       'the name mismatch is in the error line');
    $n->stop;

    $n = gateway(<<"_EOC_");
    oauth2_redis rediss://127.0.0.1:@{[$r->port]};
    oauth2_redis_ssl_trusted_certificate $pki->{ca};
    oauth2_redis_ssl_name localhost;
    oauth2_redis_ssl_server_name on;
_EOC_
    my ($s2) = get($n, 'tok-tls-5');
    is($s2, 200, 'oauth2_redis_ssl_name localhost, with SNI: 200');
    $n->stop;

    # an address checked against the certificate's IP names
    $n = gateway(<<"_EOC_");
    oauth2_redis rediss://127.0.0.1:@{[$r->port]};
    oauth2_redis_ssl_trusted_certificate $pki->{ca};
_EOC_
    my ($s3) = get($n, 'tok-tls-5');
    is($s3, 200, 'rediss://127.0.0.1: the certificate\'s IP name matches');
    $n->stop;
    $r->stop;
}

# 6. TLS on, Redis speaks plaintext: no fallback, 503

{
    my $r = OAuth2Redis->start();
    seed($r, 'tok-tls-6');
    my $n = gateway(<<"_EOC_");
    oauth2_redis rediss://localhost:@{[$r->port]};
    oauth2_redis_ssl_trusted_certificate $pki->{ca};
    oauth2_redis_timeout 300ms;
_EOC_
    sleep 0.8;
    my ($s) = $n->request('/api', 'Authorization: Bearer tok-tls-6');
    is($s, 503, 'TLS to a plaintext Redis: 503, no fallback to plaintext');
    $n->stop;
    $r->stop;
}

# 7. a password and a database in the URL, over TLS

{
    my $r = OAuth2Redis->start(tls => 1, tls_auth_clients => 'no',
                               password => 'p@ss/word');
    $r->command('SELECT', 3);
    my $key = 'oauth2:token:' . sha256_hex('tok-tls-7');
    $r->cli('-n', 3, 'HSET', $key, 'client_id', 'tpp-db3', 'scope', 'x');
    $r->cli('-n', 3, 'EXPIRE', $key, 3600);
    my $n = gateway(<<"_EOC_");
    oauth2_redis rediss://:p%40ss%2Fword\@localhost:@{[$r->port]}/3;
    oauth2_redis_ssl_trusted_certificate $pki->{ca};
_EOC_
    my ($s, undef, $body) = get($n, 'tok-tls-7');
    is($s, 200, 'rediss://:password@host:port/3: 200');
    is($body, "client=tpp-db3\n", '... the record of database 3');
    $n->stop;
    $r->stop;
}

# 8. nginx -t: a key without a certificate, rediss:// with ssl off

{
    my $n = OAuth2Nginx->start(may_fail => 1, http => <<"_EOC_");
    oauth2_redis 127.0.0.1:6379;
    oauth2_redis_ssl on;
    oauth2_redis_ssl_certificate_key $pki->{client_key};
    server { listen 127.0.0.1:\$PORT; location / { oauth2 on; } }
_EOC_
    ok(!defined $n, 'a certificate key without a certificate fails');
    $n = OAuth2Nginx->start(may_fail => 1, http => <<"_EOC_");
    oauth2_redis_ssl off;
    oauth2_redis rediss://127.0.0.1:6379;
    server { listen 127.0.0.1:\$PORT; location / { oauth2 on; } }
_EOC_
    ok(!defined $n, 'rediss:// with oauth2_redis_ssl off fails');
}

# 9. calls keep coming while a write to Redis waits: OpenSSL must accept
# the retry from a buffer that has grown (and moved) meanwhile.  Redis
# sleeps, so it reads nothing; three hundred requests, each call about
# 80 KB (a long oauth2_scope_any), fill the socket; when Redis wakes up
# every request gets its 200, and nothing is logged at [crit] (nginx's
# "SSL_write() failed (... bad write retry)" closed the connection and
# gave every waiting request a 503).

{
    my $r = OAuth2Redis->start(tls => 1, tls_auth_clients => 'no',
                               config => ['enable-debug-command local']);
    seed($r, 'tok-tls-9');
    my $any = join ' ', (map { sprintf 'scope-of-some-length-%05d', $_ }
                         1 .. 3000), 'accounts';
    my $n = OAuth2Nginx->start(http => <<"_EOC_");
    oauth2_redis rediss://localhost:@{[$r->port]};
    oauth2_redis_ssl_trusted_certificate $pki->{ca};
    oauth2_redis_timeout 30s;
    oauth2_consent off;
    oauth2_plan p 1000000r/s;          # the scopes go with the call when
    oauth2_default_plan p;             # it may count the request
    server {
        listen 127.0.0.1:\$PORT;
        location /api {
            oauth2 on;
            oauth2_scope_any $any;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /backend { return 200 "ok\\n"; }
    }
_EOC_
    my ($s) = get($n, 'tok-tls-9');
    is($s, 200, 'a call of about 80 KB over TLS: 200');

    # Redis reads nothing for 3 s from the moment it reads this
    my $sleeper = $r->connect(timeout => 10);
    $sleeper->send('DEBUG', 'SLEEP', '3');
    sleep 0.2;
    my $t0 = Time::HiRes::time();
    my @c;
    for (1 .. 300) {
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                         PeerPort => $n->port,
                                         Proto => 'tcp', Timeout => 5)
            or last;
        print $sock "GET /api HTTP/1.0\r\nHost: localhost\r\n"
                    . "Authorization: Bearer tok-tls-9\r\n\r\n";
        push @c, $sock;
    }
    my %status;
    my $deadline = time + 40;
    for my $sock (@c) {
        local $/;
        my $res = eval {
            local $SIG{ALRM} = sub { die "timeout\n" };
            alarm(($deadline - time) > 1 ? $deadline - time : 1);
            my $x = <$sock>;
            alarm 0;
            $x;
        } // '';
        alarm 0;
        my ($st) = $res =~ m{^HTTP/1\.\d (\d{3})};
        $status{$st // 'none'}++;
        close $sock;
    }
    my $took = Time::HiRes::time() - $t0;
    is($sleeper->read_reply(10), 'OK', 'DEBUG SLEEP 3: OK');
    $sleeper->close;
    cmp_ok($took, '>', 2, "... the requests waited for Redis ($took s)");
    is(scalar(@c), 300, '300 requests sent while Redis sleeps');
    is_deeply(\%status, { 200 => 300 }, '... every one answered 200')
        or diag explain \%status;
    is(log_has($n, qr/\[(crit|alert|emerg)\]|bad write retry/), 0,
       '... nothing at [crit], no "bad write retry"')
        or diag join '', grep { /\[(crit|alert|error)\]/ } $n->error_log;
    $n->stop;
    $r->stop;
}

done_testing();
