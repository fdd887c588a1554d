# One rate-limit algorithm, two implementations: ngx_oauth2_gcra.c (the
# definition, used when nginx counts alone) and lua/gcra.lua (in Redis).
# A table of vectors (arrival times, limits, expected decisions and TATs)
# goes through both: the C function, compiled here with
# util/gcra-vectors.c, and EVAL of the Lua file in the test run's Redis;
# then a long random sequence, where both must agree line for line.
#
# Plain Test::More: no nginx.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;

my $top = "$FindBin::Bin/..";
my $src = $ENV{TEST_NGINX_NGINX_SRC} || "$top/build/nginx-src";

$ENV{TEST_NGINX_REDIS_PORT} or plan skip_all => 'run by util/run-tests.sh';
-f "$src/objs/ngx_auto_config.h"
    or plan skip_all => "no configured nginx source in $src (make first)";

my $dir = tempdir(CLEANUP => 1);
my $bin = "$dir/gcra-vectors";
my $incs = join ' ', map { "-I $src/$_" }
    qw(objs src/core src/event src/event/modules src/os/unix);

is(system("cc -O2 -Wall -Werror $incs -I $top/ngx_oauth2_module "
          . "-o $bin $top/util/gcra-vectors.c "
          . "$top/ngx_oauth2_module/ngx_oauth2_gcra.c -lm"), 0,
   'the C harness builds') or BAIL_OUT('no harness');

my $lua = do {
    local $/;
    open my $fh, '<', "$top/ngx_oauth2_module/lua/gcra.lua" or die $!;
    <$fh>;
} . <<'_LUA_';
local n = tonumber(ARGV[4])
local out = {gcra(ARGV[1], ARGV[2], ARGV[3], ARGV, 6, n, tonumber(ARGV[5]))}
out = {out[1], out[2], out[3], out[4], out[5]}
for k = 1, n do
  local v = redis.call('GET', ARGV[1] .. 'rl:{' .. ARGV[2] .. '}:'
                       .. ARGV[3] .. ':' .. ARGV[4 + 2 * k] .. ':'
                       .. ARGV[5 + 2 * k])
  out[#out + 1] = v or '0'
end
return table.concat(out, ' ')
_LUA_

my $run = 0;

# both implementations on one sequence: [limits [count, ms], ...], arrivals
sub both {
    my ($limits, @at) = @_;
    $run++;
    my $client = "gcra-$$-$run";
    my @spec = map { ($_->[0], $_->[1] * 1000) } @$limits;

    open my $in, '>', "$dir/in" or die $!;
    print $in 'plan ', join(' ', map { "@$_" } @$limits), "\n";
    print $in "at $_\n" for @at;
    close $in;
    my @c = split /\n/, `$bin < $dir/in`;

    my @l = map {
        OAuth2Test::redis('EVAL', $lua, 0, 'oauth2:test:', $client, 'p',
                          scalar(@$limits), $_, @spec);
    } @at;

    return (\@c, \@l);
}

# 1. vectors with their expected decisions and TATs

my $T0 = 1_800_000_000_000_000;   # usec
my $t3 = 1_000_000 / 3;           # 3r/s: one every 333333.33 usec

my @table = (
    {
        name => '3r/s: a burst of 3, the 4th waits, one more after t',
        limits => [[3, 1000]],
        at => [$T0, $T0, $T0, $T0, $T0 + 400_000],
        # state limit remaining reset retry tat
        want => [
            [1, 0, 2, 1, 0, $T0 + $t3],
            [1, 0, 1, 1, 0, $T0 + 2 * $t3],
            [1, 0, 0, 1, 0, $T0 + 3 * $t3],
            [2, 0, 0, 1, 1, $T0 + 3 * $t3],
            [1, 0, 0, 1, 0, $T0 + 4 * $t3],
        ],
    },
    {
        name => '2r/s and 3r/m: the minute limit refuses the 4th',
        limits => [[2, 1000], [3, 60000]],
        at => [$T0, $T0 + 600_000, $T0 + 1_200_000, $T0 + 1_800_000],
        # the headers describe the tightest limit: 2r/s while the minute
        # has room, then the minute's
        want => [
            [1, 0, 1, 1, 0, $T0 + 500_000, $T0 + 20_000_000],
            [1, 0, 1, 1, 0, $T0 + 1_100_000, $T0 + 40_000_000],
            [1, 1, 0, 59, 0, $T0 + 1_700_000, $T0 + 60_000_000],
            [2, 1, 0, 59, 19, $T0 + 1_700_000, $T0 + 60_000_000],
        ],
    },
    {
        name => '1r/h: the second request an hour later',
        limits => [[1, 3_600_000]],
        at => [$T0, $T0 + 1, $T0 + 3_600_000_000],
        want => [
            [1, 0, 0, 3600, 0, $T0 + 3_600_000_000],
            [2, 0, 0, 3600, 3600, $T0 + 3_600_000_000],
            [1, 0, 0, 3600, 0, $T0 + 7_200_000_000],
        ],
    },
);

for my $v (@table) {
    my ($c, $l) = both($v->{limits}, @{ $v->{at} });
    for my $i (0 .. $#{ $v->{want} }) {
        my @w = @{ $v->{want}[$i] };
        my @cf = split ' ', $c->[$i] // '';
        my @lf = split ' ', $l->[$i] // '';
        for my $f (0 .. $#w) {
            # TATs: to the microsecond (doubles near 1.8e15 step by 0.25)
            my $ok = sub { abs($_[0] - $w[$f]) < ($f < 5 ? 0.5 : 1) };
            ok(defined $cf[$f] && $ok->($cf[$f]),
               "C: $v->{name}: request $i field $f is $w[$f]")
                or diag("C: $c->[$i]");
            ok(defined $lf[$f] && $ok->($lf[$f]),
               "Lua: $v->{name}: request $i field $f is $w[$f]")
                or diag("Lua: $l->[$i]");
        }
    }
}

# 2. a long random sequence: the two agree on every line, TATs included

srand(42);
my @at;
my $now = $T0;
for (1 .. 400) {
    $now += int(rand(rand() < 0.8 ? 150_000 : 2_000_000));
    push @at, $now;
}

for my $limits ([[5, 1000], [20, 60000]], [[7, 1000]], [[100, 60000]]) {
    my ($c, $l) = both($limits, @at);
    my $same = grep { $c->[$_] eq $l->[$_] } 0 .. $#at;
    my $allowed = grep { /^1 / } @$c;
    is($same, scalar(@at), 'C and Lua agree on all ' . scalar(@at)
       . ' requests for ' . join(' ', map { "$_->[0]/$_->[1]ms" } @$limits)
       . " ($allowed allowed)");
    cmp_ok($allowed, '>', 0, 'some requests are allowed');
    cmp_ok($allowed, '<', scalar(@at), 'some requests are refused');
}

done_testing();
