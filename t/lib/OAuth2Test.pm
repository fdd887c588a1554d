package OAuth2Test;

# Seeds the throwaway Redis of a test run (TEST_NGINX_REDIS_PORT) the way an
# issuer would: token records under oauth2:token:<sha256 hex>, consents
# under oauth2:consent:<id>.  Talks RESP over a plain socket: no client
# library needed.  Used from the `--- init` section of Test::Nginx blocks,
# so it works the same under the real Test::Nginx and the project's runner.

use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use POSIX ();

our $Prefix = 'oauth2:';

our $Port;   # another Redis than the run's, for seed_token_on()

sub port {
    $Port || $ENV{TEST_NGINX_REDIS_PORT}
        or die "TEST_NGINX_REDIS_PORT is not set\n";
}

sub _read_reply {
    my ($sock) = @_;

    my $line = <$sock>;
    die "redis closed the connection\n" unless defined $line;
    $line =~ s/\r\n$//;

    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));

    return $rest if $type eq '+' || $type eq ':';
    die "redis error: $rest\n" if $type eq '-';

    if ($type eq '$') {
        return undef if $rest < 0;
        my $buf = '';
        while (length($buf) < $rest + 2) {
            my $n = read($sock, $buf, $rest + 2 - length($buf), length($buf));
            die "short read from redis\n" unless $n;
        }
        return substr($buf, 0, $rest);
    }

    if ($type eq '*') {
        return undef if $rest < 0;
        return [ map { _read_reply($sock) } 1 .. $rest ];
    }

    die "unexpected redis reply: $line\n";
}

sub _encode {
    my @args = @_;
    my $out = '*' . scalar(@args) . "\r\n";
    $out .= '$' . length($_) . "\r\n$_\r\n" for @args;
    return $out;
}

sub _connect {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(),
                                     Proto => 'tcp', Timeout => 5)
        or die "cannot connect to redis on port " . port() . ": $!\n";
    binmode $sock;
    return $sock;
}

# redis('HSET', 'key', 'f', 'v') -> the reply (array ref for arrays)
sub redis {
    my @cmd = @_;
    my $sock = _connect();
    print $sock _encode(@cmd);
    my $reply = _read_reply($sock);
    close $sock;
    return $reply;
}

sub token_key { $Prefix . 'token:' . sha256_hex($_[0]) }

# seed_token('tok', client_id => 'c1', scope => 'a b', consent_id => 'k1',
#            ttl => 3600)  (ttl => 0: no expiry on the key)
sub seed_token {
    my ($token, %f) = @_;
    my $ttl = exists $f{ttl} ? delete $f{ttl} : 3600;
    my $key = token_key($token);
    redis('DEL', $key);
    redis('HSET', $key, %f) if %f;
    redis('EXPIRE', $key, $ttl) if $ttl;
    return $key;
}

sub seed_token_on {
    my ($port, @args) = @_;
    local $Port = $port;
    return seed_token(@args);
}

# A Redis of a test's own (that the test may stop): returns its port.
# start_private_redis([$port[, $dir]]): with $dir, Redis keeps its data
# in $dir/dump.rdb (written by SAVE) and loads it when it starts again.
sub start_private_redis {
    my ($port, $dir) = @_;
    if (!$port) {
        my $l = IO::Socket::INET->new(Listen => 1,
                                      LocalAddr => '127.0.0.1:0',
                                      ReuseAddr => 1) or die "listen: $!";
        $port = $l->sockport;
        close $l;
    }
    system('redis-server', '--port', $port, '--bind', '127.0.0.1',
           '--save', '', '--appendonly', 'no', '--daemonize', 'yes',
           '--pidfile', "/tmp/oauth2-test-redis-$port.pid",
           '--logfile', "/tmp/oauth2-test-redis-$port.log",
           ($dir ? ('--dir', $dir, '--dbfilename', 'dump.rdb') : ())) == 0
        or die "cannot start redis-server on port $port";
    for (1 .. 50) {
        my $ok = eval { local $Port = $port; redis('PING') };
        return $port if $ok;
        sleep 0.1;
    }
    die "redis-server on port $port did not start";
}

sub stop_private_redis {
    my ($port, $signal) = @_;
    my $pidfile = "/tmp/oauth2-test-redis-$port.pid";
    return unless -f $pidfile;
    open my $fh, '<', $pidfile or return;
    my $pid = <$fh>;
    close $fh;
    chomp $pid;
    kill $signal // 'TERM', $pid if $pid;
    for (1 .. 50) {
        last unless kill 0, $pid;
        sleep 0.1;
    }
    unlink $pidfile, "/tmp/oauth2-test-redis-$port.log";
}

sub seed_consent {
    my ($id, $status, $ttl) = @_;
    my $key = $Prefix . 'consent:' . $id;
    redis('DEL', $key);
    redis('HSET', $key, 'status', $status);
    redis('EXPIRE', $key, $ttl) if $ttl;
    return $key;
}

# a token with a valid consent: the common case of the suites
sub seed_valid {
    my ($token, %f) = @_;
    $f{client_id}  //= 'client-1';
    $f{consent_id} //= 'consent-' . $token;
    seed_consent($f{consent_id}, 'valid');
    return seed_token($token, %f);
}

sub flush { redis('FLUSHDB') }

# a file for one block to leave a result in for the next one
sub scratch_file {
    my ($name) = @_;
    return "/tmp/oauth2-test-" . port() . "-$name";
}

sub server_port {
    no warnings "once";
    $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
        || $Test::Nginx::Util::ServerPort || 1984
}

# A request to the nginx under test from `--- init` (nginx is up by then):
# returns (status, body, seconds taken).
sub http_get {
    my ($path, @headers) = @_;
    my $start = time;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => server_port(),
                                     Proto => 'tcp', Timeout => 10)
        or die "cannot connect to nginx: $!\n";
    print $sock "GET $path HTTP/1.0\r\nHost: localhost\r\n",
                map({ "$_\r\n" } @headers), "\r\n";
    local $/;
    my $res = <$sock> // '';
    close $sock;
    my ($status) = $res =~ m{^HTTP/1\.\d (\d{3})};
    my ($body) = $res =~ m{\r\n\r\n(.*)\z}s;
    return ($status // 0, $body // '', time - $start);
}

# The same in a child process; the child's status line ends up in $file.
sub http_get_background {
    my ($file, $path, @headers) = @_;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my ($status, $body, $took) = eval { http_get($path, @headers) };
        if (open my $fh, '>', $file) {
            printf $fh "%s %.3f\n", $status // 'error', $took // -1;
            close $fh;
        }
        POSIX::_exit(0);
    }
    return $pid;
}

# $n clients, each in a child process, send $request (raw bytes) to the
# nginx under test and close their connection after $after seconds;
# returns when all of them have.
sub clients_leave {
    my ($n, $request, $after) = @_;
    my @pids;
    for (1 .. $n) {
        my $pid = fork();
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            my $s = IO::Socket::INET->new(
                PeerAddr => '127.0.0.1',
                PeerPort => server_port(), Proto => 'tcp');
            if ($s) {
                print $s $request;
                sleep $after;
                close $s;
            }
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    waitpid($_, 0) for @pids;
}

# Runs redis-side DEBUG SLEEP in the background (the redis server of the
# run is started with enable-debug-command local).
sub sleep_redis {
    my ($seconds) = @_;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        eval { redis('DEBUG', 'SLEEP', $seconds) };
        POSIX::_exit(0);
    }
    sleep 0.1;
    return $pid;
}

# Keeps Redis slow for a while: DEBUG SLEEP $each, again and again, for
# $seconds (Redis answers nothing else while it sleeps).  Returns the pid.
sub sleep_redis_loop {
    my ($each, $seconds) = @_;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my $until = time + $seconds;
        eval {
            my $sock = _connect();
            while (time < $until) {
                print $sock _encode('DEBUG', 'SLEEP', $each);
                _read_reply($sock);
            }
        };
        POSIX::_exit(0);
    }
    sleep 0.05;
    return $pid;
}

# Records every command Redis receives, from now on, until
# monitor_commands() is called; returns the commands that came from
# anyone but the test itself (nginx), e.g. ('EVALSHA ...').
my ($MonSock, @MonSelf);

sub monitor_start {
    $MonSock = _connect();
    print $MonSock _encode('MONITOR');
    my $ok = _read_reply($MonSock);
    die "MONITOR failed\n" unless $ok eq 'OK';
    return 1;
}

sub monitor_commands {
    my ($wait) = @_;
    sleep($wait // 0.2);
    die "monitor_start() was not called\n" unless $MonSock;
    $MonSock->blocking(0);
    my @cmds;
    my $buf = '';
    while (1) {
        my $n = sysread($MonSock, $buf, 65536, length $buf);
        last unless $n;
    }
    close $MonSock;
    undef $MonSock;
    for my $line (split /\r\n/, $buf) {
        # +1700000000.123456 [0 127.0.0.1:4242] "EVALSHA" "..." ...
        next unless $line =~ /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "(\w+)"(.*)$/;
        my ($client, $cmd, $args) = ($1, uc $2, $3);
        next if $cmd eq 'MONITOR';
        # commands run inside a script are reported with [0 lua]
        next if $client eq 'lua';
        push @cmds, "$cmd$args";
    }
    return @cmds;
}

1;
