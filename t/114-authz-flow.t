# The whole OAuth 2.0 flow on nginx and Redis, the two halves meeting in
# Redis only: register a client -> authorize -> the user's decision ->
# code -> tokens -> API 200 -> refresh -> the old refresh token 401
# invalid_grant -> consent details valid -> revoke the consent -> API 403
# -> consent details invalid -> refresh 401 invalid_grant -> a token that
# expires (a short TTL) -> API 401.  Then the races: 20 parallel
# redemptions of one code, and of one refresh token, give exactly one
# success each.
#
# Plain Test::More: it runs its own nginx (two workers, two Redis
# connections each, so that the races are real).

use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Time::HiRes qw(sleep time);
use OAuth2Test;
use OAuth2Nginx;
use OAuth2Authz;

$ENV{TEST_NGINX_LOAD_MODULES} && $ENV{TEST_NGINX_REDIS_PORT}
    or plan skip_all => 'run by util/run-tests.sh';

my $redis = $ENV{TEST_NGINX_REDIS_PORT};
my $json = JSON::PP->new;
my $cli = "$FindBin::Bin/../util/oauth2-client";

my $n = OAuth2Nginx->start(workers => 2, http => <<"_EOC_");
    oauth2_redis 127.0.0.1:$redis;
    oauth2_redis_connections 2;
    server {
        listen 127.0.0.1:\$PORT;
        location = /oauth2/authorize {
            oauth2_authorize;
            oauth2_authorize_login /login;
        }
        location = /oauth2/decision {
            oauth2_authorize_decision;
        }
        location = /oauth2/token {
            oauth2_token;
        }
        location = /short/token {
            oauth2_token;
            oauth2_access_token_ttl 2s;
        }
        location /consents/ {
            oauth2_consent_api;
        }
        location = /oauth2/revoke {
            oauth2_revoke;
        }
        location /api/ {
            oauth2 on;
            oauth2_scope accounts;
            proxy_set_header X-Who
                "\$oauth2_client_id|\$oauth2_sub|\$oauth2_consent_id|\$oauth2_scope|\$oauth2_plan";
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /backend {
            return 200 "who=\$http_x_who";
        }
    }
_EOC_

my $port = $n->port;

sub req {
    my (%o) = @_;
    return OAuth2Authz::http(port => $port, %o);
}

sub token_req {
    my ($id, $secret, $form, $path) = @_;
    my ($status, $h, $body) = req(method => 'POST',
                                  path => $path // '/oauth2/token',
                                  headers => [ OAuth2Authz::basic($id,
                                                                  $secret) ],
                                  form => $form);
    my $doc = eval { $json->decode($body) } // {};
    return ($status, $h, $body, $doc);
}

sub api {
    my ($token) = @_;
    my ($status, undef, $body) = req(path => '/api/accounts',
                                     headers => [ "Authorization: Bearer "
                                                  . $token ]);
    return ($status, $body);
}

# 1. a client, registered by the operators' CLI (util/oauth2-client)

my $client = "flow-$$";
OAuth2Test::redis('DEL', "oauth2:client:$client");
my $secret = do {
    local $ENV{REDIS_HOST} = '127.0.0.1';
    local $ENV{REDIS_PORT} = $redis;
    `$cli add $client --redirect-uri https://tpp.example/cb --scopes 'accounts payments' --plan gold --name 'Flow TPP'`;
};
is($?, 0, 'util/oauth2-client add: exit 0');
chomp $secret;
like($secret, qr/^[A-Za-z0-9_-]{43}$/, 'util/oauth2-client add: a secret');

# 2. the authorization request

my ($verifier, $challenge) = OAuth2Authz::pkce();
my ($status, $h, $body) = req(path => "/oauth2/authorize?response_type=code"
    . "&client_id=$client&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb"
    . "&scope=accounts&state=s-1&code_challenge=$challenge"
    . "&code_challenge_method=S256");
is($status, 302, 'authorize: 302 to the login');
my $request = OAuth2Authz::query_param($h->{location}, 'request');
like($request, qr/^[A-Za-z0-9_-]{43}$/, 'authorize: a request id');

# the consent page reads it

($status, $h, $body) = req(path => "/oauth2/authorize?request=$request");
is($status, 200, 'the pending request: 200');
is_deeply($json->decode($body),
          { request => $request, client_id => $client,
            client_name => 'Flow TPP', scope => 'accounts',
            scopes => ['accounts'] },
          'the pending request: client, name, scope');

# 3. the user allows

($status, $h, $body) = req(method => 'POST', path => '/oauth2/decision',
                           form => "request=$request&user=psu-flow"
                                   . "&decision=allow");
is($status, 302, 'decision: 302');
like($h->{location}, qr{^https://tpp\.example/cb\?code=[A-Za-z0-9_-]{43}&state=s-1$},
     'decision: back to the client with a code and the state');
my $code = OAuth2Authz::query_param($h->{location}, 'code');

# 4. the code for tokens

my $doc;
($status, $h, $body, $doc) = token_req($client, $secret,
    "grant_type=authorization_code&code=$code"
    . "&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb"
    . "&code_verifier=$verifier");
is($status, 200, 'token: 200');
is($h->{'content-type'}, 'application/json', 'token: JSON');
is($h->{'cache-control'}, 'no-store', 'token: Cache-Control no-store');
is($h->{pragma}, 'no-cache', 'token: Pragma no-cache');
is_deeply([ sort keys %$doc ],
          [ qw(access_token consent_id expires_in refresh_token scope
               token_type) ], 'token: the fields of the guide');
is($doc->{token_type}, 'Bearer', 'token_type Bearer');
is($doc->{expires_in}, 3600, 'expires_in 3600');
is($doc->{scope}, 'accounts', 'scope');
like($doc->{access_token}, qr/^[A-Za-z0-9_-]{43}$/,
     'a 256-bit access token, base64url');
like($doc->{refresh_token}, qr/^[A-Za-z0-9_-]{43}$/, 'a refresh token');
my ($access, $refresh, $consent) = @$doc{qw(access_token refresh_token
                                             consent_id)};

# what Redis holds: the gateway's records, by SHA-256 only

my $rec = OAuth2Authz::hgetall('oauth2:token:' . sha256_hex($access));
my $exp = delete $rec->{exp};
is_deeply($rec, { client_id => $client, scope => 'accounts',
                  plan => 'gold', consent_id => $consent,
                  sub => 'psu-flow' },
          'the token record: client_id, scope, plan, consent_id, sub');
like($exp, qr/^\d+$/, 'exp in Unix seconds');
cmp_ok(abs($exp - (time + 3600)), '<=', 5, 'exp an hour from now');
my $ttl = OAuth2Test::redis('TTL', 'oauth2:token:' . sha256_hex($access));
cmp_ok($ttl, '>', 3590, 'the token key\'s TTL: an hour');
cmp_ok($ttl, '<=', 3600, 'the token key\'s TTL: no more');
my $keys = OAuth2Test::redis('KEYS', '*');
ok(!grep({ index($_, $access) >= 0 || index($_, $refresh) >= 0 } @$keys),
   'no key holds a token in clear');
$rec = OAuth2Authz::hgetall("oauth2:consent:$consent");
is($rec->{status}, 'valid', 'the consent: valid');
is($rec->{client_id}, $client, 'the consent: client_id');
is($rec->{sub}, 'psu-flow', 'the consent: sub');
is($rec->{scope}, 'accounts', 'the consent: scope');
cmp_ok(abs($rec->{expires} - $rec->{created} - 90 * 86400), '==', 0,
       'the consent: 90 days');
$rec = OAuth2Authz::hgetall('oauth2:refresh:' . sha256_hex($refresh));
is_deeply($rec, { client_id => $client, scope => 'accounts',
                  consent_id => $consent, sub => 'psu-flow' },
          'the refresh record');

# the code was used

($status, undef, $body) = token_req($client, $secret,
    "grant_type=authorization_code&code=$code"
    . "&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb"
    . "&code_verifier=$verifier");
is($status, 400, 'the code again: 400');
is($body, '{"error":"invalid_grant"}', 'the code again: invalid_grant');

# 5. the API

($status, $body) = api($access);
is($status, 200, 'API: 200');
is($body, "who=$client|psu-flow|$consent|accounts|gold",
   'API: the gateway read the record the token endpoint wrote');

# 6. refresh

($status, undef, $body, $doc) = token_req($client, $secret,
    "grant_type=refresh_token&refresh_token=$refresh");
is($status, 200, 'refresh: 200');
is($doc->{consent_id}, $consent, 'refresh: the same consent');
isnt($doc->{refresh_token}, $refresh, 'refresh: a new refresh token');
my ($access2, $refresh2) = @$doc{qw(access_token refresh_token)};
($status) = api($access2);
is($status, 200, 'API with the refreshed token: 200');

($status, $h, $body) = token_req($client, $secret,
    "grant_type=refresh_token&refresh_token=$refresh");
is($status, 401, 'the old refresh token: 401');
is($body, '{"error":"invalid_grant"}', 'the old refresh token: invalid_grant');

# 7. the consent's details

($status, $h, $body) = req(path => "/consents/$consent",
                           headers => [ OAuth2Authz::basic($client,
                                                           $secret) ]);
is($status, 200, 'consent details: 200');
$doc = $json->decode($body);
is($doc->{status}, 'valid', 'consent details: valid');
is($doc->{consentId}, $consent, 'consent details: consentId');
is($doc->{clientId}, $client, 'consent details: clientId');
is($doc->{scope}, 'accounts', 'consent details: scope');

# 8. revoke the consent: the unexpired tokens get 403 at once

($status) = req(method => 'DELETE', path => "/consents/$consent",
                headers => [ OAuth2Authz::basic($client, $secret) ]);
is($status, 204, 'consent revoked: 204');
($status, $body) = api($access2);
is($status, 403, 'API after the revocation: 403');
is($body, '{"httpCode":"403","httpMessage":"Forbidden",'
          . '"moreInformation":"Forbidden"}', 'the gateway\'s 403');
($status, undef, $body) = req(path => "/consents/$consent",
                              headers => [ OAuth2Authz::basic($client,
                                                              $secret) ]);
is($json->decode($body)->{status}, 'invalid', 'consent details: invalid');
($status, undef, $body) = token_req($client, $secret,
    "grant_type=refresh_token&refresh_token=$refresh2");
is($status, 401, 'refresh after the revocation: 401');
is($body, '{"error":"invalid_grant"}', '... invalid_grant');

# 9. a token that expires: oauth2_access_token_ttl 2s

sub new_grant {
    my ($state) = @_;
    my ($s, $hh) = req(path => "/oauth2/authorize?response_type=code"
        . "&client_id=$client&scope=accounts&state=$state"
        . "&code_challenge=$challenge&code_challenge_method=S256");
    my $rq = OAuth2Authz::query_param($hh->{location}, 'request');
    ($s, $hh) = req(method => 'POST', path => '/oauth2/decision',
                    form => "request=$rq&user=psu-flow&decision=allow");
    return OAuth2Authz::query_param($hh->{location}, 'code');
}

$code = new_grant('s-2');
($status, undef, undef, $doc) = token_req($client, $secret,
    "grant_type=authorization_code&code=$code&code_verifier=$verifier",
    '/short/token');
is($status, 200, 'a short-lived token: 200');
is($doc->{expires_in}, 2, 'expires_in 2');
($status) = api($doc->{access_token});
is($status, 200, 'API before it expires: 200');
sleep 3.1;
($status, $body) = api($doc->{access_token});
is($status, 401, 'API after it expired: 401');

# 10. 20 parallel redemptions of one code: one wins

sub race {
    my ($n, @args) = @_;
    my $start = time + 0.5;
    my @files;
    my @pids;
    for my $i (1 .. $n) {
        my $file = "/tmp/oauth2-race-$$-$i";
        push @files, $file;
        my $pid = fork();
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            sleep($start - time) if $start > time;
            my ($s, undef, $b) = eval { token_req(@args) };
            if (open my $fh, '>', $file) {
                print $fh ($s // 0), "\n", $b // '';
                close $fh;
            }
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    waitpid($_, 0) for @pids;
    my @res;
    for my $file (@files) {
        open my $fh, '<', $file or do { push @res, [0, '']; next };
        local $/;
        my ($s, $b) = split /\n/, <$fh>, 2;
        close $fh;
        unlink $file;
        push @res, [$s, $b];
    }
    return @res;
}

$code = new_grant('s-3');
my @res = race(20, $client, $secret,
               "grant_type=authorization_code&code=$code"
               . "&code_verifier=$verifier");
my @ok = grep { $_->[0] == 200 } @res;
my @refused = grep { $_->[0] == 400
                     && $_->[1] eq '{"error":"invalid_grant"}' } @res;
is(scalar(@ok), 1, '20 redemptions of one code: exactly one 200');
is(scalar(@refused), 19, '... and 19 invalid_grant')
    or diag(join "\n", map { "$_->[0] $_->[1]" } @res);

my $winner = $json->decode($ok[0][1]);
@res = race(20, $client, $secret,
            "grant_type=refresh_token&refresh_token=$winner->{refresh_token}");
@ok = grep { $_->[0] == 200 } @res;
@refused = grep { $_->[0] == 401
                  && $_->[1] eq '{"error":"invalid_grant"}' } @res;
is(scalar(@ok), 1, '20 refreshes of one refresh token: exactly one 200');
is(scalar(@refused), 19, '... and 19 invalid_grant')
    or diag(join "\n", map { "$_->[0] $_->[1]" } @res);

# the one new pair works, and is the only one

my $new = $json->decode($ok[0][1]);
($status) = api($new->{access_token});
is($status, 200, 'the winner\'s access token: 200');
my $refreshes = OAuth2Test::redis('KEYS', 'oauth2:refresh:*');
ok(scalar(grep { $_ eq 'oauth2:refresh:' . sha256_hex($new->{refresh_token}) }
          @$refreshes), 'the new refresh token is stored');
ok(!grep({ $_ eq 'oauth2:refresh:' . sha256_hex($winner->{refresh_token}) }
         @$refreshes), 'the old one is gone');

# 11. client_credentials: a token without user or consent

OAuth2Authz::seed_client("$client-cc", $secret,
                         grant_types => 'client_credentials',
                         scopes => 'accounts');
($status, undef, undef, $doc) = token_req("$client-cc", $secret,
                                          'grant_type=client_credentials');
is($status, 200, 'client_credentials: 200');
$rec = OAuth2Authz::hgetall('oauth2:token:'
                            . sha256_hex($doc->{access_token}));
delete $rec->{exp};
is_deeply($rec, { client_id => "$client-cc", scope => 'accounts',
                  plan => 'gold' },
          'client_credentials: a record without consent_id or sub');

# nothing went wrong, no secret or token in the log

my @log = $n->error_log;
my @bad = grep { /\[(alert|crit|emerg)\]/ } @log;
is(scalar(@bad), 0, 'no alert, crit or emerg') or diag @bad;
my @leak = grep { index($_, $access) >= 0 || index($_, $refresh) >= 0
                  || index($_, $secret) >= 0 || index($_, $verifier) >= 0 }
           @log;
is(scalar(@leak), 0, 'no token, secret or verifier in the log')
    or diag @leak;

$n->stop;

done_testing();
