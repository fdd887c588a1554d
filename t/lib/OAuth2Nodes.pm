package OAuth2Nodes;

# Several nginx nodes on one Redis, and many clients on them at once: for
# the plain Test::More suites of the shared rate limit (t/061, t/064).
#
#   my @nginx = OAuth2Nodes::start(2, $http);   # OAuth2Nginx instances
#   my @nodes = map { $_->port } @nginx;
#   my $status = OAuth2Nodes::request($nodes[0], $token, '/api');
#   my ($status, $head) = OAuth2Nodes::request($nodes[0], $token);
#   my ($ok, $limited, $other, $first, $last) =
#       OAuth2Nodes::hammer(\@nodes, $token, 8, time + 30, 60);
#
# "$PORT" in the http text is each node's own port (OAuth2Nginx).

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time);
use OAuth2Nginx;

# $count nginx instances of two workers each, every one with the http
# block $http; returns them (OAuth2Nginx objects)
sub start {
    my ($count, $http) = @_;
    return map { OAuth2Nginx->start(workers => 2, http => $http) }
               1 .. $count;
}

# One GET of $path (/api by default) on the node at $port with $token as
# Bearer token, HTTP/1.0: the status (0 when it could not connect); in
# list context, the response's head too
sub request {
    my ($port, $token, $path) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp',
                                     Timeout => 5) or return 0;
    print $sock "GET ", $path // '/api', " HTTP/1.0\r\nHost: localhost\r\n",
                "Authorization: Bearer $token\r\n\r\n";
    my $head = '';
    while (my $l = <$sock>) {
        last if $l eq "\r\n";
        $head .= $l;
    }
    close $sock;
    my $status = $head =~ m{^HTTP/1\.\d (\d{3})} ? $1 : 0;
    return wantarray ? ($status, $head) : $status;
}

# $clients processes send requests of $token (to $path, /api by default)
# to the nodes of @$nodes (ports) in turn until $until (or $max requests
# each); returns (accepted, limited, other, first, last): the counts of
# 200, 429 and any other status, and the times of the first and the last
# request sent
sub hammer {
    my ($nodes, $token, $clients, $until, $max, $path) = @_;
    my @nodes = @$nodes;
    my $out = tempdir(CLEANUP => 1);
    my @pids;
    for my $c (1 .. $clients) {
        my $pid = fork();
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            my %n = (200 => 0, 429 => 0, other => 0);
            my ($first, $last);
            for (my $i = 0; $i < $max && time < $until; $i++) {
                my $t = time;
                $first //= $t;
                my $s = request($nodes[($i + $c) % @nodes], $token, $path);
                $last = $t;
                $n{ exists $n{$s} ? $s : 'other' }++;
            }
            open my $fh, '>', "$out/$c" or POSIX::_exit(1);
            print $fh join(' ', $n{200}, $n{429}, $n{other},
                           $first // 0, $last // 0), "\n";
            close $fh;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    waitpid($_, 0) for @pids;
    my ($ok, $limited, $other, $first, $last) = (0, 0, 0, undef, 0);
    for my $c (1 .. $clients) {
        open my $fh, '<', "$out/$c" or die "client $c left no result";
        my @f = split ' ', scalar <$fh>;
        $ok += $f[0];
        $limited += $f[1];
        $other += $f[2];
        $first = $f[3] if $f[3] && (!defined $first || $f[3] < $first);
        $last = $f[4] if $f[4] > $last;
    }
    return ($ok, $limited, $other, $first, $last);
}

1;
