package OAuth2JWT;

# Keys and signed JWTs for the suites: keys made with the openssl command
# line into a temporary folder (TEST_NGINX_JWT_DIR, for the configs),
# tokens signed here: HS with Digest::SHA, RS and ES with `openssl dgst`.

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256 hmac_sha384 hmac_sha512);
use File::Temp qw(tempdir);
use JSON::PP;
use MIME::Base64 qw(encode_base64);

our $Dir;
our $Secret = 'a-test-secret-of-at-least-32-bytes!!';

my $Json = JSON::PP->new->canonical(1);

sub run {
    my ($cmd) = @_;
    system("$cmd >/dev/null 2>&1") == 0 or die "failed: $cmd\n";
}

# makes the keys once per test file: rsa.pem/.pub, ec256, ec384, hs.secret
sub setup {
    $Dir = tempdir(CLEANUP => 1);
    run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
        . "-out $Dir/rsa.pem");
    run("openssl pkey -in $Dir/rsa.pem -pubout -out $Dir/rsa.pub");
    run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
        . "-out $Dir/rsa2.pem");
    for my $c ([256, 'P-256'], [384, 'P-384']) {
        run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:$c->[1] "
            . "-out $Dir/ec$c->[0].pem");
        run("openssl pkey -in $Dir/ec$c->[0].pem -pubout "
            . "-out $Dir/ec$c->[0].pub");
    }
    open my $fh, '>', "$Dir/hs.secret" or die $!;
    print $fh "$Secret\n";
    close $fh;
    $ENV{TEST_NGINX_JWT_DIR} = $Dir;
    return $Dir;
}

sub b64url {
    my $s = encode_base64($_[0], '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

sub _openssl_sign {
    my ($md, $keyfile, $input) = @_;
    my $in = "$Dir/in.$$";
    open my $fh, '>', $in or die $!;
    binmode $fh;
    print $fh $input;
    close $fh;
    my $sig = `openssl dgst -$md -sign $keyfile $in`;
    die "openssl dgst failed" if $?;
    unlink $in;
    return $sig;
}

# DER ECDSA-Sig-Value -> JOSE r || s
sub _der_to_jose {
    my ($der, $size) = @_;
    my @b = unpack('C*', $der);
    my $i = 2;
    $i++ if $b[1] & 0x80;
    my @parts;
    for (1 .. 2) {
        die "bad DER" unless $b[$i] == 0x02;
        my $len = $b[$i + 1];
        my $v = pack('C*', @b[$i + 2 .. $i + 1 + $len]);
        $v =~ s/^\x00+//;
        push @parts, ("\x00" x ($size - length $v)) . $v;
        $i += 2 + $len;
    }
    return join '', @parts;
}

# sign_raw($alg, $header_json, $claims_json[, $key]): the token
sub sign_raw {
    my ($alg, $header, $claims, $key) = @_;
    my $input = b64url($header) . '.' . b64url($claims);
    my $sig;
    if ($alg =~ /^HS(\d+)$/) {
        my %f = (256 => \&hmac_sha256, 384 => \&hmac_sha384,
                 512 => \&hmac_sha512);
        $sig = $f{$1}->($input, $key // $Secret);
    } elsif ($alg =~ /^RS(\d+)$/) {
        $sig = _openssl_sign("sha$1", $key // "$Dir/rsa.pem", $input);
    } elsif ($alg =~ /^ES(\d+)$/) {
        my $der = _openssl_sign("sha$1", $key // "$Dir/ec$1.pem", $input);
        $sig = _der_to_jose($der, $1 == 256 ? 32 : $1 == 384 ? 48 : 66);
    } elsif ($alg eq 'none') {
        $sig = '';
    }
    return "$input." . b64url($sig);
}

# sign('RS256', { client_id => ..., ... }, header => { kid => ... },
#      key => FILE_OR_SECRET): exp defaults to an hour from now
sub sign {
    my ($alg, $claims, %o) = @_;
    my %c = (exp => time + 3600, %$claims);
    delete $c{$_} for grep { !defined $c{$_} } keys %c;
    my %h = (alg => $alg, typ => 'JWT', %{ $o{header} || {} });
    delete $h{$_} for grep { !defined $h{$_} } keys %h;
    return sign_raw($alg, $Json->encode(\%h), $Json->encode(\%c), $o{key});
}

1;
