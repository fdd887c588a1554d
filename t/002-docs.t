# What keeps the sources and the docs true to each other:
#
#   - ngx_oauth2_scripts.h is what util/gen-scripts.pl makes of the .lua
#     files (a stale header fails);
#   - every listing in docs/ marked <!-- file: PATH --> is that file, byte
#     for byte;
#   - docs/directives.md documents exactly the directives of the module's
#     command tables, each in nginx.org's form (Syntax, Default, Context)
#     with the context the command table gives.
#
# Plain Test::More, no nginx.

use strict;
use warnings;

use Test::More;
use FindBin;

my $top = "$FindBin::Bin/..";

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or die "$f: $!\n";
    local $/;
    return <$fh>;
}

# 1. the generated header

is(system("$top/util/gen-scripts.pl", '--check'), 0,
   'ngx_oauth2_scripts.h is what util/gen-scripts.pl makes of lua/*.lua');

# 2. listings

my $listings = 0;

for my $doc (glob "$top/docs/*.md") {
    my $text = slurp($doc);
    (my $name = $doc) =~ s{.*/}{};
    while ($text =~ /<!-- file: (\S+) -->\n```\w*\n(.*?)```\n/sg) {
        my ($file, $body) = ($1, $2);
        $listings++;
        ok(-f "$top/$file", "$name: the listing's file $file exists")
            or next;
        is($body, slurp("$top/$file"), "$name: the listing of $file is the file");
    }
}

cmp_ok($listings, '>=', 5, "the Lua files are quoted in docs ($listings)");

# 3. directives

my %code;

for my $c (glob "$top/ngx_oauth2_module/*.c") {
    my $text = slurp($c);
    while ($text =~ /\{\s*ngx_string\("(oauth2\w*)"\),\s*([A-Z_|0-9\s]+?),/sg) {
        my ($d, $flags) = ($1, $2);
        my @ctx;
        push @ctx, 'http' if $flags =~ /NGX_HTTP_MAIN_CONF/;
        push @ctx, 'server' if $flags =~ /NGX_HTTP_SRV_CONF/;
        push @ctx, 'location' if $flags =~ /NGX_HTTP_LOC_CONF/;
        $code{$d} = join ', ', @ctx;
    }
}

my $doc = slurp("$top/docs/directives.md");
my %doc;

while ($doc =~ /^### (oauth2\w*)\n\n((?:    .*\n)+)/mg) {
    my ($d, $block) = ($1, $2);
    $doc{$d} = $block;
}

cmp_ok(scalar(keys %code), '>=', 20, 'the command tables were read');

for my $d (sort keys %code) {
    ok(exists $doc{$d}, "directives.md documents $d") or next;
    like($doc{$d}, qr/^    Syntax:  \Q$d\E[ ;]/m, "$d: Syntax line");
    like($doc{$d}, qr/^    Default: /m, "$d: Default line");
    like($doc{$d}, qr/^    Context: \Q$code{$d}\E\n/m,
         "$d: Context is \"$code{$d}\", as in the command table");
    like($doc, qr/^- \[\Q$d\E\]\(#\Q$d\E\)$/m, "$d is in the list at the top");
}

for my $d (sort keys %doc) {
    ok(exists $code{$d}, "$d of directives.md is a directive of the module");
}

done_testing();
