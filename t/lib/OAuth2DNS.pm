package OAuth2DNS;

# A DNS server of a test's own, for nginx's resolver: answers A queries
# for the names it is given (TTL 1 s), NXDOMAIN for anything else.  The
# answers can be changed while it runs (they are read from a file).
#
#   my $dns = OAuth2DNS->start('redis.test' => '127.0.0.1');
#   $dns->port;                          # resolver 127.0.0.1:PORT ...;
#   $dns->set('redis.test' => '127.0.0.2');
#   $dns->stop;

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();

sub start {
    my ($class, %names) = @_;
    my $self = bless { dir => tempdir(CLEANUP => 1) }, $class;
    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0',
                                     Proto => 'udp')
        or die "udp: $!";
    $self->{port} = $sock->sockport;
    $self->set(%names);
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(TERM INT HUP);
        $self->_serve($sock);
        POSIX::_exit(0);
    }
    close $sock;
    $self->{pid} = $pid;
    $self->{owner} = $$;
    return $self;
}

sub port { $_[0]{port} }

sub set {
    my ($self, %names) = @_;
    open my $fh, '>', "$self->{dir}/names.tmp" or die $!;
    print $fh "$_ $names{$_}\n" for keys %names;
    close $fh;
    rename "$self->{dir}/names.tmp", "$self->{dir}/names" or die $!;
}

sub _names {
    my ($self) = @_;
    my %n;
    open my $fh, '<', "$self->{dir}/names" or return %n;
    while (<$fh>) {
        my ($k, $v) = split;
        $n{lc $k} = $v;
    }
    return %n;
}

sub _serve {
    my ($self, $sock) = @_;
    while (1) {
        my $peer = $sock->recv(my $q, 512);
        next unless defined $peer && length $q > 12;
        my ($id, $flags, $qd) = unpack 'n n n', $q;
        my $p = 12;
        my @labels;
        while ($p < length $q) {
            my $len = ord substr($q, $p, 1);
            $p++;
            last if $len == 0;
            push @labels, substr($q, $p, $len);
            $p += $len;
        }
        my ($qtype, $qclass) = unpack 'n n', substr($q, $p, 4);
        my $question = substr($q, 12, $p + 4 - 12);
        my %names = $self->_names;
        my $ip = $names{ lc join '.', @labels };
        my ($rcode, $an, $answer) = (3, 0, '');
        if (defined $ip) {
            $rcode = 0;
            if ($qtype == 1) {
                $an = 1;
                $answer = pack('n n n N n', 0xc00c, 1, 1, 1, 4)
                          . pack('C4', split /\./, $ip);
            }
        }
        my $r = pack('n n n n n n', $id, 0x8180 | $rcode, 1, $an, 0, 0)
                . $question . $answer;
        $sock->send($r, 0, $peer);
    }
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid} && $$ == $self->{owner};
    kill 'TERM', $self->{pid};
    waitpid($self->{pid}, 0);
    delete $self->{pid};
}

sub DESTROY { $_[0]->stop }

1;
