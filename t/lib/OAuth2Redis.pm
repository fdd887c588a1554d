package OAuth2Redis;

# Real Redis processes of a test's own, on loopback: plain, TLS (with a
# test PKI made by the openssl command line), unix socket, IPv6, password
# and ACL user, replicas, and Sentinel groups that fail over for real
# (with a password and an ACL user of their own too).
# Pure Perl; the processes are Debian's redis-server and, for Sentinel,
# the redis-sentinel package's redis-sentinel (`redis-server --sentinel`
# where that package is missing), the TLS client is IO::Socket::SSL
# (libio-socket-ssl-perl).
#
#   my $r = OAuth2Redis->start(tls => 1, tls_auth_clients => 'yes');
#   $r->cli('PING');                      # "PONG", through redis-cli --tls
#   $r->command('HSET', 'k', 'f', 'v');   # the same over a Perl socket
#   $r->kill;  $r->restart;  $r->stop;
#
#   my $t = OAuth2Redis::topology(replicas => 1, sentinels => 3);
#   $t->primary->kill;
#   my ($port, $at) = $t->sentinels->wait_for_failover($t->primary->port);
#
# Every process is a child of the test (no daemonize): stop() and kill()
# reap it, DESTROY stops it, and an END block (also run on SIGINT, SIGTERM
# and SIGHUP when the test has no handler of its own) stops whatever is
# left.  Files live in one temporary folder per test process (kept when
# OAUTH2_REDIS_KEEP=1 is set, for post-mortems).  The folder and the files
# in it are world-readable, and unix sockets are 777, so that nginx workers
# running as nobody can use them.

use strict;
use warnings;

use Carp qw(croak);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::IP;
use IO::Socket::UNIX;
use POSIX qw(WNOHANG strftime);
use Time::HiRes qw(time sleep);

our $Verbose = $ENV{OAUTH2_REDIS_VERBOSE};
our $Server  = 'redis-server';
our $Sentinel = (grep { -x "$_/redis-sentinel" } split /:/, $ENV{PATH})
                ? 'redis-sentinel' : undef;
our $Cli     = 'redis-cli';

my $Owner = $$;
my %Running;        # pid => "what", for END
my $Dir;            # the per-process temporary folder
my $Seq = 0;
my %Pki;            # dir => pki hash

# --------------------------------------------------------------------------
# files and ports

sub tmpdir {
    return $Dir if $Dir;
    $Dir = tempdir('oauth2-redis.XXXXXX', TMPDIR => 1,
                   CLEANUP => !$ENV{OAUTH2_REDIS_KEEP});
    chmod 0755, $Dir;
    _install_signal_handlers();
    return $Dir;
}

sub _subdir {
    my ($name) = @_;
    my $d = tmpdir() . '/' . $name . '-' . ++$Seq;
    mkdir $d or croak "mkdir $d: $!";
    chmod 0755, $d;
    return $d;
}

# a free TCP port on 127.0.0.1 (and on ::1 too with $v6), picked like
# OAuth2Nginx::free_port: bind port 0, read it, close
sub free_port {
    my ($v6) = @_;
    for (1 .. 20) {
        my $l = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0',
                                      ReuseAddr => 1) or croak "listen: $!";
        my $port = $l->sockport;
        CORE::close $l;
        return $port unless $v6;
        my $l6 = IO::Socket::IP->new(Listen => 1, LocalHost => '::1',
                                     LocalPort => $port, ReuseAddr => 1,
                                     V6Only => 1);
        next unless $l6;
        CORE::close $l6;
        return $port;
    }
    croak "no free port";
}

# true when a socket can listen on ::1 and be connected to there
my $HaveV6;
sub have_ipv6 {
    return $HaveV6 if defined $HaveV6;
    $HaveV6 = 0;
    my $l = IO::Socket::IP->new(Listen => 1, LocalHost => '::1',
                                LocalPort => 0, V6Only => 1)
        or return $HaveV6;
    my $c = IO::Socket::IP->new(PeerHost => '::1', PeerPort => $l->sockport,
                                Timeout => 2);
    $HaveV6 = $c ? 1 : 0;
    return $HaveV6;
}

sub _write_file {
    my ($path, $text, $mode) = @_;
    open my $fh, '>', $path or croak "$path: $!";
    print $fh $text;
    CORE::close $fh or croak "$path: $!";
    chmod $mode // 0644, $path;
}

sub _slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    return scalar <$fh>;
}

sub _tail {
    my ($path, $n) = @_;
    my @l = split /\n/, _slurp($path);
    splice @l, 0, @l - ($n // 15) if @l > ($n // 15);
    return join("\n", @l);
}

# --------------------------------------------------------------------------
# the test PKI

sub _openssl {
    my ($dir, @args) = @_;
    my $log = "$dir/openssl.log";
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        chdir $dir;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        exec('openssl', @args) or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    $? == 0 or croak "openssl @args failed:\n" . _tail($log, 20);
}

# YYMMDDHHMMSSZ, what `openssl ca -startdate/-enddate` takes
sub _asn1_time { strftime('%y%m%d%H%M%SZ', gmtime $_[0]) }

# pki([$dir]) -> { ca, ca_key, server_cert, server_key, client_cert,
#   client_key, wrong_ca, wrong_ca_key, wrong_client_cert,
#   wrong_client_key, expired_cert, expired_key, dir }
#
# EC P-256 keys.  The server certificate is for CN=localhost with
# subjectAltName DNS:localhost, IP:127.0.0.1, IP:::1 and both serverAuth
# and clientAuth (Redis uses it as its client certificate towards a
# primary or another Sentinel); the client certificate has clientAuth.
# The expired one is the server certificate's twin (same names, own key),
# valid from 30 days ago to 1 day ago: OpenSSL 3.0's `x509 -req` has no
# start date (and no negative -days), so it is signed by `openssl ca
# -startdate -enddate` with a minimal CA configuration.  Made once per
# folder and process.
sub pki {
    my ($dir) = @_;
    $dir //= tmpdir() . '/pki';
    return $Pki{$dir} if $Pki{$dir};
    mkdir $dir unless -d $dir;
    chmod 0755, $dir;

    my $san = 'DNS:localhost,IP:127.0.0.1,IP:::1';
    _write_file("$dir/openssl.cnf", <<"_CNF_");
# made by t/lib/OAuth2Redis.pm
[ req ]
distinguished_name = dn
prompt             = no
[ dn ]
CN = unused
[ ca_ext ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
[ server_ext ]
basicConstraints       = CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth, clientAuth
subjectAltName         = $san
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
[ client_ext ]
basicConstraints       = CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
[ ca ]
default_ca = test_ca
[ test_ca ]
dir             = .
database        = ca-db/index.txt
new_certs_dir   = ca-db
serial          = ca-db/serial
default_md      = sha256
policy          = any_name
unique_subject  = no
copy_extensions = none
[ any_name ]
commonName = supplied
_CNF_

    my @key = ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
               '-nodes');
    my @cnf = ('-config', 'openssl.cnf');

    # the CA and the unrelated "wrong" CA
    for my $ca (['ca', 'OAuth2 Test CA'], ['wrong-ca', 'OAuth2 Wrong CA']) {
        _openssl($dir, 'req', @cnf, '-x509', @key, '-keyout', "$ca->[0].key",
                 '-out', "$ca->[0].crt", '-days', '3650',
                 '-subj', "/CN=$ca->[1]", '-extensions', 'ca_ext');
    }

    # leaf certificates: key + request, then signed by x509 -req
    my $serial = 1000;
    my $leaf = sub {
        my ($name, $cn, $ca, $ext) = @_;
        _openssl($dir, 'req', @cnf, '-new', @key, '-keyout', "$name.key",
                 '-out', "$name.csr", '-subj', "/CN=$cn");
        _openssl($dir, 'x509', '-req', '-in', "$name.csr", '-CA', "$ca.crt",
                 '-CAkey', "$ca.key", '-set_serial', $serial++,
                 '-days', '3650', '-sha256', '-extfile', 'openssl.cnf',
                 '-extensions', $ext, '-out', "$name.crt");
    };
    $leaf->('server', 'localhost', 'ca', 'server_ext');
    $leaf->('client', 'oauth2-test-client', 'ca', 'client_ext');
    $leaf->('wrong-client', 'oauth2-wrong-client', 'wrong-ca', 'client_ext');

    # the expired server certificate: openssl ca with explicit dates
    mkdir "$dir/ca-db";
    _write_file("$dir/ca-db/index.txt", '');
    _write_file("$dir/ca-db/serial", "2000\n");
    _openssl($dir, 'req', @cnf, '-new', @key, '-keyout', 'expired.key',
             '-out', 'expired.csr', '-subj', '/CN=localhost');
    _openssl($dir, 'ca', @cnf, '-batch', '-notext', '-cert', 'ca.crt',
             '-keyfile', 'ca.key', '-in', 'expired.csr',
             '-out', 'expired.crt',
             '-startdate', _asn1_time(time - 30 * 86400),
             '-enddate', _asn1_time(time - 86400),
             '-extensions', 'server_ext');

    chmod 0644, glob("$dir/*.key");

    my %p = (dir => $dir);
    for my $f (qw(ca wrong-ca)) {
        (my $k = $f) =~ tr/-/_/;
        $p{$k} = "$dir/$f.crt";
        $p{"${k}_key"} = "$dir/$f.key";
    }
    for my $f (qw(server client wrong-client expired)) {
        (my $k = $f) =~ tr/-/_/;
        $p{"${k}_cert"} = "$dir/$f.crt";
        $p{"${k}_key"} = "$dir/$f.key";
    }
    -s $p{$_} or croak "pki: $p{$_} is missing" for grep { $_ ne 'dir' } keys %p;
    return $Pki{$dir} = \%p;
}

# --------------------------------------------------------------------------
# processes

sub _spawn {
    my ($what, $log, @argv) = @_;
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        exec(@argv) or POSIX::_exit(127);
    }
    $Running{$pid} = $what;
    print STDERR "# OAuth2Redis: started $what (pid $pid)\n" if $Verbose;
    return $pid;
}

# waits up to $timeout s for $pid to exit; reaps it; true if it did
sub _reap {
    my ($pid, $timeout) = @_;
    my $until = time + $timeout;
    while (1) {
        my $r = waitpid $pid, WNOHANG;
        if ($r == $pid || $r == -1) {
            delete $Running{$pid};
            return 1;
        }
        return 0 if time > $until;
        sleep 0.01;
    }
}

sub _stop_pid {
    my ($pid, $signal) = @_;
    return unless $pid && $Running{$pid} && $$ == $Owner;
    CORE::kill $signal // 'TERM', $pid;
    return if _reap($pid, 10);
    CORE::kill 'KILL', $pid;
    _reap($pid, 5);
}

sub _install_signal_handlers {
    for my $sig (qw(INT TERM HUP)) {
        next if defined $SIG{$sig} && $SIG{$sig} ne 'DEFAULT';
        $SIG{$sig} = sub {
            print STDERR "# OAuth2Redis: SIG$sig, stopping the Redis "
                       . "processes\n";
            exit 128 + ($sig eq 'INT' ? 2 : $sig eq 'TERM' ? 15 : 1);
        };
    }
}

sub stop_all {
    return unless $$ == $Owner;
    local ($?, $!, $@);
    for my $pid (keys %Running) {
        print STDERR "# OAuth2Redis: stopping $Running{$pid} (pid $pid)\n"
            if $Verbose;
        CORE::kill 'TERM', $pid;
    }
    for my $pid (keys %Running) {
        next if _reap($pid, 5);
        CORE::kill 'KILL', $pid;
        _reap($pid, 2);
    }
}

END { stop_all() }

# --------------------------------------------------------------------------
# a redis-server

# OAuth2Redis->start(%o): a redis-server of the test's own; waits until it
# answers PING (and, for a replica, until its link to the primary is up).
#   port => N            the port (default: a free one; the TLS port with tls)
#   host => 127.0.0.N    the loopback address it binds (default 127.0.0.1)
#   tls => 1             TLS only (port 0, tls-port); tls_auth_clients =>
#                        'no' (default) | 'optional' | 'yes';
#                        expired => 1 serves the expired certificate;
#                        pki => $hash (default: pki() of the process)
#   unix => 1            also a unix socket (->socket)
#   ipv6 => 1            bind ::1 too (croaks when have_ipv6() is false)
#   password => 'x'      requirepass (and masterauth)
#   acl_user => [u, p]   an ACL user with every right (and masteruser);
#                        without password, the default user is switched off
#   replicaof => $other  a replica of another OAuth2Redis (wait => 0: do not
#                        wait for the link)
#   save => $dir         dump.rdb in $dir, loaded at start, written by SAVE
#                        and by a stop with SIGTERM (not by kill)
#   config => [lines]    more configuration lines
sub start {
    my ($class, %o) = @_;
    my $self = bless { %o, dir => _subdir('redis') }, $class;
    croak "ipv6 => 1 but ::1 is not usable on this machine"
        if $o{ipv6} && !have_ipv6();
    $self->{pki} = $o{pki} || pki() if $o{tls};
    $self->{tls_auth_clients} //= 'no' if $o{tls};
    $self->{fixed_port} = $o{port};
    $self->{host} = $o{host};
    for my $try (1 .. 3) {
        $self->{port} = $o{port} || free_port($o{ipv6});
        $self->_write_conf;
        my $ok = eval { $self->_launch; 1 };
        return $self if $ok;
        my $err = $@;
        die $err if $o{port} || $err !~ /Address already in use/;
        print STDERR "# OAuth2Redis: port $self->{port} taken, "
                   . "trying another\n";
    }
    croak "redis-server: no port after 3 tries";
}

sub _write_conf {
    my ($self) = @_;
    my $d = $self->{dir};
    my @c = ('# made by t/lib/OAuth2Redis.pm',
             'bind ' . ($self->{host} // '127.0.0.1')
             . ($self->{ipv6} ? ' ::1' : ''),
             'daemonize no', "logfile $d/redis.log", 'loglevel notice',
             'appendonly no', 'enable-debug-command local',
             'repl-diskless-sync-delay 0',
             'protected-mode no');
    if ($self->{save}) {
        push @c, "dir $self->{save}", 'dbfilename dump.rdb', 'save ""',
                 'shutdown-on-sigterm save';
    } else {
        push @c, "dir $d", 'dbfilename dump.rdb', 'save ""',
                 'shutdown-on-sigterm nosave';
    }
    if ($self->{tls}) {
        my $p = $self->{pki};
        my ($cert, $key) = $self->{expired}
            ? @$p{qw(expired_cert expired_key)}
            : @$p{qw(server_cert server_key)};
        push @c, 'port 0', "tls-port $self->{port}", "tls-cert-file $cert",
                 "tls-key-file $key", "tls-ca-cert-file $p->{ca}",
                 "tls-auth-clients $self->{tls_auth_clients}",
                 'tls-replication yes';
    } else {
        push @c, "port $self->{port}";
    }
    if ($self->{unix}) {
        $self->{socket} = "$d/redis.sock";
        push @c, "unixsocket $self->{socket}", 'unixsocketperm 777';
    }
    if (defined $self->{password}) {
        push @c, "requirepass $self->{password}",
                 "masterauth $self->{password}";
    }
    if (my $u = $self->{acl_user}) {
        push @c, "user $u->[0] on >$u->[1] ~* &* +\@all";
        push @c, 'user default off' unless defined $self->{password};
        push @c, "masteruser $u->[0]", "masterauth $u->[1]";
    }
    if (my $m = $self->{replicaof}) {
        croak "replicaof: the primary is TLS and this one is not (or the "
            . "other way round)" if !$m->{tls} != !$self->{tls};
        push @c, "replicaof 127.0.0.1 $m->{port}";
        # a replica authenticates like its primary wants
        push @c, "masterauth $m->{password}"
            if defined $m->{password} && !$m->{acl_user};
        push @c, "masteruser $m->{acl_user}[0]", "masterauth $m->{acl_user}[1]"
            if $m->{acl_user} && !$self->{acl_user};
    }
    push @c, @{ $self->{config} || [] };
    $self->{conf} = "$d/redis.conf";
    _write_file($self->{conf}, join("\n", @c) . "\n");
}

sub _launch {
    my ($self) = @_;
    my $log = "$self->{dir}/redis.log";
    my $what = ($self->{sentinel} ? 'redis-sentinel' : 'redis-server')
             . " :$self->{port}";
    my @argv = ($self->{sentinel} && $Sentinel ? $Sentinel : $Server,
                $self->{conf});
    push @argv, '--sentinel' if $self->{sentinel} && !$Sentinel;
    my $start = -s $log || 0;
    $self->{pid} = _spawn($what, "$self->{dir}/stdout.log", @argv);
    my $until = time + 15;
    my $last = '';
    while (time < $until) {
        if (waitpid($self->{pid}, WNOHANG) == $self->{pid}) {
            delete $Running{ $self->{pid} };
            delete $self->{pid};
            my $out = substr(_slurp($log), $start)
                    . _slurp("$self->{dir}/stdout.log");
            croak "$what exited at start:\n$out";
        }
        # our process, not another one on the same port
        my $r = eval { $self->info('server')->{process_id} };
        $last = $@ if !defined $r;
        last if defined $r && $r == $self->{pid};
        $last = "pid $r answers on :$self->{port}\n" if defined $r;
        sleep 0.02;
    }
    my $pong = eval { $self->command('PING') } // '';
    croak "$what does not answer PING: $last" . _tail($log)
        unless $pong eq 'PONG';
    # a replica (the configuration may have been rewritten by Sentinel
    # since: a promoted replica is a primary now)
    $self->wait_link_up
        if ($self->{wait} // 1) && $self->{replicaof} && !$self->{sentinel}
           && $self->role eq 'slave';
    return $self;
}

sub port   { $_[0]{port} }
sub socket { $_[0]{socket} }
sub pid    { $_[0]{pid} }
sub dir    { $_[0]{dir} }
sub conf   { $_[0]{conf} }
sub log    { _slurp("$_[0]{dir}/redis.log") }
sub is_tls { $_[0]{tls} ? 1 : 0 }
sub running { my $p = $_[0]{pid}; $p && $Running{$p} ? 1 : 0 }

# "127.0.0.1:PORT", for an nginx configuration
sub addr   { ($_[0]{host} // '127.0.0.1') . ":$_[0]{port}" }

# stop([$signal]): TERM by default; waits for the exit (KILL after 10 s)
sub stop {
    my ($self, $signal) = @_;
    my $pid = delete $self->{pid} or return;
    _stop_pid($pid, $signal);
    $self->{stopped_at} = time;
}

# kill(): SIGKILL at once (a crash, for failover tests); returns the time
sub kill {
    my ($self) = @_;
    return unless $$ == $Owner;
    my $pid = delete $self->{pid} or return;
    my $t = time;
    CORE::kill 'KILL', $pid;
    _reap($pid, 5);
    return $self->{killed_at} = $t;
}

# restart(): stops it if it runs, starts it again on the same port with the
# same configuration file (which Sentinel may have rewritten)
sub restart {
    my ($self) = @_;
    $self->stop if $self->{pid};
    my $until = time + 5;
    my $err;
    while (1) {
        return $self if eval { $self->_launch; 1 };
        $err = $@;
        # the port can stay busy for a moment after a kill
        last if time > $until || $err !~ /Address already in use/;
        sleep 0.2;
    }
    die $err;
}

sub DESTROY {
    my ($self) = @_;
    return unless $$ == $Owner;
    local ($?, $!, $@);
    $self->stop if $self->{pid};
}

# --------------------------------------------------------------------------
# redis-cli

# the redis-cli arguments for this server, with overrides:
#   tls (0: plain), cacert, cert, key (undef: none), insecure, sni,
#   host, port, socket, user, password (undef: none)
sub cli_args {
    my ($self, %o) = @_;
    my $g = sub { exists $o{$_[0]} ? $o{$_[0]} : $_[1] };
    my @a = ($Cli);
    if (defined(my $s = $g->('socket', undef))) {
        push @a, '-s', $s;
    } else {
        push @a, '-h', $g->('host', $self->{host} // '127.0.0.1'),
                 '-p', $g->('port', $self->{port});
    }
    if ($g->('tls', $self->{tls})) {
        my $p = $self->{pki} || pki();
        push @a, '--tls';
        my $ca = $g->('cacert', $p->{ca});
        push @a, '--cacert', $ca if defined $ca;
        my $cert = $g->('cert', $p->{client_cert});
        my $key = $g->('key', $p->{client_key});
        push @a, '--cert', $cert if defined $cert;
        push @a, '--key', $key if defined $key;
        push @a, '--insecure' if $o{insecure};
        push @a, '--sni', $o{sni} if defined $o{sni};
    }
    my ($user, $pass) = $self->_auth;
    $user = $g->('user', $user);
    $pass = $g->('password', $pass);
    push @a, '--user', $user if defined $user && defined $pass;
    push @a, '--pass', $pass, '--no-auth-warning' if defined $pass;
    return @a;
}

sub _auth {
    my ($self) = @_;
    return @{ $self->{acl_user} } if $self->{acl_user};
    return (undef, $self->{password});
}

# cli(@cmd) -> the reply as redis-cli prints it (CRLF as LF, no trailing
# newline; an error reply is its text, e.g. "NOAUTH ..."; a connection
# failure is redis-cli's message); cli_status() is redis-cli's exit status
sub cli {
    my ($self, @cmd) = @_;
    return scalar $self->cli_as({}, @cmd);
}

sub cli_status { $_[0]{cli_status} }

# cli_as(\%overrides, @cmd): cli with other options (see cli_args), e.g.
# cli_as({ cacert => $pki->{wrong_ca} }, 'PING'); stderr is in the text
sub cli_as {
    my ($self, $o, @cmd) = @_;
    my @argv = ($self->cli_args(%$o), @cmd);
    my $pid = open(my $fh, '-|') // croak "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDERR, '>&', \*STDOUT;
        exec(@argv) or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    CORE::close $fh;
    $self->{cli_status} = $? >> 8;
    $out =~ s/\r\n/\n/g;
    $out =~ s/\s+\z//;
    return $out;
}

# --------------------------------------------------------------------------
# a RESP client in Perl (what the harness itself uses)

# connect(%o) -> an OAuth2Redis::Conn to this server, authenticated unless
# auth => 0; options as cli_args: host, port, socket, tls, cacert, cert,
# key (undef: no client certificate), insecure (no verification; the
# default on an expired => 1 server only, so that the harness can still
# talk to it), verify_name (default localhost), timeout.  A TLS failure
# dies with OpenSSL's reason in parentheses, e.g. "(certificate has
# expired)", or for the wrong CA "(self-signed certificate in certificate
# chain)" (Redis sends its CA along).
sub connect {
    my ($self, %o) = @_;
    my $g = sub { exists $o{$_[0]} ? $o{$_[0]} : $_[1] };
    my $timeout = $o{timeout} // 5;
    my $sock;
    if (defined(my $path = $g->('socket', undef))) {
        $sock = IO::Socket::UNIX->new(Peer => $path, Timeout => $timeout)
            or die "connect $path: $!\n";
    } elsif ($g->('tls', $self->{tls})) {
        require IO::Socket::SSL;
        my $p = $self->{pki} || pki();
        my $cert = $g->('cert', $p->{client_cert});
        my $key = $g->('key', $p->{client_key});
        my $insecure = $g->('insecure', $self->{expired});
        my $verr;
        $sock = IO::Socket::SSL->new(
            PeerHost => $g->('host', $self->{host} // '127.0.0.1'),
            PeerPort => $g->('port', $self->{port}),
            Timeout => $timeout,
            SSL_ca_file => $g->('cacert', $p->{ca}),
            SSL_verify_mode => $insecure ? IO::Socket::SSL::SSL_VERIFY_NONE()
                                         : IO::Socket::SSL::SSL_VERIFY_PEER(),
            SSL_verifycn_scheme => 'default',
            SSL_verifycn_name => $g->('verify_name', 'localhost'),
            SSL_verify_callback => sub {
                my ($ok, $store) = @_;
                if (!$ok && !defined $verr) {
                    my $e = Net::SSLeay::X509_STORE_CTX_get_error($store);
                    $verr = Net::SSLeay::X509_verify_cert_error_string($e);
                }
                return $ok;
            },
            (defined $cert ? (SSL_cert_file => $cert, SSL_key_file => $key)
                           : ()),
        ) or die "TLS connect to $self->{port}: "
                 . IO::Socket::SSL::errstr()
                 . (defined $verr ? " ($verr)" : '') . "\n";
    } else {
        $sock = IO::Socket::IP->new(PeerHost => $g->('host',
                                                     $self->{host}
                                                     // '127.0.0.1'),
                                    PeerPort => $g->('port', $self->{port}),
                                    Timeout => $timeout)
            or die "connect $self->{port}: $@\n";
    }
    binmode $sock;
    my $conn = OAuth2Redis::Conn->new($sock, $timeout);
    if ($o{auth} // 1) {
        my ($user, $pass) = $self->_auth;
        $conn->command('AUTH', (defined $user ? $user : ()), $pass)
            if defined $pass;
    }
    return $conn;
}

# command(@cmd) -> the reply (array ref for arrays, undef for nil); dies
# with "redis error: ..." on an error reply
sub command {
    my ($self, @cmd) = @_;
    my $c = $self->connect;
    my $r = $c->command(@cmd);
    $c->close;
    return $r;
}

# INFO section as a hash
sub info {
    my ($self, $section) = @_;
    my $text = $self->command('INFO', $section // 'default');
    my %h;
    for (split /\r?\n/, $text) {
        next if /^#/ || !/:/;
        my ($k, $v) = split /:/, $_, 2;
        $h{$k} = $v;
    }
    return \%h;
}

sub role { $_[0]->info('replication')->{role} // '' }

# waits until INFO replication says master_link_status:up here, and the
# primary lists this replica as online (it counts for WAIT from then on)
sub wait_link_up {
    my ($self, $timeout) = @_;
    my $until = time + ($timeout // 15);
    my $m = $self->{replicaof};
    while (time < $until) {
        my $i = eval { $self->info('replication') } || {};
        if (($i->{master_link_status} // '') eq 'up') {
            # the primary it was started with may not be its primary now
            return 1 unless $m && $m->running
                            && ($i->{master_port} // 0) == $m->{port};
            my $mi = eval { $m->info('replication') } || {};
            return 1 if grep { /port=$self->{port},.*state=online/ }
                        map { $mi->{$_} } grep { /^slave\d+$/ } keys %$mi;
        }
        sleep 0.02;
    }
    croak "replica :$self->{port}: the link to its primary is not up:\n"
        . _tail("$self->{dir}/redis.log");
}

# wait_replicated([$timeout]): true once every online replica has what was
# written so far, on any connection (within $timeout s, 5 by default).
# WAIT counts from the last write of its own connection, so a PUBLISH
# (replicated, no key) on the same connection comes first.
sub wait_replicated {
    my ($self, $timeout) = @_;
    my $i = $self->info('replication');
    my $n = grep { /state=online/ }
            map { $i->{$_} } grep { /^slave\d+$/ } keys %$i;
    my $c = $self->connect;
    $c->command('PUBLISH', '__oauth2redis__:wait', '1');
    my $r = $c->command('WAIT', $n, int(($timeout // 5) * 1000));
    $c->close;
    return $r >= $n;
}

# ==========================================================================

package OAuth2Redis::Conn;

# One RESP connection: command(@cmd), and read_reply($timeout) for pub/sub.

use strict;
use warnings;
use IO::Select;
use Time::HiRes qw(time);

sub new {
    my ($class, $sock, $timeout) = @_;
    return bless { sock => $sock, buf => '', timeout => $timeout // 5 },
                 $class;
}

sub sock { $_[0]{sock} }

sub encode {
    my @args = @_;
    my $out = '*' . scalar(@args) . "\r\n";
    $out .= '$' . length($_) . "\r\n$_\r\n" for @args;
    return $out;
}

sub send {
    my ($self, @cmd) = @_;
    my $data = encode(@cmd);
    while (length $data) {
        my $n = syswrite $self->{sock}, $data;
        die "write to redis: $!\n" unless defined $n;
        substr($data, 0, $n) = '';
    }
}

# (reply, consumed) from the buffer, or () when incomplete
sub _parse {
    my ($buf, $pos) = @_;
    my $eol = index $buf, "\r\n", $pos;
    return if $eol < 0;
    my $type = substr $buf, $pos, 1;
    my $rest = substr $buf, $pos + 1, $eol - $pos - 1;
    my $next = $eol + 2;
    if ($type eq '+' || $type eq ':') {
        return ($rest, $next);
    }
    if ($type eq '-') {
        return (OAuth2Redis::Error->new($rest), $next);
    }
    if ($type eq '$') {
        return (undef, $next) if $rest < 0;
        return if length($buf) < $next + $rest + 2;
        return (substr($buf, $next, $rest), $next + $rest + 2);
    }
    if ($type eq '*') {
        return (undef, $next) if $rest < 0;
        my @a;
        for (1 .. $rest) {
            my ($v, $p) = _parse($buf, $next);
            return unless defined $p;
            push @a, $v;
            $next = $p;
        }
        return (\@a, $next);
    }
    die "unexpected reply from redis: " . substr($buf, $pos, 80) . "\n";
}

# the next reply; dies after $timeout s (default: the connection's) unless
# $soft, in which case it returns () on time-out
sub read_reply {
    my ($self, $timeout, $soft) = @_;
    my $until = time + ($timeout // $self->{timeout});
    my $sel = IO::Select->new($self->{sock});
    while (1) {
        if (length $self->{buf}) {
            my ($v, $p) = _parse($self->{buf}, 0);
            if (defined $p) {
                substr($self->{buf}, 0, $p) = '';
                return $v;
            }
        }
        my $pending = $self->{sock}->can('pending')
                      && $self->{sock}->pending;
        unless ($pending) {
            my $left = $until - time;
            if ($left <= 0 || !$sel->can_read($left)) {
                return if $soft;
                die "redis: no reply in time\n";
            }
        }
        my $n = sysread $self->{sock}, $self->{buf}, 65536,
                        length $self->{buf};
        if (!$n) {
            next if !defined $n && $!{EAGAIN};
            die "redis closed the connection\n";
        }
    }
}

sub command {
    my ($self, @cmd) = @_;
    $self->send(@cmd);
    my $r = $self->read_reply;
    die "redis error: $$r\n" if ref $r eq 'OAuth2Redis::Error';
    return $r;
}

sub close {
    my ($self) = @_;
    CORE::close $self->{sock} if $self->{sock};
    delete $self->{sock};
}

package OAuth2Redis::Error;

sub new { my ($c, $m) = @_; bless \$m, $c }

# ==========================================================================

package OAuth2Redis::Sentinel;

# A group of Sentinels watching one primary.
#
#   my $s = OAuth2Redis::Sentinel->start(master => $primary, count => 3);
#   $s->ports;  $s->master_addr;  $s->nodes;  $s->stop;
#   $primary->kill;
#   my ($new_port, $switch_time) = $s->wait_for_failover($old_port, 20);

use strict;
use warnings;
use Carp qw(croak);
use Time::HiRes qw(time sleep);
use IO::Select;

# start(%o):
#   master => $primary       an OAuth2Redis (its TLS, password, ACL user
#                            are followed: tls-replication, auth-pass,
#                            auth-user)
#   name => 'mymaster', count => 3, quorum => a majority (2 of 3),
#   down_after => 1000 (ms),
#   failover_timeout => 3000 (ms), parallel_syncs => 1
#   replicas => N            replicas the Sentinels must know before start
#                            returns (default: the primary's
#                            connected_slaves)
#   tls => 0|1               Sentinels listen on TLS only (default: the
#                            primary's); tls_auth_clients as for a server
#   password => 'x'          requirepass of the Sentinels themselves (and
#                            sentinel-pass between them)
#   acl_user => [u, p]       an ACL user of the Sentinels with every right,
#                            the one they use between them (sentinel-user,
#                            sentinel-pass) and the harness's; without
#                            password, their default user is switched off
#   config => [lines]        more lines for every Sentinel
# Returns when every Sentinel knows the others and the replicas
# (SENTINEL ckquorum OK) and is subscribed to (PSUBSCRIBE *) for the
# events.
sub start {
    my ($class, %o) = @_;
    my $m = $o{master} or croak "master => is required";
    croak "Sentinels on TLS watch a TLS primary, and plain ones a plain one"
        if exists $o{tls} && !$o{tls} != !$m->{tls};
    my $self = bless {
        name => $o{name} // 'mymaster',
        count => $o{count} // 3,
        quorum => $o{quorum} // int(($o{count} // 3) / 2) + 1,
        down_after => $o{down_after} // 1000,
        failover_timeout => $o{failover_timeout} // 3000,
        parallel_syncs => $o{parallel_syncs} // 1,
        tls => $o{tls} // $m->{tls},
        password => $o{password},
        acl_user => $o{acl_user},
        master => $m,
        nodes => [],
        events => [],
    }, $class;
    my $replicas = $o{replicas}
        // ($m->info('replication')->{connected_slaves} || 0);
    for my $i (1 .. $self->{count}) {
        push @{ $self->{nodes} }, $self->_start_one($i, %o);
    }
    $self->wait_ready($replicas, $o{ready_timeout} // 20);
    $self->subscribe;
    return $self;
}

sub _start_one {
    my ($self, $i, %o) = @_;
    my $m = $self->{master};
    my $n = $self->{name};
    my $node = bless { sentinel => 1, tls => $self->{tls},
                       password => $self->{password},
                       acl_user => $self->{acl_user},
                       tls_auth_clients => $o{tls_auth_clients} // 'no',
                       dir => OAuth2Redis::_subdir('sentinel') },
                     'OAuth2Redis';
    $node->{pki} = $o{pki} || $m->{pki} || OAuth2Redis::pki()
        if $self->{tls};
    for my $try (1 .. 3) {
        $node->{port} = OAuth2Redis::free_port();
        my $d = $node->{dir};
        my @c = ('# made by t/lib/OAuth2Redis.pm', 'bind 127.0.0.1',
                 'daemonize no', "logfile $d/redis.log", "dir $d",
                 'protected-mode no', 'sentinel announce-ip 127.0.0.1',
                 'sentinel resolve-hostnames no');
        if ($self->{tls}) {
            my $p = $node->{pki};
            push @c, 'port 0', "tls-port $node->{port}",
                     "tls-cert-file $p->{server_cert}",
                     "tls-key-file $p->{server_key}",
                     "tls-ca-cert-file $p->{ca}",
                     "tls-auth-clients $node->{tls_auth_clients}",
                     'tls-replication yes';
        } else {
            push @c, "port $node->{port}";
        }
        if (defined $self->{password}) {
            push @c, "requirepass $self->{password}";
            push @c, "sentinel sentinel-pass $self->{password}"
                unless $self->{acl_user};
        }
        if (my $u = $self->{acl_user}) {
            push @c, "user $u->[0] on >$u->[1] ~* &* +\@all";
            push @c, 'user default off' unless defined $self->{password};
            push @c, "sentinel sentinel-user $u->[0]",
                     "sentinel sentinel-pass $u->[1]";
        }
        push @c, "sentinel monitor $n 127.0.0.1 $m->{port} $self->{quorum}",
                 "sentinel down-after-milliseconds $n $self->{down_after}",
                 "sentinel failover-timeout $n $self->{failover_timeout}",
                 "sentinel parallel-syncs $n $self->{parallel_syncs}";
        my ($mu, $mp) = $m->_auth;
        push @c, "sentinel auth-user $n $mu" if defined $mu && defined $mp;
        push @c, "sentinel auth-pass $n $mp" if defined $mp;
        push @c, @{ $o{config} || [] };
        $node->{conf} = "$d/sentinel.conf";
        OAuth2Redis::_write_file($node->{conf}, join("\n", @c) . "\n");
        return $node if eval { $node->_launch; 1 };
        my $err = $@;
        die $err if $err !~ /Address already in use/;
    }
    croak "redis-sentinel: no port after 3 tries";
}

sub nodes { @{ $_[0]{nodes} } }
sub ports { map { $_->port } @{ $_[0]{nodes} } }
sub addrs { map { $_->addr } @{ $_[0]{nodes} } }
sub name  { $_[0]{name} }

# SENTINEL ... on the first Sentinel that answers (or on node $i)
sub sentinel {
    my ($self, @cmd) = @_;
    my $err;
    for my $n (grep { $_->running } @{ $self->{nodes} }) {
        my $r = eval { $n->command('SENTINEL', @cmd) };
        return $r unless $@;
        $err = $@;
    }
    die $err // "no Sentinel runs\n";
}

# master_addr([$i]) -> (host, port) as SENTINEL get-master-addr-by-name
# answers (on Sentinel $i, or the first that answers)
sub master_addr {
    my ($self, $i) = @_;
    my $r = defined $i
        ? $self->{nodes}[$i]->command('SENTINEL', 'get-master-addr-by-name',
                                      $self->{name})
        : $self->sentinel('get-master-addr-by-name', $self->{name});
    return ref $r ? @$r : ();
}

sub wait_ready {
    my ($self, $replicas, $timeout) = @_;
    my $until = time + ($timeout // 20);
    my $want = $self->{count} - 1;
    my $why = '';
    while (time < $until) {
        my $ok = 1;
        for my $n (@{ $self->{nodes} }) {
            my $r = eval {
                my %m = @{ $n->command('SENTINEL', 'master', $self->{name}) };
                my $q = $n->command('SENTINEL', 'ckquorum', $self->{name});
                $why = ":$n->{port}: $m{'num-other-sentinels'} other "
                     . "Sentinels, $m{'num-slaves'} replicas, $q";
                $m{'num-other-sentinels'} >= $want
                    && $m{'num-slaves'} >= $replicas
                    && $q =~ /^OK/;
            };
            $why = $@ if $@;
            $ok = 0, last unless $r;
        }
        return 1 if $ok;
        sleep 0.1;
    }
    croak "the Sentinels are not ready: $why";
}

# PSUBSCRIBE * on every Sentinel: every event is recorded with the time
# it was read (pump(), wait_for_failover() and events() read them)
sub subscribe {
    my ($self) = @_;
    $self->{subs} = [];
    for my $n (@{ $self->{nodes} }) {
        my $c = $n->connect;
        $c->send('PSUBSCRIBE', '*');
        my $r = $c->read_reply;
        die "PSUBSCRIBE on :$n->{port} failed\n"
            unless ref $r eq 'ARRAY' && $r->[0] eq 'psubscribe';
        $c->{port} = $n->{port};
        push @{ $self->{subs} }, $c;
    }
}

# reads the events that have come, for up to $seconds; returns them
# ([time, sentinel port, channel, message], ...)
sub pump {
    my ($self, $seconds) = @_;
    my @new;
    my $until = time + ($seconds // 0);
    my %by = map { fileno($_->sock) => $_ } @{ $self->{subs} || [] };
    return () unless %by;
    my $sel = IO::Select->new(map { $_->sock } values %by);
    do {
        my @ready = grep { $_->sock->can('pending') && $_->sock->pending }
                    values %by;
        @ready = map { $by{ fileno $_ } }
                 $sel->can_read(_max(0, $until - time)) unless @ready;
        for my $c (@ready) {
            # everything this connection has buffered, without waiting
            while (1) {
                my $m = eval { $c->read_reply(0.001, 1) };
                if ($@) {
                    # that Sentinel went away: stop listening to it
                    $sel->remove($c->sock);
                    delete $by{ fileno $c->sock };
                    $self->{subs} = [ grep { $_ != $c } @{ $self->{subs} } ];
                    $c->close;
                    last;
                }
                last unless defined $m;
                my $t = Time::HiRes::time;
                next unless ref $m eq 'ARRAY' && $m->[0] eq 'pmessage';
                my $e = [ $t, $c->{port}, $m->[2], $m->[3] ];
                push @{ $self->{events} }, $e;
                push @new, $e;
            }
        }
    } while (time < $until && %by);
    sleep _max(0, $until - time) unless %by;
    return @new;
}

sub _max { $_[0] > $_[1] ? $_[0] : $_[1] }

sub events { $_[0]->pump(0); @{ $_[0]{events} } }

# wait_event($channel[, $timeout[, $regex]]) -> the first event
# [time, port, channel, message] of that channel (whose message matches
# $regex) recorded since start, waiting up to $timeout s (10); () on
# time-out.  An event's time is when it was read: exact only for events
# that come while pump() or a wait_* method is reading.
sub wait_event {
    my ($self, $channel, $timeout, $re) = @_;
    my $until = time + ($timeout // 10);
    my $ok = sub { $_[0][2] eq $channel && (!$re || $_[0][3] =~ $re) };
    for my $e (@{ $self->{events} }) {
        return $e if $ok->($e);
    }
    while (time < $until) {
        for my $e ($self->pump(_max(0, _min(0.5, $until - time)))) {
            return $e if $ok->($e);
        }
    }
    return;
}

# wait_for_failover($old_port[, $timeout]) -> ($new_port, $switch_time)
# once a Sentinel has published +switch-master from $old_port; () after
# $timeout s (30).  $switch_time (Time::HiRes) is when the first
# +switch-master was read: call it right after killing the primary.
sub wait_for_failover {
    my ($self, $old_port, $timeout) = @_;
    my $e = $self->wait_event('+switch-master', $timeout // 30,
                              qr/^\Q$self->{name}\E \S+ $old_port \S+ \d+$/)
        or return;
    $self->{switch} = $e;
    my $new = (split / /, $e->[3])[4];
    return ($new, $e->[0]);
}

sub _min { $_[0] < $_[1] ? $_[0] : $_[1] }

# the events of one kind ('+sdown', '+odown', '+tilt', ...)
sub events_of {
    my ($self, $channel) = @_;
    return grep { $_->[2] eq $channel } $self->events;
}

sub stop {
    my ($self) = @_;
    $_->close for @{ $self->{subs} || [] };
    $self->{subs} = [];
    $_->stop for @{ $self->{nodes} };
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    $self->stop;
}

# ==========================================================================

package OAuth2Redis::Topology;

use strict;
use warnings;

sub primary   { $_[0]{primary} }
sub replicas  { @{ $_[0]{replicas} } }
sub replica   { $_[0]{replicas}[ $_[1] // 0 ] }
sub sentinels { $_[0]{sentinels} }
sub servers   { ($_[0]{primary}, @{ $_[0]{replicas} }) }

# the server (primary or replica) listening on $port
sub server_on {
    my ($self, $port) = @_;
    my ($s) = grep { $_->port == $port } $self->servers;
    return $s;
}

sub stop {
    my ($self) = @_;
    $self->{sentinels}->stop if $self->{sentinels};
    $_->stop for reverse $self->servers;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    $self->stop;
}

package OAuth2Redis;

# topology(replicas => 1, sentinels => 3, %o) -> an OAuth2Redis::Topology:
# a primary, replicas (replicaof the primary, link up), and a Sentinel
# group (omitted with sentinels => 0) watching it.  The other options go
# to every server (tls, tls_auth_clients, password, acl_user, unix, ipv6)
# or to the Sentinels (name, quorum, down_after, failover_timeout,
# sentinel_password, sentinel_acl_user: their password and acl_user).
sub topology {
    my (%o) = @_;
    my $nrep = delete $o{replicas} // 1;
    my $nsen = delete $o{sentinels} // 3;
    my %s = map { exists $o{$_} ? ($_ => delete $o{$_}) : () }
            qw(name quorum down_after failover_timeout parallel_syncs
               sentinel_password sentinel_acl_user ready_timeout);
    $s{password} = delete $s{sentinel_password} if exists $s{sentinel_password};
    $s{acl_user} = delete $s{sentinel_acl_user} if exists $s{sentinel_acl_user};
    my $t = bless { replicas => [] }, 'OAuth2Redis::Topology';
    $t->{primary} = OAuth2Redis->start(%o);
    push @{ $t->{replicas} }, OAuth2Redis->start(%o, replicaof => $t->{primary})
        for 1 .. $nrep;
    if ($nsen) {
        $s{quorum} //= int($nsen / 2) + 1;
        $t->{sentinels} = OAuth2Redis::Sentinel->start(
            master => $t->{primary}, count => $nsen, replicas => $nrep,
            (map { $_ => $o{$_} } grep { exists $o{$_} }
                 qw(tls tls_auth_clients pki)),
            %s);
    }
    return $t;
}

1;
