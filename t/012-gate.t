# One gate, two implementations: the checks nginx makes on a record
# (ngx_oauth2_record.c, the definition) and the same checks in Redis
# (lua/gate.lua), which decide whether a request is counted against the
# client's plan.  One table of vectors goes through both:
#
#   - nginx: the record is seeded, a request is sent, the status must be
#     the expected one, and the request must have been counted (a
#     rate-limit key written) exactly when the status is 200;
#   - Lua: EVAL of gcra.lua + gate.lua with the same fields must count
#     exactly the vectors whose expected status is 200.
#
# Plain Test::More: it runs its own nginx.

use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Nginx;

$ENV{TEST_NGINX_LOAD_MODULES} && $ENV{TEST_NGINX_REDIS_PORT}
    or plan skip_all => 'run by util/run-tests.sh';

my $redis = $ENV{TEST_NGINX_REDIS_PORT};
my $lua = "$FindBin::Bin/../ngx_oauth2_module/lua";

my $n = OAuth2Nginx->start(http => <<"_EOC_");
    oauth2_redis 127.0.0.1:$redis;
    oauth2_plan p1 1000r/s;
    oauth2_default_plan p1;
    server {
        listen 127.0.0.1:\$PORT;
        location /gate {
            oauth2 on;
            oauth2_scope accounts;
            proxy_pass http://127.0.0.1:\$PORT/backend;
        }
        location /backend { return 200 "ok"; }
    }
_EOC_

my $now = time;
my $long = 'x' x 255;

# name, record fields (undef: absent), consent status, expected status
my @vectors = (
    [ 'a plain record', {}, 'valid', 200 ],

    # exp: 1 to 15 digits, later than nginx's clock
    [ 'exp empty (no exp, the TTL bounds it)', { exp => '' }, 'valid', 200 ],
    [ 'exp in an hour', { exp => $now + 3600 }, 'valid', 200 ],
    [ 'exp passed', { exp => $now - 10 }, 'valid', 401 ],
    [ 'exp 0', { exp => '0' }, 'valid', 401 ],
    [ 'exp 1', { exp => '1' }, 'valid', 401 ],
    [ 'exp of 15 digits', { exp => '999999999999999' }, 'valid', 200 ],
    [ 'exp of 16 digits', { exp => '9999999999999999' }, 'valid', 401 ],
    [ 'exp 2^53', { exp => '9007199254740992' }, 'valid', 401 ],
    [ 'exp 2^53 - 1', { exp => '9007199254740991' }, 'valid', 401 ],
    [ 'exp 2^63 - 1', { exp => '9223372036854775807' }, 'valid', 401 ],
    [ 'exp 2^63', { exp => '9223372036854775808' }, 'valid', 401 ],
    [ 'exp 2^64', { exp => '18446744073709551616' }, 'valid', 401 ],
    [ 'exp 20 nines', { exp => '99999999999999999999' }, 'valid', 401 ],
    [ 'exp with leading zeros, 15 digits', { exp => '000099999999999' },
      'valid', 200 ],
    [ 'exp with leading zeros, 16 digits', { exp => '0000099999999999' },
      'valid', 401 ],
    [ 'exp with a leading space', { exp => ' ' . ($now + 3600) }, 'valid',
      401 ],
    [ 'exp with a trailing space', { exp => ($now + 3600) . ' ' }, 'valid',
      401 ],
    [ 'exp with a plus sign', { exp => '+' . ($now + 3600) }, 'valid', 401 ],
    [ 'exp negative', { exp => '-1' }, 'valid', 401 ],
    [ 'exp in exponent form', { exp => '1e11' }, 'valid', 401 ],
    [ 'exp in hex', { exp => '0x7fffffff' }, 'valid', 401 ],
    [ 'exp with a fraction', { exp => ($now + 3600) . '.5' }, 'valid', 401 ],
    [ 'exp with a newline', { exp => ($now + 3600) . "\n" }, 'valid', 401 ],

    # client_id: required, 1 to 255 visible ASCII characters
    [ 'client_id absent', { client_id => undef }, 'valid', 401 ],
    [ 'client_id empty', { client_id => '' }, 'valid', 401 ],
    [ 'client_id with CRLF and a header',
      { client_id => "tpp-inj\r\nX-Injected: yes" }, 'valid', 401 ],
    [ 'client_id with a space', { client_id => 'tpp 1' }, 'valid', 401 ],
    [ 'client_id with a tab', { client_id => "tpp\t1" }, 'valid', 401 ],
    [ 'client_id with NUL', { client_id => "tpp\0" }, 'valid', 401 ],
    [ 'client_id with DEL', { client_id => "tpp\x7f" }, 'valid', 401 ],
    [ 'client_id in UTF-8', { client_id => "tpp-\xc3\xa9" }, 'valid', 401 ],
    [ 'client_id of 255 characters', { client_id => $long }, 'valid', 200 ],
    [ 'client_id of 256 characters', { client_id => "${long}x" }, 'valid',
      401 ],
    [ 'client_id with punctuation', { client_id => 'tpp:1/{a}"b"' },
      'valid', 200 ],

    # sub: optional, the same grammar
    [ 'sub empty', { sub => '' }, 'valid', 200 ],
    [ 'sub an e-mail', { sub => 'user@bank.example' }, 'valid', 200 ],
    [ 'sub with LF', { sub => "user\nX-Injected: yes" }, 'valid', 401 ],
    [ 'sub with a space', { sub => 'Jane Doe' }, 'valid', 401 ],

    # scope: scope-tokens and spaces
    [ 'scope with two tokens', { scope => 'accounts payments' }, 'valid',
      200 ],
    [ 'scope with extra spaces', { scope => '  accounts   payments ' },
      'valid', 200 ],
    [ 'scope with CRLF', { scope => "accounts\r\nX-Injected: yes" },
      'valid', 401 ],
    [ 'scope with a quote', { scope => 'accounts "x"' }, 'valid', 401 ],
    [ 'scope with a backslash', { scope => 'accounts x\\y' }, 'valid', 401 ],
    [ 'scope with a tab', { scope => "payments\taccounts" }, 'valid', 401 ],
    [ 'scope empty', { scope => '' }, 'valid', 403 ],
    [ 'scope absent', { scope => undef }, 'valid', 403 ],
    [ 'scope without the location\'s', { scope => 'payments' }, 'valid',
      403 ],
    [ 'scope of 4097 bytes', { scope => 'accounts ' . ('y' x 4088) },
      'valid', 401 ],

    # plan: an oauth2_plan name, or absent (the default plan)
    [ 'plan absent', { plan => undef }, 'valid', 200 ],
    [ 'plan empty', { plan => '' }, 'valid', 200 ],
    [ 'plan unknown (the default plan)', { plan => 'gold' }, 'valid', 200 ],
    [ 'plan with a space', { plan => 'gold plan' }, 'valid', 401 ],
    [ 'plan with LF', { plan => "p1\n" }, 'valid', 401 ],
    [ 'plan of 65 characters', { plan => 'p' x 65 }, 'valid', 401 ],

    # consent_id: empty is no consent
    [ 'consent revoked', {}, 'revoked', 403 ],
    [ 'consent VALID', {}, 'VALID', 403 ],
    [ 'consent absent', {}, undef, 403 ],
    [ 'consent_id empty, oauth2:consent: valid', { consent_id => '' },
      'valid', 403 ],
    [ 'consent_id absent', { consent_id => undef }, 'valid', 403 ],
    [ 'consent_id with CRLF', { consent_id => "c\r\nX-Injected: yes" },
      'valid', 401 ],
    [ 'consent_id with a space', { consent_id => 'c 1' }, 'valid', 401 ],
);

sub rl_keys {
    my $k = OAuth2Test::redis('KEYS', 'oauth2:rl:*');
    return ref $k ? @$k : ();
}

sub clear_rl {
    OAuth2Test::redis('DEL', $_) for rl_keys();
}

my $harness = do {
    local $/;
    open my $a, '<', "$lua/gcra.lua" or die $!;
    open my $b, '<', "$lua/gate.lua" or die $!;
    <$a> . <$b> . <<'_LUA_';
local f = {}
local plans = tonumber(ARGV[9])
for i = 10, plans - 1, 2 do f[ARGV[i]] = ARGV[i + 1] end
local state = limit(ARGV, plans, f.client_id, f.scope, f.plan,
                    f.consent_id, f.sub, f.exp, f.cs)
if state == 1 then return 1 end
return 0
_LUA_
};

my $i = 0;

for my $v (@vectors) {
    my ($name, $fields, $cs, $expect) = @$v;
    $i++;

    my %f = (client_id => "gate-$i", scope => 'accounts',
             consent_id => "gate-c-$i", %$fields);
    my %record = map { $_ => $f{$_} } grep { defined $f{$_} } keys %f;
    my $cid = $f{consent_id};

    OAuth2Test::redis('DEL', "oauth2:consent:" . ($cid // ''));
    OAuth2Test::seed_consent($cid, $cs) if defined $cid && defined $cs;
    my $token = "tok-gate-$$-$i";
    OAuth2Test::seed_token($token, %record);

    # nginx, with the lookup script
    clear_rl();
    my ($status) = $n->request('/gate', "Authorization: Bearer $token");
    my $counted = scalar(rl_keys()) ? 1 : 0;
    is($status, $expect, "nginx: $name: $expect");
    is($counted, $status == 200 ? 1 : 0,
       "nginx: $name: counted only when let through");

    # the Lua gate alone, on the same fields
    clear_rl();
    # ARGV[1..8] as nginx sends them, ARGV[9]: where the plans start,
    # the record's fields, then the plans
    my @fields = map { ($_, $record{$_}) } sort keys %record;
    push @fields, 'cs', $cs if defined $cs && defined $cid && $cid ne '';
    my @argv = ('oauth2:', '1', 'p1', '1', 'accounts', '', time, '0',
                10 + @fields, @fields, 'p1', '1', '1000', '1000000');
    my $lua_counted = OAuth2Test::redis('EVAL', $harness, 0, @argv);
    is($lua_counted, $expect == 200 ? 1 : 0,
       "lua: $name: " . ($expect == 200 ? 'counted' : 'not counted'));
}

my @bad = grep { /\[(alert|crit|emerg)\]/ } $n->error_log;
is(scalar(@bad), 0, 'no alert, crit or emerg') or diag @bad;

$n->stop;

done_testing();
