# The Redis harness of the suites (t/lib/OAuth2Redis.pm) on its own, no
# nginx: the test PKI, TLS (client certificates, a wrong CA, an expired
# certificate), unix sockets, IPv6, password and ACL users, replicas, and a
# Sentinel failover on SIGKILL of the primary, with its time.
#
# Plain Test::More.  Runs without util/run-tests.sh too:
#   prove t/005-redis-harness.t

use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use POSIX ();
use OAuth2Redis;

system('sh', '-c', 'command -v redis-server redis-cli openssl >/dev/null') == 0
    or plan skip_all => 'redis-server, redis-cli and openssl are needed';
eval { require IO::Socket::SSL; 1 }
    or plan skip_all => 'IO::Socket::SSL (libio-socket-ssl-perl) is needed';

my $t0 = time;

sub refused {
    my ($port) = @_;
    return !IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 1);
}

# --- the PKI ---------------------------------------------------------------

my $pki = OAuth2Redis::pki();
ok(-s $pki->{$_}, "pki: $_") for qw(ca ca_key server_cert server_key
    client_cert client_key wrong_ca wrong_ca_key wrong_client_cert
    wrong_client_key expired_cert expired_key);
is(OAuth2Redis::pki(), $pki, 'pki: made once per process');

my $text = `openssl x509 -in $pki->{server_cert} -noout -text 2>&1`;
like($text, qr/DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/,
     'server certificate: subjectAltName localhost, 127.0.0.1, ::1');
my $verify = `openssl verify -CAfile $pki->{ca} $pki->{server_cert} $pki->{client_cert} 2>&1`;
is($?, 0, 'server and client certificates verify against the CA')
    or diag $verify;
$verify = `openssl verify -CAfile $pki->{ca} $pki->{expired_cert} 2>&1`;
like($verify, qr/certificate has expired/, 'the expired certificate: expired');
$verify = `openssl verify -CAfile $pki->{wrong_ca} $pki->{server_cert} 2>&1`;
isnt($?, 0, 'the server certificate does not verify against the wrong CA');

# --- plain, unix socket, restart ---------------------------------------------

{
    my $r = OAuth2Redis->start(unix => 1);
    is($r->cli('PING'), 'PONG', 'plain: PING through redis-cli');
    is($r->command('PING'), 'PONG', 'plain: PING through the Perl client');
    ok(-S $r->socket, 'unix: the socket exists');
    is($r->cli_as({ socket => $r->socket }, 'PING'), 'PONG',
       'unix: redis-cli -s answers');
    is($r->connect(socket => $r->socket)->command('PING'), 'PONG',
       'unix: the Perl client answers');

    my $port = $r->port;
    my $pid = $r->pid;
    $r->kill;
    ok(!kill(0, $pid), 'kill: the process is gone');
    ok(refused($port), 'kill: the port is closed');
    $r->restart;
    is($r->port, $port, 'restart: the same port');
    is($r->cli('PING'), 'PONG', 'restart: answers');
    $r->stop;
    ok(refused($port), 'stop: the port is closed');
}

# --- persistence ---------------------------------------------------------------

{
    my $dir = OAuth2Redis::tmpdir() . '/save';
    mkdir $dir;
    my $r = OAuth2Redis->start(save => $dir);
    $r->command('SET', 'kept', 'yes');
    $r->stop;
    ok(-s "$dir/dump.rdb", 'save: a stop (SIGTERM) writes dump.rdb');
    $r->restart;
    is($r->command('GET', 'kept'), 'yes', 'save: loaded at start');
    $r->command('SET', 'lost', 'yes');
    $r->kill;
    $r->restart;
    is($r->command('GET', 'lost'), undef, 'save: a kill writes nothing');
}

# --- password and ACL ----------------------------------------------------------

{
    my $r = OAuth2Redis->start(password => 'sekret');
    is($r->cli('PING'), 'PONG', 'password: cli authenticates');
    like($r->cli_as({ password => undef }, 'PING'), qr/^NOAUTH/,
         'password: NOAUTH without it');
    like($r->cli_as({ password => 'wrong' }, 'PING'), qr/WRONGPASS/,
         'password: WRONGPASS with a wrong one');

    my $u = OAuth2Redis->start(acl_user => [ 'gateway', 'gw-pass' ]);
    is($u->cli('ACL', 'WHOAMI'), 'gateway', 'acl: cli is the ACL user');
    is($u->command('ACL', 'WHOAMI'), 'gateway', 'acl: so is the Perl client');
    like($u->cli_as({ password => undef }, 'PING'), qr/^NOAUTH/,
         'acl: the default user is off');
    like($u->cli_as({ password => 'nope' }, 'PING'), qr/WRONGPASS/,
         'acl: WRONGPASS with a wrong password');
}

# --- TLS ------------------------------------------------------------------------

{
    my $r = OAuth2Redis->start(tls => 1);
    is($r->cli('PING'), 'PONG', 'tls: redis-cli --tls --cacert answers');
    is($r->command('PING'), 'PONG', 'tls: the Perl client answers');
    is($r->cli_as({ cert => undef, key => undef }, 'PING'), 'PONG',
       'tls-auth-clients no: no client certificate needed');
    isnt($r->cli_as({ tls => 0 }, 'PING'), 'PONG',
         'tls: no plain text on the TLS port');

    my $out = $r->cli_as({ cacert => $pki->{wrong_ca} }, 'PING');
    like($out, qr/certificate verify failed/,
         'wrong CA: redis-cli fails verification');
    isnt($r->cli_status, 0, 'wrong CA: redis-cli exits non-zero');
    eval { $r->connect(cacert => $pki->{wrong_ca}) };
    like($@, qr/certificate verify failed/, 'wrong CA: so does the Perl client');

    $out = $r->cli_as({ host => 'localhost' }, 'PING');
    is($out, 'PONG', 'tls: the name localhost verifies');
    eval { $r->connect(verify_name => 'redis.example') };
    like($@, qr/hostname verification failed/,
         'tls: another name does not');
}

{
    my $r = OAuth2Redis->start(tls => 1, tls_auth_clients => 'yes');
    is($r->cli('PING'), 'PONG',
       'tls-auth-clients yes: the client certificate is accepted');
    my $out = $r->cli_as({ cert => undef, key => undef }, 'PING');
    isnt($out, 'PONG', 'tls-auth-clients yes: no certificate, no answer')
        or diag $out;
    isnt($r->cli_status, 0, 'tls-auth-clients yes: redis-cli exits non-zero');
    $out = $r->cli_as({ cert => $pki->{wrong_client_cert},
                        key => $pki->{wrong_client_key} }, 'PING');
    isnt($out, 'PONG',
         'tls-auth-clients yes: a certificate of another CA is refused');
    like($r->log, qr/peer did not return a certificate/,
         'tls-auth-clients yes: Redis logs the missing certificate');

    my $o = OAuth2Redis->start(tls => 1, tls_auth_clients => 'optional');
    is($o->cli_as({ cert => undef, key => undef }, 'PING'), 'PONG',
       'tls-auth-clients optional: no certificate is fine');
    is($o->cli('PING'), 'PONG', 'tls-auth-clients optional: so is one');
    isnt($o->cli_as({ cert => $pki->{wrong_client_cert},
                      key => $pki->{wrong_client_key} }, 'PING'), 'PONG',
         'tls-auth-clients optional: one of another CA is refused');
}

{
    my $r = OAuth2Redis->start(tls => 1, expired => 1);
    my $out = $r->cli('PING');
    like($out, qr/certificate verify failed/,
         'expired: redis-cli fails verification');
    eval { $r->connect(insecure => 0) };
    like($@, qr/certificate has expired/,
         'expired: the verification error is "certificate has expired"');
    like($r->log, qr/certificate expired/,
         'expired: Redis logs the alert of the client');
    is($r->cli_as({ insecure => 1 }, 'PING'), 'PONG',
       'expired: it answers without verification');
}

# --- IPv6 ------------------------------------------------------------------------

SKIP: {
    skip 'no IPv6 on loopback', 3 unless OAuth2Redis::have_ipv6();
    my $r = OAuth2Redis->start(ipv6 => 1);
    is($r->cli_as({ host => '::1' }, 'PING'), 'PONG', 'ipv6: ::1 answers');
    is($r->cli('PING'), 'PONG', 'ipv6: so does 127.0.0.1');
    my $t = OAuth2Redis->start(ipv6 => 1, tls => 1);
    is($t->connect(host => '::1')->command('PING'), 'PONG',
       'ipv6: TLS on ::1 verifies (IP:::1 in the certificate)');
}

# --- a replica -------------------------------------------------------------------

{
    my $p = OAuth2Redis->start(password => 'pw');
    my $r = OAuth2Redis->start(password => 'pw', replicaof => $p);
    is($r->info('replication')->{master_link_status}, 'up',
       'replica: the link is up when start returns');
    $p->command('SET', 'replicated', 'yes');
    ok($p->wait_replicated, 'replica: WAIT');
    is($r->cli('GET', 'replicated'), 'yes', 'replica: has the key');
    is($r->role, 'slave', 'replica: role');

    my $tp = OAuth2Redis->start(tls => 1, tls_auth_clients => 'yes');
    my $tr = OAuth2Redis->start(tls => 1, tls_auth_clients => 'yes',
                                replicaof => $tp);
    $tp->command('SET', 'replicated', 'tls');
    $tp->wait_replicated;
    is($tr->command('GET', 'replicated'), 'tls',
       'replica over TLS with client certificates');
}

# --- processes do not outlive a test that dies -----------------------------------

for my $how ('die', 'SIGTERM') {
    my $code = $how eq 'die'
        ? 'print $r->pid, "\n"; die "boom\n"'
        : '$| = 1; print $r->pid, "\n"; sleep 30';
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', '/dev/null';
        exec($^X, "-I$FindBin::Bin/lib", '-MOAuth2Redis',
             '-e', "my \$r = OAuth2Redis->start; $code")
            or POSIX::_exit(127);
    }
    my $child = <$fh>;
    chomp $child if defined $child;
    kill 'TERM', $pid if $how eq 'SIGTERM';
    close $fh;
    ok($child && !kill(0, $child),
       "a test that ends by $how leaves no redis-server behind");
}

# --- Sentinel failover -----------------------------------------------------------

my @failover;

sub failover_case {
    my ($label, %o) = @_;
    my $t = OAuth2Redis::topology(replicas => 1, sentinels => 3, %o);
    my $s = $t->sentinels;
    my $old = $t->primary->port;
    is(scalar($s->ports), 3, "$label: three Sentinels");
    is(($s->master_addr)[1], $old, "$label: the Sentinels name the primary");

    $t->primary->command('HSET', 'oauth2:token:before', 'client_id', 'c1');
    ok($t->primary->wait_replicated, "$label: written before the kill");

    my $killed = $t->primary->kill;
    my ($new, $at) = $s->wait_for_failover($old, 20);
    ok($new, "$label: +switch-master") or do {
        diag join "\n", map { sprintf '%.3f :%d %s %s', $_->[0] - $killed,
                                      @$_[1 .. 3] } $s->events;
        return;
    };
    my $took = $at - $killed;
    push @failover, $took;
    # about 2 s; 2 s + 2 x failover-timeout when the first election fails
    # (two Sentinels voted for themselves at once): show the events then
    if ($took > 4) {
        diag "$label: slow failover, the Sentinels' events:";
        diag join "\n", map { sprintf '%.3f :%d %s %s', $_->[0] - $killed,
                                      @$_[1 .. 3] } $s->events;
    }
    is($new, $t->replica->port, "$label: the new primary is the replica");
    is(($s->master_addr)[1], $new, "$label: get-master-addr-by-name agrees");
    is($t->replica->role, 'master', "$label: the replica is a primary now");
    is($t->replica->command('HGET', 'oauth2:token:before', 'client_id'), 'c1',
       "$label: the key written before the kill is there");
    # TILT (a Sentinel's timer late by 2 s, a loaded machine) stops the
    # Sentinels acting for 30 s: say so when it happens
    diag "$label: a Sentinel went into TILT (the machine is loaded)"
        if $s->events_of('+tilt');
    diag sprintf "%s: +switch-master %.2f s after SIGKILL of the primary "
               . "(down-after 1000 ms)", $label, $took;

    # (a restarted old primary is turned into a replica by the Sentinels
    # only after 8 s of being seen as a primary: not waited for here)
    $t->stop;
    ok(refused($_), "$label: stop closes :$_")
        for grep { !/\D/ } ($old, $new, $s->ports);
}

failover_case('sentinel');
failover_case('sentinel over TLS', tls => 1, tls_auth_clients => 'yes',
              password => 'pw', sentinel_password => 'spw');
# ACL users everywhere: the primary's and the replica's default user off,
# the Sentinels' too (they vote through sentinel-user / sentinel-pass)
failover_case('sentinel with ACL users', acl_user => ['gw', 'pw'],
              sentinel_acl_user => ['sgw', 'spw']);

diag sprintf 'failover times: %s s; the whole test: %.1f s',
             join(', ', map { sprintf '%.2f', $_ } @failover), time - $t0;

done_testing();
