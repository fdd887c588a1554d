#!/usr/bin/env perl
# Writes ngx_oauth2_module/ngx_oauth2_scripts.h from the Redis scripts in
# ngx_oauth2_module/lua/: each script's text (the .lua files it is made
# of, joined) and its SHA-1, which is what EVALSHA names it by.
#
#   util/gen-scripts.pl            rewrite the header
#   util/gen-scripts.pl --check    exit 1 when the header is stale
#   util/gen-scripts.pl --text S   print the text of script S (lookup,
#                                  jwt, ratelimit, authz_code, ...), as
#                                  Redis loads it

use strict;
use warnings;

use Digest::SHA qw(sha1_hex);
use FindBin;

my $top = "$FindBin::Bin/..";
my $lua = "$top/ngx_oauth2_module/lua";
my $out = "$top/ngx_oauth2_module/ngx_oauth2_scripts.h";

# the scripts, in the order of NGX_OAUTH2_SCRIPT_*, and their parts
my @scripts = (
    [ 'lookup',    'LOOKUP',    qw(gcra gate consent lookup) ],
    [ 'ratelimit', 'RATELIMIT', qw(gcra ratelimit) ],
    [ 'jwt',       'JWT',       qw(gcra gate consent jwt) ],
    [ 'authz_put', 'AUTHZ_PUT', qw(authz_put) ],
    [ 'authz_decide', 'AUTHZ_DECIDE', qw(authz_decide) ],
    [ 'authz_code', 'AUTHZ_CODE', qw(consent authz_issue authz_code) ],
    [ 'authz_refresh', 'AUTHZ_REFRESH',
      qw(consent authz_issue authz_refresh) ],
    [ 'authz_consent_revoke', 'AUTHZ_CONSENT_REVOKE',
      qw(authz_consent_revoke) ],
    [ 'authz_revoke', 'AUTHZ_REVOKE', qw(authz_revoke) ],
    [ 'lease',     'LEASE',     qw(gcra lease) ],
);

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    local $/;
    my $text = <$fh>;
    die "$file: not a text file ending with a newline\n"
        unless $text =~ /\n\z/ && $text !~ /[^\n\x20-\x7e]/;
    return $text;
}

sub text {
    my ($s) = @_;
    return join '', map { slurp("$lua/$_.lua") } @$s[2 .. $#$s];
}

sub c_string {
    my ($text) = @_;
    my $c = '';
    for my $line (split /(?<=\n)/, $text) {
        $line =~ s/\n\z//;
        $line =~ s/(["\\])/\\$1/g;
        $c .= "    \"$line\\n\"\n";
    }
    return $c;
}

if (@ARGV == 2 && $ARGV[0] eq '--text') {
    my ($s) = grep { $_->[0] eq $ARGV[1] } @scripts
        or die "no script \"$ARGV[1]\"\n";
    print text($s);
    exit 0;
}

my $h = <<'END';

/*
 * The module's Redis scripts: written by util/gen-scripts.pl from
 * the .lua files in ngx_oauth2_module/lua/; do not edit (t/002-scripts.t
 * fails when this file is stale).  Included by ngx_oauth2_redis.c alone.
 */


#ifndef _NGX_OAUTH2_SCRIPTS_H_INCLUDED_
#define _NGX_OAUTH2_SCRIPTS_H_INCLUDED_

END

# the scripts' indexes: NGX_OAUTH2_SCRIPT_<NAME>, in the module's header
# (ngx_oauth2_script_ids.h, also written here)

for my $i (0 .. $#scripts) {
    my $s = $scripts[$i];
    my $text = text($s);
    $h .= "\n/* " . join(' + ', map { "$_.lua" } @$s[2 .. $#$s]) . " */\n\n";
    my $define = "#define NGX_OAUTH2_SCRIPT_$s->[1]_SHA1";
    $h .= $define . (' ' x (78 - length $define)) . "\\\n    \""
        . sha1_hex($text) . "\"\n\n";
    $h .= "static char  ngx_oauth2_script_$s->[0]\[] =\n" . c_string($text);
    $h =~ s/\n\z/;\n/;
    $h .= "\n";
}

$h .= <<'END';

static ngx_oauth2_script_t  ngx_oauth2_scripts[] = {
END

for my $s (@scripts) {
    my $line = "    { ngx_oauth2_script_$s->[0], sizeof(ngx_oauth2_script_$s->[0]) - 1,";
    if (length $line > 80) {
        $line = "    { ngx_oauth2_script_$s->[0],\n"
              . "      sizeof(ngx_oauth2_script_$s->[0]) - 1,";
    }
    $h .= "$line\n      (u_char *) NGX_OAUTH2_SCRIPT_$s->[1]_SHA1 },\n";
}

$h .= <<'END';
};


#endif /* _NGX_OAUTH2_SCRIPTS_H_INCLUDED_ */
END

my $ids = <<'END';

/*
 * The indexes of the module's Redis scripts (ngx_oauth2_scripts.h):
 * written by util/gen-scripts.pl; do not edit.
 */


#ifndef _NGX_OAUTH2_SCRIPT_IDS_H_INCLUDED_
#define _NGX_OAUTH2_SCRIPT_IDS_H_INCLUDED_


END

my $width = 28;
for my $s (@scripts) {
    my $l = length("NGX_OAUTH2_SCRIPT_$s->[1]") + 1;
    $width = $l if $l > $width;
}

$ids .= sprintf "#define %-${width}s -1\n", 'NGX_OAUTH2_SCRIPT_NONE';

for my $i (0 .. $#scripts) {
    $ids .= sprintf "#define %-${width}s %d\n",
                    "NGX_OAUTH2_SCRIPT_$scripts[$i][1]", $i;
}

$ids .= <<'END';


#endif /* _NGX_OAUTH2_SCRIPT_IDS_H_INCLUDED_ */
END

my %files = ($out => $h,
             "$top/ngx_oauth2_module/ngx_oauth2_script_ids.h" => $ids);

if (@ARGV && $ARGV[0] eq '--check') {
    for my $f (sort keys %files) {
        my $now = -f $f ? slurp($f) : '';
        if ($now ne $files{$f}) {
            print STDERR "$f is stale: run util/gen-scripts.pl\n";
            exit 1;
        }
    }
    exit 0;
}

for my $f (sort keys %files) {
    open my $fh, '>', "$f.tmp" or die "$f.tmp: $!\n";
    print $fh $files{$f};
    close $fh or die "$f.tmp: $!\n";
    rename "$f.tmp", $f or die "$f: $!\n";
}
