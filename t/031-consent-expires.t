# A consent's "expires": one rule (lua/consent.lua) for the gateway (an
# opaque token and a JWT), the token endpoint (a refresh) and the consent
# API.  A status "valid" holds while "expires" is absent, empty, or 1 to
# 15 digits after now; past it, or of any other shape, the consent is
# over: 403 at the gateway while the token lives, invalid_grant at the
# token endpoint, "invalid" in the consent API.  One table of values
# through all four, which must agree.
#
# Plain Test::More, an nginx of its own (t/lib/OAuth2Nginx.pm).

use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use OAuth2Test;
use OAuth2Authz;
use OAuth2JWT;
use OAuth2Nginx;

my $redis = OAuth2Test::port();

my $n = OAuth2Nginx->start(http => <<"_HTTP_");
    oauth2_redis 127.0.0.1:$redis;
    oauth2_jwt_key HS256 "$OAuth2JWT::Secret";
    server {
        listen 127.0.0.1:\$PORT;
        location /api {
            oauth2 on;
            oauth2_scope accounts;
            add_header X-Status \$oauth2_status always;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /jwt {
            oauth2 on;
            oauth2_token_type jwt;
            oauth2_scope accounts;
            add_header X-Status \$oauth2_status always;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /consents/ {
            oauth2_consent_api;
        }
        location = /oauth2/token {
            oauth2_token;
        }
        location /backend { return 200 "ok\\n"; }
    }
_HTTP_

my $now = time;
my $run = "$$-$now";

OAuth2Authz::seed_client("tpp-e-$run", 's3cret');
my $basic = OAuth2Authz::basic("tpp-e-$run", 's3cret');

# [expires (undef: no field), passes]
my @vectors = (
    [ undef, 1 ],
    [ '', 1 ],
    [ $now + 3600, 1 ],
    [ '99999999999999', 1 ],                # 14 digits
    [ '999999999999999', 1 ],               # 15 digits, exact in a double
    [ '0' . ($now + 3600), 1 ],             # a leading zero
    [ $now, 0 ],                            # not after now
    [ $now - 1, 0 ],
    [ '0', 0 ],
    [ '0001', 0 ],
    [ '000000000000001', 0 ],
    [ '1000000000000000', 0 ],              # 16 digits
    [ '0' . '9' x 15, 0 ],                  # 16 digits, leading zero
    [ ' ' . ($now + 3600), 0 ],
    [ ($now + 3600) . ' ', 0 ],
    [ '-1', 0 ],
    [ '+' . ($now + 3600), 0 ],
    [ ($now + 3600) . '.0', 0 ],
    [ '4.1e9', 0 ],
    [ '0x7fffffff', 0 ],
    [ 'never', 0 ],
);

my $i = 0;
for my $v (@vectors) {
    my ($expires, $passes) = @$v;
    my $name = defined $expires ? "expires \"$expires\"" : 'no expires';
    my $cid = "c-e-$run-" . $i++;
    my $client = "tpp-e-$run";

    OAuth2Authz::seed_consent($cid, client_id => $client,
                              expires => $expires);

    # the gateway, an opaque token
    my $tok = "tok-$cid";
    OAuth2Test::seed_token($tok, client_id => $client, scope => 'accounts',
                           consent_id => $cid);
    my ($s, $h) = $n->request('/api', "Authorization: Bearer $tok");
    is($s, $passes ? 200 : 403, "$name: opaque token, $s");
    is($h->{'x-status'}, $passes ? 'ok' : 'consent_invalid',
       "$name: opaque token, \$oauth2_status")
        if $s == 403 || $s == 200;

    # the gateway, a JWT
    my $jwt = OAuth2JWT::sign('HS256', { client_id => $client,
                                         scope => 'accounts',
                                         consent_id => $cid });
    ($s) = $n->request('/jwt', "Authorization: Bearer $jwt");
    is($s, $passes ? 200 : 403, "$name: JWT, $s");

    # the consent API
    my ($cs, undef, $body) = $n->request("/consents/$cid", $basic);
    my $doc = eval { decode_json($body) } // {};
    is("$cs $doc->{status}", $passes ? '200 valid' : '200 invalid',
       "$name: the consent API says $cs " . ($doc->{status} // ''));
    my $digits = defined $expires && $expires =~ /^[0-9]{1,15}\z/;
    is($doc->{expires}, $digits ? $expires + 0 : undef,
       "$name: the consent API shows "
       . ($digits ? 'its expires' : 'no expires'));

    # the token endpoint: a refresh behind the consent
    my $rt = "rt-$cid";
    OAuth2Authz::seed_refresh($rt, client_id => $client, consent_id => $cid);
    my $form = "grant_type=refresh_token&refresh_token=$rt";
    my ($rs, undef, $rbody) = $n->request(
        { method => 'POST', path => '/oauth2/token', body => $form },
        $basic, 'Content-Type: application/x-www-form-urlencoded');
    if ($passes) {
        is($rs, 200, "$name: refresh, $rs");
    } else {
        is("$rs $rbody", "401 " . '{"error":"invalid_grant"}',
           "$name: refresh refused");
    }
}

# the gateway's log names the consent and why
my @log = $n->error_log;
for ([ 7, 'expired' ], [ 11, 'bad expires' ]) {
    my ($k, $why) = @$_;
    my $re = qr/consent "c-e-$run-$k" of client "tpp-e-$run" is not valid /
             . qr/\(status "$why"\)/;
    ok((grep { /$re/ } @log), "the log says: status \"$why\"");
}

my @bad = grep { /\[(alert|crit|emerg)\]/ } @log;
is(scalar(@bad), 0, 'no alert, crit or emerg') or diag @bad;

$n->stop;
done_testing();
