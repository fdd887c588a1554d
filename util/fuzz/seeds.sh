#!/usr/bin/env bash
# The fuzz targets' configuration, keys and seed corpora.
#
#   util/fuzz/seeds.sh WORKDIR CORPUSDIR
#
# WORKDIR gets fuzz.conf (two servers: one with every JWT check, one with
# none), its keys (RS256, ES256, an HS256 secret) and logs/; CORPUSDIR gets
# token/, redis/, jwt/ and form/, each with a few valid and a few broken
# inputs.
# Existing corpus files are kept: the corpora grow from run to run.

set -euo pipefail

work=$1
corpus=$2
mkdir -p "$work/logs" "$corpus/token" "$corpus/redis" "$corpus/jwt" \
    "$corpus/form"

if [ ! -f "$work/hs256.secret" ]; then
    openssl rand -hex 32 > "$work/hs256.secret"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$work/rs.key" 2>/dev/null
    openssl pkey -in "$work/rs.key" -pubout -out "$work/rs.pub"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$work/es.key" 2>/dev/null
    openssl pkey -in "$work/es.key" -pubout -out "$work/es.pub"
fi

cat > "$work/fuzz.conf" << EOF
# written by util/fuzz/seeds.sh; loaded as "nginx -t" loads it
# (OAUTH2_FUZZ_ERROR_LOG=/dev/stderr util/fuzz.sh ... shows the module's log)
error_log  ${OAUTH2_FUZZ_ERROR_LOG:-/dev/null}  info;
pid        $work/logs/nginx.pid;

events {
    worker_connections  64;
}

http {
    access_log  off;

    # never connected to: no worker process starts
    oauth2_redis         127.0.0.1:1;
    oauth2_plan          gold    10r/s 1000r/h 100000r/d;
    oauth2_plan          bronze  1r/s;
    oauth2_default_plan  bronze;

    oauth2_jwt_key  RS256  rs.pub  kid=rs;
    oauth2_jwt_key  ES256  es.pub  kid=es;
    oauth2_jwt_key  HS256  ./hs256.secret;

    # server 0: every check
    server {
        listen  unix:$work/logs/s0.sock;
        oauth2                 on;
        oauth2_scope           paymentRequest;
        oauth2_token_max_length  8192;
        oauth2_jwt_issuer      https://as.bank.example;
        oauth2_jwt_audience    https://api.bank.example other;
        oauth2_jwt_leeway      30s;
        oauth2_jwt_revocation  on;
        oauth2_jwt_claim       plan  tier;
        oauth2_jwt_claim       client_id  cid;
    }

    # server 1: defaults
    server {
        listen  unix:$work/logs/s1.sock;
        oauth2  on;
    }
}
EOF

seed() {
    # seed DIR NAME: stdin is the input
    cat > "$corpus/$1/seed-$2"
}

b64url() {
    openssl base64 -A | tr '+/' '-_' | tr -d '='
}

# token: [query string] NUL Authorization value (first byte: server)

printf 'Bearer abc.DEF-ghi_jkl~mno+pqr/stu==' | seed token plain
printf 'a=1&b=2\0Bearer abcdef' | seed token args
printf 'access_token=x\0Bearer abcdef' | seed token query-token
printf 'Bearer  two-spaces' | seed token two-spaces
printf 'bearer lower' | seed token lower
printf 'Basic dXNlcjpwYXNz' | seed token basic
printf 'Bearer' | seed token alone
printf 'BearerX abc' | seed token bearerx
printf 'paymentRequest accounts\0Bearer t' | seed token scopes
printf 'Bearer a\tb' | seed token tab
printf '\001!Bearer abc' | seed token no-header

# redis: script byte (0 lookup, 1 rate limit, 2 JWT, 3 lease), server
# byte, RESP

lookup() {
    # lookup TTLMS CLIENT SCOPE PLAN CONSENT SUB EXP STATUS RL: the flat
    # reply, RL either ":0" (not counted) or the 6 integers of the GCRA
    local n=10 s v
    case $9 in *:*:*) n=15 ;; esac
    s="*$n\r\n:1\r\n:$1\r\n"
    for v in "$2" "$3" "$4" "$5" "$6" "$7" "$8"; do
        s="$s\$${#v}\r\n$v\r\n"
    done
    printf '%s%s' "$s" "$9"
}

rl=':1\r\n:0\r\n:9\r\n:100\r\n:0\r\n:0\r\n'
printf '\000\000'"$(lookup 3600000 c1 'paymentRequest accounts' gold cons1 \
    u1 9999999999 valid "$rl")" | seed redis lookup-gold
printf '\000\001'"$(lookup 3600000 c1 paymentRequest '' '' '' '' '' \
    ':0\r\n')" | seed redis lookup-no-rl
printf '\000\000'"$(lookup -1 c1 accounts nope c u 12x revoked \
    ':0\r\n')" | seed redis lookup-odd
printf '\000\000*1\r\n:0\r\n' | seed redis unknown
printf '\000\000-ERR something\r\n' | seed redis error
printf '\001\000*6\r\n:2\r\n:1\r\n:0\r\n:1000\r\n:850\r\n:0\r\n' | seed redis rl
printf '\001\000*6\r\n:1\r\n:0\r\n:5\r\n:1\r\n:0\r\n:2\r\n' | seed redis rl-bad-keys
printf '\000\000'"$(lookup 3600000 'c\r\nX-Injected: yes' accounts '' c u '' \
    valid ':0\r\n')" | seed redis lookup-crlf
printf '\002\000*8\r\n:0\r\n$5\r\nvalid\r\n'"$rl" | seed redis jwt
printf '\002\000*3\r\n:0\r\n$-1\r\n:0\r\n' | seed redis jwt-not-counted
printf '\002\001*3\r\n:1\r\n$-1\r\n:0\r\n' | seed redis jwt-revoked
printf '\000\000*10\r\n:1\r\n:5\r\n*1\r\n:1\r\n' | seed redis nested
# a take under the default plan (bronze: one limit): 7 integers, then the
# TAT written for each limit
tat=':1764460800000000\r\n'
printf '\003\000*8\r\n:1\r\n:0\r\n:90\r\n:1\r\n:0\r\n:0\r\n:10\r\n'"$tat" \
    | seed redis lease-take
printf '\003\000*8\r\n:2\r\n:0\r\n:0\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n' \
    | seed redis lease-limited
printf '\003\000*8\r\n:2\r\n:0\r\n:0\r\n:1\r\n:1\r\n:0\r\n:3\r\n'"$tat" \
    | seed redis lease-limited-with-permits
printf '\003\000*7\r\n:1\r\n:0\r\n:90\r\n:1\r\n:0\r\n:0\r\n:10\r\n' \
    | seed redis lease-no-tat

# jwt: mode byte, see util/fuzz/fuzz_jwt.c

now=1800000000    # NGX_OAUTH2_FUZZ_NOW: the targets' pinned clock
exp=$((now + 3600))
hdr='{"alg":"HS256","typ":"JWT"}'
full="{\"iss\":\"https://as.bank.example\",\"aud\":[\"x\",\"other\"],\
\"exp\":$exp,\"nbf\":$now,\"cid\":\"c1\",\"scope\":\"paymentRequest\",\
\"tier\":\"gold\",\"consent_id\":\"cons1\",\"sub\":\"u1\",\"jti\":\"j1\"}"
small="{\"exp\":$exp,\"client_id\":\"c1\",\"scp\":[\"a\",\"b\"]}"

printf '\001%s\0%s' "$hdr" "$full" | seed jwt signed-full
printf '\005%s\0%s' "$hdr" "$small" | seed jwt signed-small
printf '\002%s' "$full" | seed jwt claims-full
printf '\006%s' "$small" | seed jwt claims-small
printf '\001{"alg":"none"}\0%s' "$small" | seed jwt alg-none
printf '\001{"alg":"HS256","kid":"rs"}\0%s' "$small" | seed jwt alg-confusion
printf '\002{"exp":9223372036854775807,"client_id":"c"}' | seed jwt exp-max
printf '\002{"exp":%s,"nbf":-9223372036854775807,"client_id":"c"}' "$exp" \
    | seed jwt nbf-min

rs_h=$(printf '{"alg":"RS256","kid":"rs"}' | b64url)
es_h=$(printf '{"alg":"ES256","kid":"es"}' | b64url)
c=$(printf '%s' "$small" | b64url)
rs_s=$(printf '%s.%s' "$rs_h" "$c" \
    | openssl dgst -sha256 -sign "$work/rs.key" -binary | b64url)
printf '\000%s.%s.%s' "$rs_h" "$c" "$rs_s" | seed jwt rs256
printf '\003%s.%s.%s' "$rs_h" "$c" "$rs_s" | seed jwt rs256-cached
printf '\000%s.%s.%s' "$es_h" "$c" \
    "$(head -c 64 /dev/urandom | b64url)" | seed jwt es256-random-sig
printf '\000a.b.c' | seed jwt short
printf '\000..' | seed jwt dots

# form: first byte even: a form or query string; odd: an Authorization value

printf '\000grant_type=authorization_code&code=abc&redirect_uri=https%%3A%%2F%%2Ftpp.example%%2Fcb&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk' \
    | seed form token-code
printf '\000response_type=code&client_id=tpp-1&scope=accounts+payments++accounts&state=x%%20y&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256' \
    | seed form authorize
printf '\000grant_type=a&grant_type=b&x=%%FF&&=&y' | seed form dup-bad
printf '\000scope=%%C3%%A9t%%C3%%A9&state=%%E2%%82%%AC&user=%%F0%%9F%%98%%80' \
    | seed form utf8
printf '\000token=%%zz&token_type_hint=%%' | seed form broken-percent
printf '\000client%%5Fid=tpp&client_secret=s+%%3A' | seed form encoded-name
printf '\001Basic dHBwLTE6czNjcmV0' | seed form basic
printf '\001Basic dHBwJTNBYyUyRjE6cGErc3MlM0F3JTI1cmQ=' | seed form basic-encoded
printf '\001basic  Og==' | seed form basic-empty
printf '\001Bearer abc' | seed form bearer

