# oauth2_jwt_claim_variable: any claim of a JWT access token as a
# variable, nested ones (cnf.x5t#S256), names with capitals (which
# $oauth2_jwt_claim_NAME cannot reach: nginx lowercases variable names),
# names with a dot, and values of every JSON type, escaped.

use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use OAuth2Test;
use OAuth2Blocks;
use OAuth2JWT;

OAuth2JWT::setup();

our %T = (
    rich => OAuth2JWT::sign('HS256', {
        client_id => 'tpp-cv', scope => 'accounts',
        userName => "Jane\r\nX-Injected: yes",
        cnf => { 'x5t#S256' => 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' },
        'n.d' => 'dotted', roles => ['a', 'b'], flag => \1, none => undef,
        level => 3, ratio => 0.5 }),
);
$T{rich} = OAuth2JWT::sign_raw('HS256', '{"alg":"HS256","typ":"JWT"}',
    '{"client_id":"tpp-cv","scope":"accounts","userName":"Jane\r\nX-Injected: yes",'
    . '"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"},'
    . '"n.d":"dotted","roles":["a","b"],"flag":true,"none":null,'
    . '"level":3,"ratio":0.5,"exp":' . (time + 3600) . '}');

my $default_config = <<'_EOC_';
    location /api {
        oauth2 on;
        oauth2_token_type jwt;
        oauth2_consent off;
        proxy_set_header X-User $jwt_user;
        proxy_set_header X-Thumb $jwt_thumb;
        proxy_set_header X-Dot $jwt_dot;
        proxy_set_header X-Roles $jwt_roles;
        proxy_set_header X-Flag $jwt_flag;
        proxy_set_header X-None $jwt_none;
        proxy_set_header X-Missing $jwt_missing;
        proxy_set_header X-Level $jwt_level;
        proxy_set_header X-Ratio $jwt_ratio;
        proxy_set_header X-Lower $oauth2_jwt_claim_username;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "user=$http_x_user|thumb=$http_x_thumb|dot=$http_x_dot|roles=$http_x_roles|flag=$http_x_flag|none=$http_x_none|missing=$http_x_missing|level=$http_x_level|ratio=$http_x_ratio|lower=$http_x_lower|injected=$http_x_injected\n";
    }
_EOC_

my $default_http_config = <<'_EOC_';
    oauth2_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    oauth2_jwt_key HS256 $TEST_NGINX_JWT_DIR/hs.secret;
    oauth2_jwt_claim_variable $jwt_user userName;
    oauth2_jwt_claim_variable $jwt_thumb cnf.x5t#S256;
    oauth2_jwt_claim_variable $jwt_dot n\.d;
    oauth2_jwt_claim_variable $jwt_roles roles;
    oauth2_jwt_claim_variable $jwt_flag flag;
    oauth2_jwt_claim_variable $jwt_none none;
    oauth2_jwt_claim_variable $jwt_missing cnf.jkt;
    oauth2_jwt_claim_variable $jwt_level level;
    oauth2_jwt_claim_variable $jwt_ratio ratio;
_EOC_

OAuth2Blocks::defaults(
    http_config => $default_http_config,
    config => $default_config,
    request => "GET /api\n",
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: every kind of claim, nested, with capitals and a dot
--- more_headers eval
"Authorization: Bearer $::T{rich}"
--- error_code: 200
--- response_body
user=Jane\x0D\x0AX-Injected: yes|thumb=bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2|dot=dotted|roles=[\x22a\x22,\x22b\x22]|flag=true|none=|missing=|level=3|ratio=0.500000|lower=|injected=



=== TEST 2: an opaque token: the variables are empty
--- config
    location /api {
        oauth2 on;
        oauth2_consent off;
        proxy_set_header X-User $jwt_user;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "user=$http_x_user\n";
    }
--- init
OAuth2Test::seed_valid('tok-cv2', client_id => 'tpp-cv2');
--- more_headers
Authorization: Bearer tok-cv2
--- error_code: 200
--- response_body
user=
