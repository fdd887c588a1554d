package Test::Nginx::MiniUtil;

# Private engine behind our subset Test::Nginx::Socket.  See the POD in
# Test/Nginx/Socket.pm for the list of supported sections.  Semantics follow
# openresty/test-nginx (Test::Nginx::Util + Test::Nginx::Socket); the code is
# an independent implementation.

use strict;
use warnings;

use Exporter 'import';
use Test::More ();
use Test::LongString ();
use Text::Diff ();
use List::Util qw(shuffle min);
use Scalar::Util qw(looks_like_number);
use File::Spec ();
use File::Path qw(make_path remove_tree);
use File::Temp ();
use IO::Socket::INET ();
use IO::Select ();
use POSIX qw(SIGQUIT SIGTERM SIGKILL);
use Time::HiRes qw(sleep time);

our @EXPORT = qw(
    run_tests repeat_each no_shuffle master_on master_off
    master_process_enabled workers worker_connections log_level
    no_long_string no_root_location add_block_preprocessor
    add_response_body_check add_cleanup_handler env_to_nginx
    config_preamble server_name server_addr server_root html_dir
    server_port server_port_for_client timeout check_accum_error_log
    is_str bail_out
);

# ---------------------------------------------------------------- settings
our $NginxBinary         = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $Workers             = 1;
our $WorkerConnections   = 64;
our $LogLevel            = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcess       = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $ServerAddr          = '127.0.0.1';
our $ServerName          = 'localhost';
our $ServerPort          = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $Timeout             = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $Sleep               = $ENV{TEST_NGINX_SLEEP} || 0.015;
# TEST_NGINX_USE_VALGRIND: nginx runs under valgrind memcheck (one process,
# in the foreground); after each block a test fails on a definite leak or
# a memory error whose stack names one of the words of
# TEST_NGINX_VALGRIND_FRAMES (default: every frame)
our $UseValgrind         = $ENV{TEST_NGINX_USE_VALGRIND};
our $ValgrindFrames      = $ENV{TEST_NGINX_VALGRIND_FRAMES} // '';
our $NoShuffle           = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $CheckAccumErrLog    = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $LoadModules         = $ENV{TEST_NGINX_LOAD_MODULES};
our $RepeatEach          = 1;
our $NoLongString;
our $NoRootLocation      = 0;
our $ConfigPreamble      = '';
our (@BlockPreprocessors, @ResponseBodyChecks, @CleanupHandlers, @EnvToNginx);
our ($NginxVersion, $PrevConfig, $ErrLogFilePos, $NginxPid);

our $ServRoot   = $ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot');
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
our $LogDir     = "$ServRoot/logs";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $ConfFile   = "$ConfDir/nginx.conf";
our $PidFile    = "$LogDir/nginx.pid";

# Sections this subset implements.  Anything else written in a block makes
# the block fail, so a test can never silently check nothing.  Test files
# whose add_block_preprocessor() consumes custom sections can whitelist them:
#   push @Test::Nginx::Socket::ExtraSections, 'my_section';
my %Supported = map { $_ => 1 } qw(
    config http_config main_config post_main_config server_name init
    user_files log_level request raw_request raw_request_middle_delay
    more_headers timeout abort shutdown ignore_response wait
    error_code error_code_like response_headers response_headers_like
    raw_response_headers_like raw_response_headers_unlike response_body
    response_body_like response_body_unlike response_body_filters
    error_log no_error_log grep_error_log grep_error_log_out access_log
    no_access_log must_die skip_nginx skip_eval todo no_check_leak
    ONLY LAST SKIP
);

# --------------------------------------------------------- exported setters
sub _getset { my $ref = shift; $$ref = shift if @_; return $$ref }
sub repeat_each            { _getset(\$RepeatEach, @_) }
sub workers                { _getset(\$Workers, @_) }
sub worker_connections     { _getset(\$WorkerConnections, @_) }
sub log_level              { _getset(\$LogLevel, @_) }
sub server_name            { _getset(\$ServerName, @_) }
sub server_addr            { _getset(\$ServerAddr, @_) }
sub server_port            { _getset(\$ServerPort, @_) }
sub server_port_for_client { _getset(\$ServerPortForClient, @_) }
sub timeout                { _getset(\$Timeout, @_) }
sub config_preamble ($)    { $ConfigPreamble = shift }
sub no_shuffle ()          { $NoShuffle = 1 }
sub no_long_string ()      { $NoLongString = 1 }
sub no_root_location ()    { $NoRootLocation = 1 }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub master_on ()           { $MasterProcess = 'on' }
sub master_off ()          { $MasterProcess = 'off' }
sub master_process_enabled {
    return $MasterProcess unless @_;
    $MasterProcess = shift() ? 'on' : 'off';
}
sub html_dir ()            { $HtmlDir }
sub server_root ()         { $ServRoot }
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_response_body_check ($) { push @ResponseBodyChecks, shift }
sub add_cleanup_handler ($) { unshift @CleanupHandlers, shift }

sub env_to_nginx {
    die "env_to_nginx: no arguments specified\n" unless @_;
    for my $v (@_) {
        die "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub is_str {
    my ($got, $expected, $desc) = @_;
    return Test::More::like($got, $expected, $desc) if ref $expected eq 'Regexp';
    my $ok = $NoLongString ? Test::More::is($got, $expected, $desc)
                           : Test::LongString::is_string($got, $expected, $desc);
    if (!$ok && defined $got && defined $expected
        && ($got =~ /\n./s || $expected =~ /\n./s))
    {
        Test::More::diag("diff (- expected, + got):\n"
            . Text::Diff::diff(\$expected, \$got, { STYLE => 'Unified' }));
    }
    return $ok;
}

sub bail_out {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

# ------------------------------------------------------------------ helpers
sub _fail_hard {    # a failure that must not be mistaken for a plan problem
    Test::More->builder->no_ending(1);
    Test::More::fail($_[0]);
}

sub parse_time {
    my $t = shift;
    return undef unless defined $t;
    if ($t =~ s/([^_a-zA-Z])ms$/$1/) { $t /= 1000 }
    else { $t =~ s/([^_a-zA-Z])s$/$1/ }
    return $t;
}

sub fmt_str {
    my $s = shift;
    chomp $s;
    $s =~ s/"/\\"/g; $s =~ s/\r/\\r/g; $s =~ s/\n/\\n/g;
    return $s;
}

sub is_running {    # zombies (not reaped by a lazy pid 1) count as gone
    my $pid = shift;
    return 0 unless $pid && kill(0, $pid);
    my $stat = read_file_str("/proc/$pid/stat") // '';
    return $stat !~ /^\d+ \(.*\) Z/s;
}

sub read_file_str {
    my $f = shift;
    open my $in, '<', $f or return undef;
    local $/;
    my $s = <$in>;
    return $s;
}

sub get_nginx_version {
    my $out = `$NginxBinary -V 2>&1`;
    bail_out("Failed to get the version of nginx ($NginxBinary): "
             . ($out // $!)) if !defined $out || $? != 0;
    return sprintf('%d.%03d%03d', $1, $2, $3)
        if $out =~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)};
    bail_out("Failed to parse the output of \"nginx -V\": $out");
}

# Replace $TEST_NGINX_* by environment values (TEST_NGINX_RAND_PORT_N by a
# free random port, stable within the block); an undefined variable is fatal.
sub expand_env {
    my ($text, $rand_ports) = @_;
    return undef unless defined $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        if ($var =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
            $rand_ports->{$var} //= rand_port($rand_ports);
        } else {
            die "No environment $var defined.\n" unless defined $ENV{$var};
            $ENV{$var};
        }
    }eg;
    return $text;
}

sub rand_port {
    my $used = shift;
    my %used = map { $_ => 1 } $ServerPort, values %$used;
    for (1 .. 1000) {
        my $port = int(rand 63550) + 1985;
        next if $used{$port};
        my $s = IO::Socket::INET->new(LocalAddr => $ServerAddr,
                                      LocalPort => $port, Proto => 'tcp');
        if ($s) { close $s; return $port }
    }
    die "Cannot find an available listening port number.\n";
}

# -------------------------------------------------------- server management
sub pid_from_file {
    my $s = read_file_str($PidFile);
    return undef unless defined $s;
    $s =~ s/\s+//g;
    return $s =~ /^\d+$/ ? $s : undef;
}

sub stop_nginx {
    my $pid = pid_from_file() // $NginxPid;
    undef $NginxPid;
    return unless is_running($pid);
    # never signal an unrelated process that reused a stale pid
    my $cmdline = read_file_str("/proc/$pid/cmdline");
    return if defined $cmdline && $cmdline !~ /nginx/;
    kill SIGQUIT, $pid;
    my $left = $Timeout;
    while ($left > 0 && is_running($pid)) { sleep 0.02; $left -= 0.02 }
    for (1 .. 20) {
        last unless is_running($pid);
        kill SIGTERM, $pid;
        sleep 0.05;
    }
    if (is_running($pid)) {
        warn "WARNING: killing nginx process $pid with force...\n";
        kill SIGKILL, $pid;
        sleep 0.05;
    }
}

sub cleanup {
    $_->() for @CleanupHandlers;
    @CleanupHandlers = ();
    stop_nginx() unless $ENV{TEST_NGINX_NO_CLEAN};
}

END {
    local $?;
    cleanup();
}

sub setup_server_root {
    remove_tree($ConfDir, $HtmlDir, $LogDir,
                glob("$ServRoot/*_temp"), glob("$ServRoot/*_cache"));
    make_path($LogDir, $HtmlDir, $ConfDir);
    open my $out, '>', "$HtmlDir/index.html"
        or die "Can't open $HtmlDir/index.html for writing: $!\n";
    print $out '<html><head><title>It works!</title></head>'
             . '<body>It works!</body></html>';
    close $out;
}

sub write_user_files {
    my ($block, $rand_ports) = @_;
    my $files = $block->user_files or return;
    if (!ref $files) {
        my @list;
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) { push @list, [$1, '', $2] }
            elsif (@list) { $list[-1][1] .= $line }
        }
        $files = \@list;
    }
    die "user_files: only a string or an ARRAY is accepted\n"
        unless ref $files eq 'ARRAY';
    for my $f (@$files) {
        my ($fname, $body, $date) = @$f;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        make_path($1) if $path =~ m{(.*)/} && !-d $1;
        open my $out, '>', $path or die "Cannot open $path for writing: $!\n";
        binmode $out;
        print $out expand_env($body // '', $rand_ports);
        close $out;
        if ($date) {
            system("TZ=GMT touch -t '$date' '$path'") == 0
                or die "Failed to set the mtime of $path\n";
        }
    }
}

sub write_config_file {
    my ($block, $config, $rand_ports) = @_;
    my $http_config = expand_env($block->http_config // '', $rand_ports);
    my $main_config = $block->main_config // '';
    # like the real one, load_module lines come *after* --- main_config
    $main_config .= join ' ', map { "load_module $_;" } grep { length }
                    split /\s+/, $LoadModules // '';
    $main_config = expand_env($main_config, $rand_ports);
    my $post_main = expand_env($block->post_main_config // '', $rand_ports);
    my $server_name = $block->server_name // $ServerName;
    my $log_level = $block->log_level || $LogLevel;

    # Keep temp files inside the server root (the Debian build points them
    # at /var/lib/nginx) unless the test configures them itself.
    my $temp = '';
    for my $t (qw(client_body proxy fastcgi uwsgi scgi)) {
        $temp .= "    ${t}_temp_path $ServRoot/${t}_temp;\n"
            unless $http_config =~ /\b${t}_temp_path\b/;
    }
    my $env = join '', map { /\s/ ? "env '$_';\n" : "env $_;\n" }
        qw(MOCKEAGAIN_VERBOSE MOCKEAGAIN MOCKEAGAIN_WRITE_TIMEOUT_PATTERN
           LD_PRELOAD LD_LIBRARY_PATH ASAN_OPTIONS), @EnvToNginx;
    my $root_loc = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    my $user = $> == 0 ? "user root;\n" : '';
    my $daemon = $UseValgrind ? 'off' : 'on';
    my $master = $UseValgrind ? 'off' : $MasterProcess;

    open my $out, '>', $ConfFile or die "Can't open $ConfFile for writing: $!\n";
    print $out <<"_EOC_";
worker_processes  $Workers;
daemon $daemon;
master_process $master;
error_log $ErrLogFile $log_level;
pid       $PidFile;
$env
$main_config

http {
    access_log $AccLogFile;
    default_type text/plain;
    keepalive_timeout  68;
$temp
$http_config

    server {
        listen          $ServerAddr:$ServerPort;
        server_name     '$server_name';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_loc    }
}

$post_main

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
}
$user
_EOC_
    close $out;
}

# nginx under valgrind, in the background: returns once it answers
sub start_nginx_valgrind {
    my $errf = File::Temp->new(UNLINK => 0);
    unlink "$LogDir/valgrind.log";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $errf->filename;
        exec('valgrind', '--tool=memcheck', '--leak-check=full',
             '--show-leak-kinds=definite', '--num-callers=30',
             "--log-file=$LogDir/valgrind.log",
             $NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile)
            or POSIX::_exit(127);
    }
    for (1 .. 300) {
        my $s = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                      PeerPort => $ServerPort, Proto => 'tcp');
        if ($s) {
            close $s;
            $NginxPid = $pid;
            return (0, '');
        }
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            return ($? || 256, read_file_str($errf->filename) // '');
        }
        sleep 0.05;
    }
    return (256, "nginx under valgrind did not answer in 15 s\n");
}

# after a block under valgrind: stop nginx, read the report
sub check_valgrind {
    my $name = shift;
    my $pid = $NginxPid;
    undef $NginxPid;
    return unless $pid;
    kill SIGQUIT, $pid;
    waitpid($pid, 0);
    my $log = read_file_str("$LogDir/valgrind.log") // '';
    my @records = split /\n==\d+== \n/, $log;
    my @bad;
    for my $rec (@records) {
        next unless $rec =~ /definitely lost in loss record/
                    || $rec =~ /Invalid (read|write|free)|uninitialised|Mismatched free/;
        next if $ValgrindFrames ne ''
                && !grep { index($rec, $_) >= 0 } split ' ', $ValgrindFrames;
        push @bad, $rec;
    }
    Test::More::is(scalar(@bad), 0,
                   "$name - valgrind: no leak or memory error")
        or Test::More::diag(join "\n", @bad[0 .. ($#bad < 2 ? $#bad : 2)]);
}

# Runs nginx; returns (exit status, captured stderr).
sub start_nginx {
    return start_nginx_valgrind() if $UseValgrind;

    my $errf = File::Temp->new;
    my $cmd = "$NginxBinary -p $ServRoot/ -c $ConfFile >/dev/null 2>" . $errf->filename;
    my ($status, $stderr);
    for my $try (1 .. 20) {
        system($cmd);
        $status = $?;
        $stderr = read_file_str($errf->filename) // '';
        # the previous instance may still hold the port for a moment
        last unless $status != 0 && $stderr =~ /Address already in use/;
        sleep 0.1 * $try;
    }
    $NginxPid = $status == 0 ? wait_for_pid() : undef;
    return ($status, $stderr);
}

sub wait_for_pid {
    for (1 .. 100) {
        my $pid = pid_from_file();
        return $pid if $pid;
        sleep 0.01;
    }
    return undef;
}

# A readable report for an nginx that refused to start: its stderr, the
# offending nginx.conf line(s) and the start of the error log.
sub start_failure_report {
    my ($status, $stderr) = @_;
    my $msg = "nginx failed to start (exit code " . ($status >> 8) . ")\n"
            . "command: $NginxBinary -p $ServRoot/ -c $ConfFile\n$stderr";
    if ($stderr =~ /\Q$ConfFile\E:(\d+)/) {
        my $n = $1;
        my @conf = split /\n/, read_file_str($ConfFile) // '';
        for my $i (($n > 3 ? $n - 3 : 1) .. min($n + 2, scalar @conf)) {
            $msg .= sprintf("%s%4d| %s\n", $i == $n ? '>>' : '  ', $i, $conf[$i - 1]);
        }
    }
    return $msg;
}

# ---------------------------------------------------------------- run loop
sub run_tests () {
    $NginxVersion = get_nginx_version();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;
    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;
    for my $block (@blocks) {
        my @bad = bad_sections($block);    # check what the author wrote
        $_->($block) for @BlockPreprocessors;
        $block->set_value(name => "$0 " . $block->name);
        if (@bad) {
            _fail_hard($block->name . " - " . join("\n", @bad) . "\n");
            next;
        }
        my $ok = eval { run_block($block); 1 };
        _fail_hard($block->name . " - $@") unless $ok;
    }
    cleanup();
}

sub bad_sections {
    my $block = shift;
    no warnings 'once';
    my %extra = map { $_ => 1 } @Test::Nginx::Socket::ExtraSections;
    my (@bad, @unknown);
    my $map = $block->{_section_map} ? $block->{_section_map}[0] : {};
    for my $sec (@{ $block->{_section_order} ? $block->{_section_order}[0] : [] }) {
        push @unknown, $sec unless $Supported{$sec} || $extra{$sec};
        # Test::Base's eval filter returns $@ as the value when the code dies
        my $val = $block->{$sec} ? $block->{$sec}[0] : undef;
        if (($map->{$sec}{filters} // '') =~ /\beval\b/ && defined $val
            && !ref $val && $val =~ /at \(eval \d+\) line \d+/)
        {
            push @bad, "the eval filter of --- $sec died: $val";
        }
    }
    push @bad, "unknown or unsupported section(s): --- " . join(', --- ', @unknown)
        . " (not implemented by this Test::Nginx::Socket subset; see "
        . "util/test-nginx/lib/Test/Nginx/Socket.pm)" if @unknown;
    return @bad;
}

sub run_block {
    my $block = shift;
    my $name = $block->name;
    my $rand_ports = {};
    my $config = expand_env(scalar $block->config, $rand_ports);

    my ($should_skip, $tests_to_skip, $skip_reason, $should_todo, $todo_reason);
    if (defined(my $s = $block->skip_eval)) {
        $s =~ /^\s*(\d+)\s*:\s*(.*)/s or die "Invalid --- skip_eval spec: $s\n";
        $tests_to_skip = $1; $skip_reason = 'skip_eval';
        $should_skip = eval $2;
        die "skip_eval - failed to eval the Perl code \"$2\": $@" if $@;
    }
    if (defined(my $s = $block->skip_nginx)) {
        $s =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*$/
            or die "Invalid --- skip_nginx spec: $s\n";
        $tests_to_skip = $1;
        my ($op, $ver) = ($2, sprintf('%d.%03d%03d', $3, $4, $5));
        $skip_reason = $6 || "nginx version $op $3.$4.$5";
        $should_skip = 1 if eval "$NginxVersion $op $ver";
    }
    if (defined(my $s = $block->todo)) {
        $s =~ /^\s*(\d+)\s*:\s*(.*)/s or die "Invalid --- todo spec: $s\n";
        ($should_todo, $tests_to_skip, $todo_reason) = (1, $1, $2);
    }

    my $started;
    if (!defined $config) {
        # the real one keeps the running nginx (and its config) as it is
        die "No '--- config' section specified and could not get previous one.\n"
            unless defined $PrevConfig;
    } elsif (!$should_skip) {
        $PrevConfig = $config;
        stop_nginx();
        setup_server_root();
        write_user_files($block, $rand_ports);
        write_config_file($block, $config, $rand_ports);
        if (defined $block->must_die) {
            return run_must_die($block);
        }
        my ($status, $stderr) = start_nginx();
        if ($status != 0) {
            _fail_hard("$name - " . start_failure_report($status, $stderr));
            return;
        }
        warn $stderr if length $stderr;
        sleep $Sleep;
        $started = 1;
    }

    # --- init runs after nginx is up, once, before all repeated requests
    if ($block->init) {
        eval "package Test::Nginx::Util;\n#line 1 \"--- init\"\n"
             . $block->init . "\n;1" or die "init failed: $@";
    }

    $ErrLogFilePos = 0;
    for my $i (0 .. $RepeatEach - 1) {
        write_user_files($block, $rand_ports) if $i > 0;
        if ($should_skip && defined $tests_to_skip) {
            SKIP: {
                Test::More::skip("$name - " . ($skip_reason // 'various reasons'),
                                 $tests_to_skip);
            }
        } elsif ($should_todo) {
            TODO: { Test::More::todo_skip("$name - $todo_reason", $tests_to_skip) }
        } else {
            run_requests($block, $i);
        }
    }

    if ($started && $UseValgrind) {
        check_valgrind($name);
        return;
    }

    # stricter than the real one: an nginx that died under us is a failure
    if ($started && $NginxPid && !is_running($NginxPid)) {
        my $log = read_file_str($ErrLogFile) // '';
        my @tail = (split /\n/, $log)[-15 .. -1];
        _fail_hard("$name - the nginx process $NginxPid is gone (crashed?); "
                   . "error.log tail:\n" . join("\n", grep { defined } @tail));
    }
}

sub run_must_die {
    my $block = shift;
    my $name = $block->name;
    my $must_die = $block->must_die;
    $ErrLogFilePos = 0;
    for my $i (0 .. $RepeatEach - 1) {
        my ($status, $stderr) = start_nginx();
        if (looks_like_number($must_die)) {
            Test::More::is($must_die, $status >> 8,
                           "$name - die with the expected exit code");
        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }
        check_error_log($block, $i, 0);
        if ($status == 0) {
            warn "WARNING: $name - nginx must die but it does not; killing it (req $i)\n";
            stop_nginx();
        }
    }
}

# -------------------------------------------------------- request building
sub parse_more_headers {
    my $in = shift;
    my ($out, $chunked) = ('', 0);
    for my $line (split /\n+/, $in) {
        next if $line =~ /^\s*#/;
        my ($key, $val) = split /:\s*/, $line, 2;
        $val //= '';
        $chunked = 1 if lc $key eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $chunked);
}

# "METH [URI [PROTO]]\n[body]" -> complete HTTP request, like the real one:
# Host + Connection: close unless given, more_headers, Content-Length for a
# (trimmed) body.
sub build_request {
    my ($req, $hdr, $chunked) = @_;
    my ($first, $content) = split /\n/, $req, 2;
    $first //= '';
    die "Request line should be non-empty\n" unless length $first;
    $first =~ /^\s*(\S+) *(?:(\S+) *)?(?:(\S+) *)?\s*$/
        or die "Request line is not valid. Should be 'meth [url [version]]' "
             . "but got \"$first\".\n";
    my ($meth, $url, $ver) = ($1, $2 // '/', $3 // 'HTTP/1.1');
    $content //= '';
    my $len = '';
    if (!$chunked && $content ne '' && $hdr !~ /(?:^|\n)Content-Length:/) {
        $content =~ s/^\s+|\s+$//gs;
        $len = "Content-Length: " . length($content) . "\r\n";
    }
    my $headers = '';
    $headers .= "Host: $ServerName\r\n" if $hdr !~ /(?:^|\n)Host:/msi;
    $headers .= "Connection: close\r\n" if $hdr !~ /(?:^|\n)Connection/msi;
    return "$meth $url $ver\r\n$headers$hdr$len\r\n$content";
}

# Returns a list of requests; each request is a list of packets
# ({value => bytes, delay_before => secs}).
sub requests_from_block {
    my $block = shift;
    if (defined(my $raw = $block->raw_request)) {
        my @pk = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        return [ map { ref $_ eq 'HASH' ? $_ : { value => $_ } } @pk ];
    }
    my $request = $block->request;
    die "request empty (no --- request or --- raw_request section)\n"
        unless defined $request;
    my $more = $block->more_headers // '';
    my $hdr_for = sub {
        my $i = shift;
        return parse_more_headers($more) unless ref $more eq 'ARRAY';
        die "--- more_headers lacks data for request $i\n" unless defined $more->[$i];
        return parse_more_headers($more->[$i]);
    };
    if (!ref $request) {
        1 while $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;    # leading comments
        return [{ value => build_request($request, $hdr_for->(0)) }];
    }
    die "invalid --- request: MUST be a string or an array of requests\n"
        unless ref $request eq 'ARRAY';
    my @reqs;
    for my $i (0 .. $#$request) {
        die "request $i: splitting a --- request into packets is not supported "
          . "by this subset (use --- raw_request)\n" if ref $request->[$i];
        push @reqs, [{ value => build_request($request->[$i], $hdr_for->($i)) }];
    }
    return @reqs;
}

# ------------------------------------------------------------ HTTP client
sub connect_server {
    my $name = shift;
    my $err;
    for my $try (1 .. 25) {
        my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
            PeerPort => $ServerPortForClient, Proto => 'tcp', Timeout => $Timeout);
        return $sock if $sock;
        $err = $!;
        if ($NginxPid && !is_running($NginxPid)) {
            $err .= " (nginx process $NginxPid is gone)";
            last;
        }
        my $wait = ($Sleep + $Sleep * $try) * $try / 2;
        sleep($wait > 1 ? 1 : $wait);
    }
    _fail_hard("$name - Can't connect to $ServerAddr:$ServerPortForClient: "
               . "$err (aborted)\n");
    return undef;
}

# Sends the packets and reads until the server closes the connection.  The
# timeout applies to each wait for I/O, like the real one.
sub send_request {
    my ($block, $packets, $timeout) = @_;
    my $name = $block->name;
    my $all = join '', map { $_->{value} } @$packets;
    my $head = $all =~ /^\s*HEAD\s+/ ? 1 : 0;
    my $sock = connect_server($name) or return (undef, $head);
    $sock->blocking(0);
    local $SIG{PIPE} = 'IGNORE';
    my @queue = @$packets;
    my $buf = (shift @queue)->{value};
    my ($off, $resp, $writing) = (0, '', 1);
    my $sel = IO::Select->new($sock);
    while (1) {
        my ($r, $w) = IO::Select->select($sel, $writing ? $sel : undef, undef, $timeout);
        if (!$r && !$w) {
            _fail_hard("ERROR: client socket timed out - $name\n")
                unless defined $block->abort;
            last;
        }
        if ($w && @$w) {
            my $n = syswrite($sock, $buf, length($buf) - $off, $off);
            if (!defined $n) {
                next if $!{EAGAIN} || $!{EWOULDBLOCK};
                warn "write failed: $!\n";
                $resp = "write failed: $!" if $resp eq '';
                last;
            }
            $off += $n;
            if ($off >= length $buf) {
                if (my $next = shift @queue) {
                    my $delay = $next->{delay_before} // $block->raw_request_middle_delay;
                    sleep $delay if $delay;
                    ($buf, $off) = ($next->{value}, 0);
                } else {
                    $writing = 0;
                    if (defined(my $how = $block->shutdown)) {
                        shutdown($sock, $how =~ /^\s*$/ ? 1 : $how);
                    }
                }
            }
        }
        if ($r && @$r) {
            my $n = sysread($sock, my $chunk, 65536);
            if (!defined $n) {
                next if $!{EAGAIN} || $!{EWOULDBLOCK};
                warn "WARNING: $name - HTTP response read failure: $!\n";
                last;
            }
            last if $n == 0;
            $resp .= $chunk;
        }
    }
    close $sock;
    return ($resp, $head);
}

# Parses a raw response (status line, headers, Content-Length or chunked
# body).  Returns ($res, $leftover); $res is undef on a broken chunked body.
sub parse_response {
    my ($name, $raw, $head) = @_;
    my $res = { code => undef, headers => [], raw_headers => '', body => '' };
    $res->{raw_headers} = $1 if $raw =~ /(.*?\r\n)\r\n/s;
    my ($hpart, $body) = split /\r?\n\r?\n/, $raw, 2;
    my @lines = split /\r?\n/, $hpart // '';
    my $status = shift(@lines) // '';
    my ($proto, $code) = $status =~ /^\d{3} / ? (undef, $status =~ /^(\d+)/)
                                              : split ' ', $status;
    $res->{code} = $code if defined $code && $code =~ /^\d+$/;
    for my $l (@lines) {
        if ($l =~ /^[ \t]/ && @{ $res->{headers} }) {    # obsolete line folding
            $l =~ s/^\s+//;
            $res->{headers}[-1][1] .= " $l";
        } elsif ($l =~ /^([^\s:]+)\s*:\s*(.*)$/) {
            push @{ $res->{headers} }, [$1, $2];
        }
    }
    $res->{body} = $body // '';
    my $left;
    return ($res) if $res->{code} && ($res->{code} == 304 || $res->{code} == 101);
    my $te = resp_header($res, 'Transfer-Encoding');
    my $len = resp_header($res, 'Content-Length');
    if (defined $te && $te eq 'chunked') {
        my ($src, $decoded) = ($res->{body}, '');
        while (1) {
            if ($src =~ /\G0[ \t]*\r\n\r\n/gc) {
                $left = $1 if $src =~ /\G(.+)/gcs;
                last;
            }
            if ($src =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*\r\n/gc) {
                my $size = hex $1;
                if (length($src) - pos($src) < $size) {
                    _fail_hard("$name - invalid chunked data received "
                               . "(not enough octets for the data section)");
                    return (undef);
                }
                $decoded .= substr($src, pos($src), $size);
                pos($src) += $size;
                if ($src !~ /\G\r\n/gc) {
                    _fail_hard("$name - invalid chunked data received (expected CRLF).");
                    return (undef);
                }
            } elsif ($src =~ /\G(.+)/gcs) {
                _fail_hard("$name - invalid chunked body received: $1");
                return (undef);
            } else {
                _fail_hard("$name - no last chunk found - $src");
                return (undef);
            }
        }
        $res->{body} = $decoded;
    } elsif (defined $len && $len =~ /^\d+$/) {
        if (length $res->{body} < $len) {
            warn "WARNING: $name - response body truncated: $len expected, but got "
                 . length($res->{body}) . "\n" unless $head;
        } elsif (length $res->{body} > $len) {
            $left = substr($res->{body}, $len);
            $res->{body} = substr($res->{body}, 0, $len);
        }
    }
    return ($res, $left);
}

# Like HTTP::Headers->header in scalar context: case-insensitive name,
# repeated headers joined with ", ", undef when absent.
sub resp_header {
    my ($res, $key) = @_;
    return undef unless $res;
    my @v = map { $_->[1] } grep { lc $_->[0] eq lc $key } @{ $res->{headers} };
    return @v ? join(', ', @v) : undef;
}

# ------------------------------------------------------------------ checks
sub indexed {
    my ($name, $value, $idx, $need_array) = @_;
    if (ref $value eq 'ARRAY') {
        die "SHOULD NOT HAPPEN: idx != 0 and don't need array.\n"
            if !$need_array && $idx != 0;
        return $value->[$idx];
    }
    die "You asked for many requests, the expected results should be arrays as well.\n"
        if $need_array;
    return $value;
}

sub run_requests {
    my ($block, $rep) = @_;
    my $name = $block->name;
    my @reqs = requests_from_block($block);
    my $timeout = parse_time(scalar $block->timeout) // $Timeout;
    my $need_array = @reqs > 1;
    for my $idx (0 .. $#reqs) {
        my ($raw, $head) = send_request($block, $reqs[$idx], $timeout);
        if (!defined $block->ignore_response) {
            my ($res, $left) = parse_response($name, $raw // '', $head);
            if (defined $left) {
                $left =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
                warn "WARNING: $name - unexpected extra bytes after last chunk in "
                   . "response: \"$left\"\n";
            }
            check_response($block, $res, $idx, $rep, $need_array);
        }
        if ($idx < $#reqs) {
            sleep $block->wait if $block->wait;
            check_error_log($block, $rep, $need_array);
            check_access_log($block, $rep) unless defined $block->ignore_response;
        }
    }
    sleep $block->wait if $block->wait;
    check_error_log($block, $rep, $need_array);
    check_access_log($block, $rep) unless defined $block->ignore_response;
}

sub check_response {
    my ($block, $res, $idx, $rep, $need_array) = @_;
    my $name = $block->name;
    my $code = ($res && $res->{code}) || '';
    my $raw_headers = $res ? $res->{raw_headers} : '';

    # status code (always checked; 200 by default)
    if (defined $block->error_code_like) {
        my $pat = indexed($name, $block->error_code_like, $idx, $need_array);
        Test::More::like($code, qr/$pat/sm, "$name - status code ok");
    } elsif (defined $block->error_code) {
        Test::More::is($code, indexed($name, $block->error_code, $idx, $need_array),
                       "$name - status code ok");
    } else {
        Test::More::is($code, 200, "$name - status code ok");
    }

    if (defined $block->raw_response_headers_like) {
        my $pat = indexed($name, $block->raw_response_headers_like, $idx, $need_array);
        Test::More::like($raw_headers, qr/$pat/s, "$name - raw resp headers like");
    }
    if (defined $block->raw_response_headers_unlike) {
        my $pat = indexed($name, $block->raw_response_headers_unlike, $idx, $need_array);
        Test::More::unlike($raw_headers, qr/$pat/s, "$name - raw resp headers unlike");
    }

    # The real one ignores response_headers_like when response_headers is
    # present; checking both here is stricter and thus still compatible.
    if (defined $block->response_headers) {
        my $spec = indexed($name, $block->response_headers, $idx, $need_array);
        for my $h (parse_header_spec($spec)) {
            my ($key, $val) = @$h;
            if (!defined $val) {
                Test::More::unlike($raw_headers, qr/^\s*\Q$key\E\s*:/msi,
                                   "$name - header $key not present in the raw headers");
                next;
            }
            $val =~ s/\$ServerPort\b/$ServerPort/g;
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            Test::More::is(resp_header($res, $key) // '', $val, "$name - header $key ok");
        }
    }
    if (defined $block->response_headers_like) {
        my $spec = indexed($name, $block->response_headers_like, $idx, $need_array);
        for my $h (parse_header_spec($spec)) {
            my ($key, $val) = @$h;
            die "response_headers_like: '!$key' is not supported, use response_headers\n"
                unless defined $val;
            Test::More::like(resp_header($res, $key) // '', qr/^$val$/,
                             "$name - header $key like ok");
        }
    }

    my $body = $res ? $res->{body} : undef;
    $body = apply_body_filters($block, $body, $idx) if defined $body;
    if (defined $block->response_body) {
        my $expected = indexed($name, $block->response_body, $idx, $need_array);
        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        }
        my $desc = "$name - response_body - response is expected "
                 . "(repeated req $rep, req $idx)";
        if (ref $expected) {
            Test::More::like($body, $expected,
                "$name - response_body - like (repeated req $rep, req $idx)");
        } else {
            is_str($body, $expected, $desc);
        }
    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $pat = indexed($name, $block->${\"response_body_$type"}, $idx, $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        my $summary = $body // '';
        $summary =~ s/^\s+|\s+$//g; $summary =~ s/\s+/ /g;
        my $desc = "$name - response_body_$type - response is expected ($summary)";
        $type eq 'like' ? Test::More::like($body, qr/$pat/s, $desc)
                        : Test::More::unlike($body, qr/$pat/s, $desc);
    }
    $_->($block, $body, $idx, $rep, 0) for @ResponseBodyChecks;
}

# "Name: value" lines -> [name, value]; "!Name" -> [name, undef].
sub parse_header_spec {
    my $spec = shift // '';
    my @out;
    for my $line (split /\n/, $spec) {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        if ($line =~ s/^!\s*//) { push @out, [$line, undef]; next }
        my ($key, $val) = split /\s*:\s*/, $line, 2;
        die "malformed header line \"$line\" (expected \"Name: value\" or \"!Name\")\n"
            unless defined $val;
        push @out, [$key, $val];
    }
    return @out;
}

my %BodyFilters = (
    uc => sub { uc $_[0] }, lc => sub { lc $_[0] },
    ucfirst => sub { ucfirst $_[0] }, lcfirst => sub { lcfirst $_[0] },
    length => sub { length $_[0] },
    md5_hex => sub { require Digest::MD5; Digest::MD5::md5_hex($_[0]) },
    sha1_hex => sub { require Digest::SHA; Digest::SHA::sha1_hex($_[0]) },
);

sub apply_body_filters {
    my ($block, $body, $idx) = @_;
    my $f = $block->response_body_filters;
    return $body unless defined $f;
    if (!ref $f) { $f =~ s/^\s+|\s+$//g; $f = [split /\s+/, $f] }
    $f = [$f] unless ref $f eq 'ARRAY';
    if (ref $f->[0] eq 'ARRAY') {
        $f = $f->[$idx] or die "response_body_filters: no filters for request $idx\n";
    }
    for my $one (@$f) {
        my $code = ref $one eq 'CODE' ? $one : $BodyFilters{$one}
            or die "unknown filter, \"$one\", specified in the "
                 . "--- response_body_filters section\n";
        $body = $code->($body);
    }
    return $body;
}

sub log_lines {
    my $file = shift;
    sleep $Sleep * 3;    # let nginx finish logging (log phase, etc.)
    open my $in, '<', $file or return [];
    if ($file eq $ErrLogFile) {
        seek $in, $ErrLogFilePos, 0 if !$CheckAccumErrLog && $ErrLogFilePos;
        my @lines = <$in>;
        $ErrLogFilePos = tell $in unless $CheckAccumErrLog;
        return \@lines;
    }
    return [<$in>];
}

sub pattern_list {
    my $pats = shift;
    if (!ref $pats) { chomp $pats; return [split /\n+/, $pats] }
    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats];
}

sub line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

# --- error_log / --- no_error_log style checks over a list of log lines
sub check_log_patterns {
    my ($name, $what, $file, $lines, $want, $forbid, $rep) = @_;
    if (defined $want) {
        my $pats = pattern_list($want);
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat && line_matches($line, $pat);
                Test::More::pass("$name - pattern \"$pat\" matches a line in $file (req $rep)");
                undef $pat;
            }
        }
        for my $pat (grep { defined } @$pats) {
            Test::More::fail("$name - pattern \"$pat\" should match a line in $file (req $rep)");
        }
    }
    if (defined $forbid) {
        my $pats = pattern_list($forbid);
        my %found;
        for my $i (0 .. $#$lines) {
            for my $pat (@$pats) {
                next unless line_matches($lines->[$i], $pat);
                Test::More->builder->no_ending(1) if $found{$pat}++;
                my @more = @$lines[$i + 1 .. min($i + 9, $#$lines)];
                Test::More::fail("$name - pattern \"" . fmt_str($pat) . "\" should not "
                    . "match any line in $file but matches line \""
                    . fmt_str($lines->[$i]) . "\" (req $rep)\n" . join('', @more));
            }
        }
        for my $pat (grep { !$found{$_} } @$pats) {
            Test::More::pass("$name - pattern \"" . fmt_str($pat)
                             . "\" does not match a line in $file (req $rep)");
        }
    }
}

sub value_contains {
    my ($val, $pat) = @_;
    return 0 unless defined $val;
    return (grep { value_contains($_, $pat) } @$val) ? 1 : 0 if ref $val eq 'ARRAY';
    return index("$val", $pat) >= 0;
}

sub check_error_log {
    my ($block, $rep, $need_array) = @_;
    my $name = $block->name;
    my $lines;

    my $grep = $block->grep_error_log;
    if (defined $grep) {
        $grep = $grep->[$rep] if ref $grep eq 'ARRAY';
        my $expected = $block->grep_error_log_out;
        die "No --- grep_error_log_out defined but --- grep_error_log is defined\n"
            unless defined $expected;
        $expected = $expected->[$rep] if ref $expected eq 'ARRAY';
        $lines //= log_lines($ErrLogFile);
        my $out = '';
        for my $line (@$lines) {
            if (ref $grep ? $line =~ $grep : $line =~ /\Q$grep\E/) {
                $out .= "$&\n" if $& !~ /\n/;
            }
        }
        is_str($out, $expected, "$name - grep_error_log_out (req $rep)");
    } elsif (defined $block->grep_error_log_out) {
        die "No --- grep_error_log defined but --- grep_error_log_out is defined\n";
    }

    my ($want, $forbid) = (scalar $block->error_log, scalar $block->no_error_log);
    if (defined $want || defined $forbid) {
        $lines //= log_lines($ErrLogFile);
        check_log_patterns($name, 'error_log', 'error.log', $lines, $want, $forbid, $rep);
    }

    # Like the real one: [alert]/[crit]/[emerg] lines only produce warnings
    # unless a pattern mentions them; assertion failures always fail.
    $lines //= log_lines($ErrLogFile);
    for my $lvl (qw(alert crit emerg)) {
        next if value_contains($want, "[$lvl") || value_contains($forbid, "[$lvl");
        warn "WARNING: $name - " . fmt_str($_) . "\n" for grep { /\[$lvl\]/ } @$lines;
    }
    for my $line (@$lines) {
        if ($line =~ /\bAssertion .*?failed\b/ || $line =~ /exited on signal \d+/) {
            chomp(my $l = $line);
            _fail_hard("$name - $l\n");
        }
    }
}

sub check_access_log {
    my ($block, $rep) = @_;
    my ($want, $forbid) = (scalar $block->access_log, scalar $block->no_access_log);
    return unless defined $want || defined $forbid;
    check_log_patterns($block->name, 'access_log', 'access.log',
                       log_lines($AccLogFile), $want, $forbid, $rep);
}

1;
