# util/oauth2-client, the operators' CLI: clients added (the secret
# printed once, Redis holding its SHA-256), shown, listed, their secret
# rotated, unsubscribed and removed; consents listed, shown and revoked;
# and the token endpoint agrees at each step.  Invalid values are
# refused before anything is written.
#
# Plain Test::More: it runs its own nginx.

use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use OAuth2Test;
use OAuth2Nginx;
use OAuth2Authz;

$ENV{TEST_NGINX_LOAD_MODULES} && $ENV{TEST_NGINX_REDIS_PORT}
    or plan skip_all => 'run by util/run-tests.sh';

my $redis = $ENV{TEST_NGINX_REDIS_PORT};
my $cli = "$FindBin::Bin/../util/oauth2-client";

$ENV{REDIS_HOST} = '127.0.0.1';
$ENV{REDIS_PORT} = $redis;
delete $ENV{$_} for qw(REDIS_PASSWORD REDIS_SOCKET REDIS_USER REDIS_DB
                       OAUTH2_PREFIX);

# (exit status, stdout, stderr)
sub run {
    my (@args) = @_;
    my $err = "/tmp/oauth2-cli-$$.err";
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>', $err or die;
        exec $cli, @args or die "exec: $!";
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my $rc = $? >> 8;
    open my $e, '<', $err;
    my $stderr = $e ? <$e> // '' : '';
    unlink $err;
    return ($rc, $out, $stderr);
}

my $n = OAuth2Nginx->start(http => <<"_EOC_");
    oauth2_redis 127.0.0.1:$redis;
    server {
        listen 127.0.0.1:\$PORT;
        location = /oauth2/token {
            oauth2_token;
        }
        location /consents/ {
            oauth2_consent_api;
        }
    }
_EOC_

sub token {
    my ($id, $secret) = @_;
    my ($status, undef, $body) = OAuth2Authz::http(
        port => $n->port, method => 'POST', path => '/oauth2/token',
        headers => [ OAuth2Authz::basic($id, $secret) ],
        form => 'grant_type=client_credentials');
    return ($status, $body);
}

my $id = "cli-$$";
OAuth2Test::redis('DEL', "oauth2:client:$id");

# add

my ($rc, $out, $err) = run('add', $id, '--redirect-uri',
                           'https://tpp.example/cb', '--redirect-uri',
                           'https://tpp.example/cb2', '--scopes',
                           'accounts payments', '--plan', 'gold', '--name',
                           'CLI TPP Ltd', '--grant-types',
                           'authorization_code refresh_token '
                           . 'client_credentials');
is($rc, 0, 'add: exit 0') or diag $err;
chomp(my $secret = $out);
like($secret, qr/^[A-Za-z0-9_-]{43}$/, 'add: prints a 256-bit secret');
my $rec = OAuth2Authz::hgetall("oauth2:client:$id");
is_deeply($rec, { secret_sha256 => sha256_hex($secret),
                  redirect_uris => 'https://tpp.example/cb '
                                   . 'https://tpp.example/cb2',
                  subscribed => '1', scopes => 'accounts payments',
                  plan => 'gold', name => 'CLI TPP Ltd',
                  grant_types => 'authorization_code refresh_token '
                                 . 'client_credentials' },
          'add: the record of docs/redis-schema.md, the secret as SHA-256');

my ($status, $body) = token($id, $secret);
is($status, 200, 'the token endpoint knows the client');

($rc, $out, $err) = run('add', $id, '--redirect-uri', 'https://x.example/',
                        '--scopes', 'accounts');
is($rc, 1, 'add an existing client: exit 1');
like($err, qr/client "\Q$id\E" exists already/, '... says so');
is(OAuth2Authz::hgetall("oauth2:client:$id")->{secret_sha256},
   sha256_hex($secret), '... and keeps its secret');

# show, list

($rc, $out) = run('show', $id);
is($rc, 0, 'show: exit 0');
like($out, qr/^client_id: \Q$id\E\nname: CLI TPP Ltd\nsubscribed: 1\nscopes: accounts payments\n/,
     'show: the record');
unlike($out, qr/\Q$secret\E/, 'show: never the secret');

($rc, $out) = run('list');
is($rc, 0, 'list: exit 0');
like($out, qr/^\Q$id\E\tCLI TPP Ltd$/m, 'list: the client and its name');

($rc, undef, $err) = run('show', "nobody-$$");
is($rc, 1, 'show an unknown client: exit 1');

# rotate-secret

($rc, $out) = run('rotate-secret', $id);
is($rc, 0, 'rotate-secret: exit 0');
chomp(my $secret2 = $out);
like($secret2, qr/^[A-Za-z0-9_-]{43}$/, 'rotate-secret: a new secret');
isnt($secret2, $secret, '... another one');
($status, $body) = token($id, $secret);
is($status, 401, 'the old secret: 401');
is($body, '{"error":"invalid_client"}', '... invalid_client');
($status) = token($id, $secret2);
is($status, 200, 'the new secret: 200');

($rc) = run('rotate-secret', "nobody-$$");
is($rc, 1, 'rotate-secret of an unknown client: exit 1');
is(OAuth2Test::redis('EXISTS', "oauth2:client:nobody-$$"), 0,
   '... and it is not created');

# unsubscribe, subscribe

($rc) = run('unsubscribe', $id);
is($rc, 0, 'unsubscribe: exit 0');
($status) = token($id, $secret2);
is($status, 401, 'an unsubscribed client: 401');
($rc) = run('subscribe', $id);
($status) = token($id, $secret2);
is($status, 200, 'subscribed again: 200');

# consents

OAuth2Authz::seed_consent("cons-cli-$$", client_id => $id, sub => 'psu-9',
                          created => 1800000000, expires => 4102444800);
OAuth2Authz::seed_consent("cons-other-$$", client_id => "other-$$");

($rc, $out) = run('consents', 'list', '--client', $id);
is($rc, 0, 'consents list: exit 0');
is($out, "cons-cli-$$\t$id\tvalid\tpsu-9\t4102444800\n",
   'consents list --client: that client\'s');
# a key with the empty id (an issuer's bug; no token's consent is it)
OAuth2Test::redis('HSET', 'oauth2:consent:', 'status', 'valid');
($rc, $out) = run('consents', 'list');
like($out, qr/^cons-other-$$\tother-$$\t/m, 'consents list: all');
unlike($out, qr/^\t/m, 'consents list: no row for the empty id');
OAuth2Test::redis('DEL', 'oauth2:consent:');

($rc, $out) = run('consents', 'show', "cons-cli-$$");
is($rc, 0, 'consents show: exit 0');
like($out, qr/^consent_id: cons-cli-$$\nstatus: valid\nclient_id: \Q$id\E\nsub: psu-9\nscope: accounts\ncreated: 1800000000\nexpires: 4102444800\n\z/,
     'consents show: the record');

($rc) = run('consents', 'revoke', "cons-cli-$$");
is($rc, 0, 'consents revoke: exit 0');
is(OAuth2Authz::hgetall("oauth2:consent:cons-cli-$$")->{status}, 'revoked',
   'consents revoke: revoked');
($status, undef, $body) = OAuth2Authz::http(
    port => $n->port, path => "/consents/cons-cli-$$",
    headers => [ OAuth2Authz::basic($id, $secret2) ]);
like($body, qr/"status":"invalid"/, 'the consent API agrees');

($rc) = run('consents', 'revoke', "nothing-$$");
is($rc, 1, 'revoke an unknown consent: exit 1');
is(OAuth2Test::redis('EXISTS', "oauth2:consent:nothing-$$"), 0,
   '... and it is not created');

# remove

($rc) = run('remove', $id);
is($rc, 0, 'remove: exit 0');
($status) = token($id, $secret2);
is($status, 401, 'a removed client: 401');
($rc) = run('remove', $id);
is($rc, 1, 'remove again: exit 1');

# invalid values: refused, nothing written

for my $bad (
    [ 'a client id with a space', [ 'add', 'a b', '--redirect-uri',
      'https://x/', '--scopes', 'accounts' ], qr/invalid client id/ ],
    [ 'a redirect URI with a fragment', [ 'add', "bad-$$", '--redirect-uri',
      'https://x/#f', '--scopes', 'accounts' ], qr/invalid redirect URI/ ],
    [ 'a relative redirect URI', [ 'add', "bad-$$", '--redirect-uri',
      '/cb', '--scopes', 'accounts' ], qr/invalid redirect URI/ ],
    [ 'a scope with a quote', [ 'add', "bad-$$", '--redirect-uri',
      'https://x/', '--scopes', 'a "b"' ], qr/invalid scopes/ ],
    [ 'a plan with a space', [ 'add', "bad-$$", '--redirect-uri',
      'https://x/', '--scopes', 'a', '--plan', 'gold plan' ],
      qr/invalid plan/ ],
    [ 'an unknown grant type', [ 'add', "bad-$$", '--redirect-uri',
      'https://x/', '--scopes', 'a', '--grant-types', 'password' ],
      qr/invalid grant types/ ],
    [ 'no scopes', [ 'add', "bad-$$", '--redirect-uri', 'https://x/' ],
      qr/--scopes is required/ ],
    [ 'no redirect URI', [ 'add', "bad-$$", '--scopes', 'a' ],
      qr/--redirect-uri is required/ ],
    [ 'an unknown command', [ 'frobnicate' ], qr/add ID --redirect-uri/ ],
) {
    my ($name, $args, $re) = @$bad;
    ($rc, $out, $err) = run(@$args);
    is($rc, 2, "$name: exit 2");
    like($err, $re, "$name: the message");
}
is(OAuth2Test::redis('EXISTS', "oauth2:client:bad-$$"), 0,
   'nothing was written');

# a client for client_credentials alone needs no redirect URI

($rc, $out) = run('add', "machine-$$", '--scopes', 'reports',
                  '--grant-types', 'client_credentials');
is($rc, 0, 'a client_credentials client without redirect URI');
chomp($secret = $out);
($status) = token("machine-$$", $secret);
is($status, 200, '... gets tokens');
run('remove', "machine-$$");

# the prefix and a dead Redis

($rc, $out) = run('-P', "cli$$:", 'add', "pfx-$$", '--scopes', 'a',
                  '--grant-types', 'client_credentials');
is($rc, 0, '-P PREFIX: exit 0');
is(OAuth2Test::redis('EXISTS', "cli$$:client:pfx-$$"), 1,
   '-P PREFIX: the key under the prefix');
OAuth2Test::redis('DEL', "cli$$:client:pfx-$$");

{
    local $ENV{REDIS_PORT} = $ENV{TEST_NGINX_DEAD_PORT} || 1;
    ($rc, $out, $err) = run('list');
    is($rc, 3, 'Redis unreachable: exit 3');
    like($err, qr/redis/i, '... says so');
}

$n->stop;

# no arguments: the usage, every command and the exit statuses, exit 2
{
    my ($rc, $out, $err) = run();
    is($rc, 2, 'no arguments: exit 2');
    like($err, qr/^  oauth2-client \[options\] add ID/, 'usage: starts with add');
    like($err, qr/consents revoke CONSENT_ID/, 'usage: names consents revoke');
    like($err, qr/3 when Redis fails\.\n\z/, 'usage: ends with the exit statuses');
}

done_testing();
