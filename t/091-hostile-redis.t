# A Redis that answers the lookup with an array of a hundred million
# elements ("*100000000\r\n", 14 bytes) and nothing more, with arrays of
# 1024 nested 7 deep, or with a string of 9 MB: the worker refuses each
# before it grows (a reply has a few elements), drops the connection,
# answers 503.
# Between nginx and the real Redis of the run, a proxy of the test's own
# passes everything through but the lookup's EVALSHA.
#
# Plain Test::More, an nginx of its own (t/lib/OAuth2Nginx.pm).

use strict;
use warnings;

use Test::More;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Nginx;

my $redis = OAuth2Test::port();

# the lookup of this token gets nested arrays instead (its key's hash)
my $nested = OAuth2Test::token_key('tok-nested') =~ s/^.*://r;
my $long = OAuth2Test::token_key('tok-long') =~ s/^.*://r;

my $listen = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1:0',
                                   ReuseAddr => 1) or die "listen: $!";
my $proxy = $listen->sockport;

# the proxy: each connection from nginx to a connection to Redis
my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    local $SIG{ALRM} = sub { POSIX::_exit(0) };
    alarm 60;
    while (my $c = $listen->accept) {
        next if fork();
        my $r = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $redis) or POSIX::_exit(1);
        my $sel = IO::Select->new($c, $r);
        while (my @ready = $sel->can_read) {
            for my $s (@ready) {
                my $n = sysread($s, my $buf, 65536);
                POSIX::_exit(0) unless $n;
                if ($s == $c && $buf =~ /EVALSHA/ && $buf =~ /$nested/) {
                    # arrays of 1024 in arrays of 1024 ..., then integers
                    syswrite($c, "*1024\r\n" x 6);
                    syswrite($c, "*1024\r\n" . ":0\r\n" x 1024) for 1 .. 20;
                } elsif ($s == $c && $buf =~ /EVALSHA/ && $buf =~ /$long/) {
                    # a string of 9 MB announced, 1.1 MB of it sent
                    syswrite($c, "\$9000000\r\n");
                    syswrite($c, 'x' x 65536) for 1 .. 18;
                } elsif ($s == $c && $buf =~ /EVALSHA/) {
                    syswrite($c, "*100000000\r\n");    # and no more
                } else {
                    syswrite($s == $c ? $r : $c, $buf);
                }
            }
        }
        POSIX::_exit(0);
    }
    POSIX::_exit(0);
}
close $listen;

OAuth2Test::seed_token('tok-hostile', client_id => 'tpp-hostile');
OAuth2Test::seed_token('tok-nested', client_id => 'tpp-nested');
OAuth2Test::seed_token('tok-long', client_id => 'tpp-long');

my $n = OAuth2Nginx->start(http => <<"_HTTP_");
    oauth2_redis 127.0.0.1:$proxy;
    oauth2_consent off;
    server {
        listen 127.0.0.1:\$PORT;
        location /api {
            oauth2 on;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /backend { return 200 "ok\\n"; }
    }
_HTTP_

sleep 0.5;

sub rss_kb {
    my @pids = map { /^\s*(\d+)/ ? $1 : () }
               `ps -o pid= --ppid \$(cat @{[$n->dir]}/logs/nginx.pid)`;
    my $kb = 0;
    for my $p (@pids) {
        open my $f, '<', "/proc/$p/status" or next;
        for (<$f>) { $kb += $1 if /^VmRSS:\s+(\d+)/ }
    }
    return $kb;
}

my $before = rss_kb();
my $t0 = time;
my ($s) = $n->request('/api', 'Authorization: Bearer tok-hostile');
my $took = time - $t0;
my $after = rss_kb();

is($s, 503, 'an array of 100000000 elements: 503');
cmp_ok($took, '<', 0.9, "... at once ($took s), not at the call's timeout");
cmp_ok($after - $before, '<', 20000,
       "the worker did not grow (RSS $before kB, then $after kB)");
my @log = $n->error_log;
ok((grep { /oauth2: redis announced an array of 100000000 elements, more than 1024/ } @log),
   'the log says why');
ok((grep { /oauth2: redis protocol error: Out of memory/ } @log),
   '... and the connection was dropped as for any bad reply');
# arrays of 1024 nested 7 deep: each array is small, the reply is not
$before = rss_kb();
($s) = $n->request('/api', 'Authorization: Bearer tok-nested');
$after = rss_kb();
is($s, 503, 'arrays of 1024 elements nested 7 deep: 503');
cmp_ok($after - $before, '<', 20000,
       "the worker did not grow (RSS $before kB, then $after kB)");
@log = $n->error_log;
ok((grep { /oauth2: redis sent a reply of more than 16384 values/ } @log),
   'the log says why');

# a reply longer than any the module asks for: dropped before its end
($s) = $n->request('/api', 'Authorization: Bearer tok-long');
is($s, 503, 'a string of 9 MB: 503');
@log = $n->error_log;
ok((grep { /oauth2: redis sent more than 1048576 bytes of one reply/ } @log),
   'the log says why');

my @bad = grep { /\[(alert|crit|emerg)\]|signal \d+/ } @log;
is(scalar(@bad), 0, 'no alert, crit or emerg, no worker lost') or diag @bad;

$n->stop;
kill 'TERM', $pid;
waitpid($pid, 0);
done_testing();
