package OAuth2Nginx;

# An nginx of a test's own, for the plain Test::More suites (vectors,
# several instances, TLS and Sentinel set-ups): the module loaded, an http
# block the test writes, a free loopback port.
#
#   my $n = OAuth2Nginx->start(http => $text, workers => 2);
#   my ($status, $headers, $body) = $n->request('/api',
#                                               'Authorization: Bearer x');
#   $n->error_log;      # the lines of its error.log
#   $n->stop;
#
# "$PORT" in the http text is replaced by the instance's port.
#
# Other options of start():
#   main => $text        main-context text (after our load_module line)
#   module_after => 1    our load_module line after the main text instead
#   no_module => 1       no load_module line of ours at all
#   links => { 'modules' => '/usr/share/nginx/modules' }
#                        symbolic links made in the prefix (relative
#                        load_module paths, as Debian's modules-enabled
#                        files have, resolve against the prefix)
#   workers, log_level, port, may_fail
#
# request() gives up on an answer after timeout seconds (10; start's
# timeout option) and returns status 0 then.

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep);

sub free_port {
    my $l = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0',
                                  ReuseAddr => 1) or die "listen: $!";
    return $l->sockport;
}

sub binary { $ENV{TEST_NGINX_BINARY} || 'nginx' }

sub module {
    $ENV{TEST_NGINX_LOAD_MODULES}
        or die "TEST_NGINX_LOAD_MODULES is not set\n";
}

sub start {
    my ($class, %o) = @_;
    my $self = bless { port => $o{port} || free_port(),
                       dir => tempdir(CLEANUP => 1),
                       timeout => $o{timeout} // 10 }, $class;
    my $dir = $self->{dir};
    mkdir "$dir/$_" for qw(conf logs tmp);
    for my $name (sort keys %{ $o{links} // {} }) {
        symlink $o{links}{$name}, "$dir/$name"
            or die "symlink $dir/$name: $!";
    }
    (my $http = $o{http}) =~ s/\$PORT\b/$self->{port}/g;
    my $main = $o{main} // '';
    my $workers = $o{workers} // 1;
    my $level = $o{log_level} // 'info';
    my $load = $o{no_module} ? '' : 'load_module ' . module() . ";\n";
    my $head = $o{module_after} ? "$main\n$load" : "$load$main";
    open my $fh, '>', "$dir/conf/nginx.conf" or die $!;
    print $fh <<"_CONF_";
$head
master_process on;
worker_processes $workers;
daemon on;
error_log logs/error.log $level;
pid logs/nginx.pid;
events { worker_connections 1024; accept_mutex off; }
http {
    access_log off;
    client_body_temp_path tmp;
    proxy_temp_path tmp;
    fastcgi_temp_path tmp;
    uwsgi_temp_path tmp;
    scgi_temp_path tmp;
$http
}
_CONF_
    close $fh;
    my $out = `@{[binary()]} -p $dir/ -c conf/nginx.conf 2>&1`;
    if ($? != 0) {
        return undef if $o{may_fail};
        die "nginx did not start in $dir: $out";
    }
    $self->{started} = 1;
    for (1 .. 50) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $self->{port});
        last if $s;
        sleep 0.05;
    }
    return $self;
}

# The gateway of the Redis suites (t/100 to t/103): the http text
# $redis (where Redis is, how to reach it), oauth2_consent off, and /api
# protected in front of /backend, which answers "client=<client_id>\n"
# (the record's client_id, as the module sends it upstream).  Options as
# for start().
sub gateway {
    my ($class, $redis, %o) = @_;
    return $class->start(%o, http => <<"_EOC_");
    $redis
    oauth2_consent off;
    server {
        listen 127.0.0.1:\$PORT;
        location /api {
            oauth2 on;
            proxy_set_header X-Client-Id \$oauth2_client_id;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /backend { return 200 "client=\$http_x_client_id\\n"; }
    }
_EOC_
}

sub port { $_[0]{port} }
sub dir  { $_[0]{dir} }

# (status, {lowercased header => value}, body); HTTP/1.0, one connection
sub request {
    my ($self, $path, @headers) = @_;
    my $method = 'GET';
    my $body = '';
    if (ref $path eq 'HASH') {
        $method = $path->{method} // 'GET';
        $body = $path->{body} // '';
        $path = $path->{path};
    }
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $self->{port},
                                     Proto => 'tcp', Timeout => 10)
        or return (0, {}, '');
    print $sock "$method $path HTTP/1.0\r\nHost: localhost\r\n",
                map({ "$_\r\n" } @headers),
                (length $body ? "Content-Length: " . length($body) . "\r\n"
                              : ''),
                "\r\n", $body;
    local $/;
    my $res = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm $self->{timeout};
        my $r = <$sock>;
        alarm 0;
        $r;
    } // '';
    alarm 0;
    close $sock;
    my ($head, $content) = split /\r\n\r\n/, $res, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d{3})};
    my %h;
    for my $line (split /\r\n/, $head // '') {
        next unless $line =~ /^([^:]+):\s*(.*)$/;
        my $k = lc $1;
        $h{$k} = exists $h{$k} ? "$h{$k}, $2" : $2;
    }
    return ($status // 0, \%h, $content // '');
}

sub error_log {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/logs/error.log" or return ();
    return <$fh>;
}

sub signal {
    my ($self, $sig) = @_;
    system(binary() . " -p $self->{dir}/ -c conf/nginx.conf -s $sig"
           . " 2>/dev/null");
}

sub stop {
    my ($self) = @_;
    return unless $self->{started};
    my $pidfile = "$self->{dir}/logs/nginx.pid";
    my $pid = -f $pidfile ? do { open my $f, '<', $pidfile; <$f> } : undef;
    $self->signal('stop');
    if ($pid) {
        chomp $pid;
        # gone, or a zombie its new parent has not reaped yet (nginx
        # daemonized: the container's init may take a second or two)
        for (1 .. 100) {
            last unless kill 0, $pid;
            my ($f, $stat);
            $stat = <$f> if open $f, '<', "/proc/$pid/stat";
            last if !defined $stat || $stat =~ /^\d+ \(.*\) Z/s;
            sleep 0.05;
        }
    }
    $self->{started} = 0;
}

sub DESTROY { $_[0]->stop }

1;
