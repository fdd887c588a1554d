package Test::Nginx::Socket;

# A small, compatible SUBSET of openresty's Test::Nginx::Socket; see the POD
# below.  All the work is done in Test::Nginx::MiniUtil.  Do not declare
# plain "sub name {" subs here: Spiffy's -Base source filter rewrites them.

use Test::Base -Base;

BEGIN {
    require Test::Nginx::MiniUtil;
    Test::Nginx::MiniUtil->import(@Test::Nginx::MiniUtil::EXPORT);
}

our $VERSION = '0.29_subset';

# Same names as the real module exports (minus the unsupported run_test,
# use_hup and no_nginx_manager); Test::Base adds blocks, plan, is, like, ...
our @EXPORT = qw(
    env_to_nginx is_str plan run_tests repeat_each config_preamble
    worker_connections master_process_enabled no_long_string workers
    master_on master_off log_level no_shuffle no_root_location
    server_name server_addr server_root html_dir server_port
    server_port_for_client timeout check_accum_error_log
    add_block_preprocessor bail_out add_cleanup_handler
    add_response_body_check
);

# Custom section names consumed by a test's own add_block_preprocessor().
our @ExtraSections;

1;
__END__

=head1 NAME

Test::Nginx::Socket - a small compatible subset of openresty's Test::Nginx::Socket

=head1 SYNOPSIS

    use Test::Nginx::Socket 'no_plan';     # or: tests => N
    run_tests();
    __DATA__
    === TEST 1: sanity
    --- config
        location /t { return 200 "ok\n"; }
    --- request
    GET /t
    --- response_body
    ok
    --- no_error_log
    [error]

Run with C<PERL5LIB=util/test-nginx/lib prove -r t>.  If the real
Test::Nginx (L<https://github.com/openresty/test-nginx>) comes B<earlier> on
C<PERL5LIB>/C<@INC>, the real one is loaded instead and takes precedence; test
files written against this subset are meant to pass under both.

=head1 DESCRIPTION

Built on L<Test::Base> exactly like the real module, so block syntax,
C<--- section filters> (C<chomp>, C<eval>, ...) and the C<ONLY>, C<LAST> and
C<SKIP> markers behave identically.  Blocks are shuffled unless
C<no_shuffle()> or C<TEST_NGINX_NO_SHUFFLE=1>.  For each block with a
C<--- config>, nginx is (re)started with C<-p t/servroot/ -c conf/nginx.conf>
(server root: C<TEST_NGINX_SERVROOT>); a block without C<--- config> reuses
the running nginx, as in the real one.  C<--- init> Perl code runs after nginx
has started, once per block, before the first request (in package
C<Test::Nginx::Util>, with C<$block> in scope).  Error-log checks look at the
lines written since the block's nginx started (then since the previous check,
for further requests/repetitions).  [alert]/[crit]/[emerg] lines only cause
warnings (like the real one) unless a pattern mentions them.

Supported sections: C<main_config>, C<http_config>, C<config>,
C<post_main_config>, C<server_name>, C<log_level>, C<user_files>, C<init>,
C<request> (string, or C<eval> to an array of strings), C<raw_request>
(string or array of packets), C<raw_request_middle_delay>, C<more_headers>,
C<timeout> (per I/O wait, C<s>/C<ms>), C<abort>, C<shutdown>,
C<ignore_response>, C<wait>, C<error_code>, C<error_code_like>,
C<response_headers> (C<Name: value>, C<!Name> = absent), C<response_headers_like>,
C<raw_response_headers_like>, C<raw_response_headers_unlike>,
C<response_body>, C<response_body_like>, C<response_body_unlike>,
C<response_body_filters>, C<error_log>, C<no_error_log>, C<grep_error_log>,
C<grep_error_log_out>, C<access_log>, C<no_access_log>, C<must_die>,
C<skip_nginx>, C<skip_eval>, C<todo>, C<no_check_leak> (no-op), C<ONLY>,
C<LAST>, C<SKIP>.

Any other section makes the block FAIL (push its name onto
C<@Test::Nginx::Socket::ExtraSections> if your own preprocessor consumes
it), as does an C<eval> filter whose code died.  Differences on purpose, all
stricter than the real one: C<!Name> and header names are case-insensitive,
both C<response_headers> and C<response_headers_like> are checked, malformed
header lines fail, and an nginx that fails to start or dies during a block
(or logs C<exited on signal>) fails the block instead of bailing out.

Environment: C<TEST_NGINX_BINARY>, C<TEST_NGINX_LOAD_MODULES>,
C<TEST_NGINX_PORT>/C<_SERVER_PORT>/C<_CLIENT_PORT>, C<TEST_NGINX_SERVROOT>,
C<TEST_NGINX_LOG_LEVEL>, C<TEST_NGINX_MASTER_PROCESS>, C<TEST_NGINX_TIMEOUT>,
C<TEST_NGINX_SLEEP>, C<TEST_NGINX_NO_SHUFFLE>, C<TEST_NGINX_NO_CLEAN>,
C<TEST_NGINX_CHECK_ACCUM_ERR_LOG>; C<$TEST_NGINX_*> variables are expanded in
the config sections and user files (C<TEST_NGINX_RAND_PORT_N> gives a free
port).

=cut
