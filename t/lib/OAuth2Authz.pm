package OAuth2Authz;

# For the authorization server's suites: clients, consents, codes and
# refresh tokens seeded the way the module writes them
# (docs/redis-schema.md), HTTP Basic credentials, PKCE pairs, and a small
# HTTP client for `--- init` sections and plain Test::More suites.
#
#   OAuth2Authz::seed_client('tpp-1', 's3cret', scopes => 'accounts');
#   OAuth2Authz::basic('tpp-1', 's3cret')   # "Authorization: Basic ..."
#   my ($verifier, $challenge) = OAuth2Authz::pkce();
#   OAuth2Authz::seed_consent('c-1', client_id => 'tpp-1');
#   OAuth2Authz::seed_code('code-1', client_id => 'tpp-1',
#                          consent_id => 'c-1');
#   my ($status, $headers, $body) = OAuth2Authz::http(
#       port => $port, method => 'POST', path => '/oauth2/token',
#       headers => [ OAuth2Authz::basic('tpp-1', 's3cret') ],
#       form => 'grant_type=...');

use strict;
use warnings;

use Digest::SHA qw(sha256 sha256_hex);
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use OAuth2Test;

our $RedirectUri = 'https://tpp.example/cb';
our $Verifier = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';

sub b64url {
    my $s = encode_base64($_[0], '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

# (verifier, S256 challenge)
sub pkce {
    my $v = shift // $Verifier;
    return ($v, b64url(sha256($v)));
}

sub basic {
    my ($id, $secret) = @_;
    return 'Authorization: Basic ' . encode_base64("$id:$secret", '');
}

sub form_headers {
    my ($id, $secret) = @_;
    return basic($id, $secret)
        . "\nContent-Type: application/x-www-form-urlencoded";
}

sub _hset {
    my ($key, $ttl, %f) = @_;
    delete $f{$_} for grep { !defined $f{$_} } keys %f;
    OAuth2Test::redis('DEL', $key);
    OAuth2Test::redis('HSET', $key, %f) if %f;
    OAuth2Test::redis('EXPIRE', $key, $ttl) if $ttl;
    return $key;
}

# a client record: oauth2:client:<id>
sub seed_client {
    my ($id, $secret, %f) = @_;
    return _hset($OAuth2Test::Prefix . "client:$id", 0,
                 secret_sha256 => sha256_hex($secret),
                 redirect_uris => $RedirectUri,
                 subscribed => '1',
                 scopes => 'accounts payments',
                 plan => 'gold',
                 name => "Client $id",
                 %f);
}

# a consent as the decision writes it: oauth2:consent:<id>; it outlives
# the tokens issued under it by a day (a consent that ended within the
# hour would cut the tokens' lifetime to what it has left, one second
# short whenever the clock ticks between the seed and the request)
sub seed_consent {
    my ($id, %f) = @_;
    my $ttl = exists $f{ttl} ? delete $f{ttl} : 86400 + 3600;
    my $now = time;
    return _hset($OAuth2Test::Prefix . "consent:$id", $ttl,
                 status => 'valid', client_id => 'tpp-1', sub => 'psu-1',
                 scope => 'accounts', created => $now,
                 expires => $now + 86400, %f);
}

# a code as the decision writes it: oauth2:code:<sha256>
sub seed_code {
    my ($code, %f) = @_;
    my $ttl = exists $f{ttl} ? delete $f{ttl} : 300;
    my (undef, $challenge) = pkce();
    return _hset($OAuth2Test::Prefix . 'code:' . sha256_hex($code), $ttl,
                 client_id => 'tpp-1', redirect_uri => $RedirectUri,
                 redirect_given => '1', code_challenge => $challenge,
                 scope => 'accounts', consent_id => 'c-1', sub => 'psu-1',
                 %f);
}

# a refresh token as the token endpoint writes it: oauth2:refresh:<sha256>
sub seed_refresh {
    my ($token, %f) = @_;
    my $ttl = exists $f{ttl} ? delete $f{ttl} : 3600;
    return _hset($OAuth2Test::Prefix . 'refresh:' . sha256_hex($token), $ttl,
                 client_id => 'tpp-1', scope => 'accounts',
                 consent_id => 'c-1', sub => 'psu-1', %f);
}

# a pending authorization request: oauth2:authz:<id>
sub seed_authz {
    my ($id, %f) = @_;
    my $ttl = exists $f{ttl} ? delete $f{ttl} : 600;
    my (undef, $challenge) = pkce();
    return _hset($OAuth2Test::Prefix . "authz:$id", $ttl,
                 client_id => 'tpp-1', client_name => 'Client tpp-1',
                 redirect_uri => $RedirectUri, redirect_given => '1',
                 scope => 'accounts', state => 'xyz',
                 code_challenge => $challenge, %f);
}

sub hgetall {
    my ($key) = @_;
    my $r = OAuth2Test::redis('HGETALL', $key);
    return ref $r ? { @$r } : {};
}

# One HTTP/1.0 request: (status, {lowercased header => value}, body).
#   port (the Test::Nginx server's by default), method, path,
#   headers => [...], form => 'a=b' (a form body, with its Content-Type),
#   body => raw bytes
sub http {
    my (%o) = @_;
    my $port = $o{port} // OAuth2Test::server_port();
    my $method = $o{method} // 'GET';
    my @headers = @{ $o{headers} // [] };
    my $body = $o{body} // '';
    if (defined $o{form}) {
        $body = $o{form};
        push @headers, 'Content-Type: application/x-www-form-urlencoded';
    }
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp',
                                     Timeout => 10)
        or return (0, {}, '');
    print $sock "$method $o{path} HTTP/1.0\r\nHost: localhost\r\n",
                map({ "$_\r\n" } @headers),
                ($method eq 'POST' || length $body
                 ? 'Content-Length: ' . length($body) . "\r\n" : ''),
                "\r\n", $body;
    local $/;
    my $res = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm 10;
        my $r = <$sock>;
        alarm 0;
        $r;
    } // '';
    alarm 0;
    close $sock;
    my ($head, $content) = split /\r\n\r\n/, $res, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d{3})};
    my %h;
    for my $line (split /\r\n/, $head // '') {
        next unless $line =~ /^([^:]+):\s*(.*)$/;
        my $k = lc $1;
        $h{$k} = exists $h{$k} ? "$h{$k}, $2" : $2;
    }
    return ($status // 0, \%h, $content // '');
}

# a query parameter of a URL (percent-decoded)
sub query_param {
    my ($url, $name) = @_;
    return undef unless defined $url && $url =~ /[?&]\Q$name\E=([^&#]*)/;
    (my $v = $1) =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $v;
}

1;
