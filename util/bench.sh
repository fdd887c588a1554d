#!/usr/bin/env bash
# make bench: one nginx worker, the same tiny static file behind every
# location, Redis on loopback, wrk; each path measured in turn, round after
# round (A B C D A B C D ...) so that machine drift cancels.
#
#   util/bench.sh [seconds per run] [rounds] [connections]
#
# Paths:
#   plain    no oauth2 (the ceiling)
#   opaque   opaque token, token + scope + consent + rate limit via Redis
#   cached   the same with oauth2_cache
#   cached-norl  oauth2_cache, oauth2_rate_limit off: no Redis call at all
#   jwt      RS256 JWT verified locally, consent + rate limit via Redis
#   jwt-hs   HS256 JWT verified locally, no Redis call at all
#
# Then the authorization server's token endpoint (oauth2_token), where
# every request spends what it asks for: a code (grant_type=
# authorization_code, with PKCE) or a refresh token (grant_type=
# refresh_token), each seeded in Redis beforehand, one per request (wrk
# numbers them with util/bench-token.lua); two Redis round trips per
# request (the client, then the grant's script).
#
# Prints requests/s, p50/p99 latency, the ratio to plain, the Redis round
# trips per request (EVALSHA calls counted by INFO commandstats) and the
# CPU time the nginx worker (/proc) and Redis (INFO cpu) spent per request.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-5}
rounds=${2:-3}
conns=${3:-32}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
MODULE=${MODULE:-$top/build/ngx_http_oauth2_module.so}
work=$(mktemp -d /tmp/oauth2-bench.XXXXXX)

free_port() {
    perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1,
        LocalAddr => "127.0.0.1:0", ReuseAddr => 1)->sockport'
}
rport=$(free_port)
nport=$(free_port)

cleanup() {
    "$NGINX_BIN" -p "$work/" -c conf/nginx.conf -s stop 2>/dev/null || true
    redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --logfile "$work/redis.log"

chmod 755 "$work"
mkdir -p "$work/conf" "$work/logs" "$work/html"
echo ok > "$work/html/ok.txt"

# keys and tokens
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$work/rsa.pem" 2>/dev/null
openssl pkey -in "$work/rsa.pem" -pubout -out "$work/rsa.pub"
secret=bench-secret-bench-secret-bench-secret
tokens=$(perl -I"$top/t/lib" -MOAuth2JWT -e '
    $OAuth2JWT::Dir = shift; $OAuth2JWT::Secret = shift;
    my %c = (client_id => "bench", scope => "accounts",
             consent_id => "c-bench", exp => time + 86400);
    print OAuth2JWT::sign("RS256", \%c, key => "$OAuth2JWT::Dir/rsa.pem"),
          " ", OAuth2JWT::sign("HS256", { %c, consent_id => undef },
                               header => { kid => "hs" });
' "$work" "$secret")
jwt_rs=${tokens% *}
jwt_hs=${tokens#* }

cport=$(free_port)

conf() {   # conf PORT CACHE_DIRECTIVE
    cat <<CONF
load_module $MODULE;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    oauth2_redis 127.0.0.1:$rport;
    oauth2_jwt_key RS256 $work/rsa.pub;
    oauth2_jwt_key HS256 $secret kid=hs;
    oauth2_plan big 1000000r/s;
    oauth2_default_plan big;
    $2

    server {
        listen 127.0.0.1:$1;
        root $work/html;
        location /plain  { try_files /ok.txt =404; }
        location /opaque { oauth2 on; oauth2_scope accounts;
                           try_files /ok.txt =404; }
        location /opaque-norl { oauth2 on; oauth2_scope accounts;
                           oauth2_rate_limit off; try_files /ok.txt =404; }
        location /jwt    { oauth2 on; oauth2_scope accounts;
                           oauth2_token_type jwt; try_files /ok.txt =404; }
        location /jwt-hs { oauth2 on; oauth2_scope accounts;
                           oauth2_token_type jwt; oauth2_consent off;
                           oauth2_rate_limit off; try_files /ok.txt =404; }
        location = /token { oauth2_token; }
    }
}
CONF
}

# nginx without the cache (cport) and with it (nport): oauth2_cache is
# http-wide
mkdir -p "$work/nc/conf" "$work/nc/logs"
conf "$cport" "" > "$work/nc/conf/nginx.conf"
conf "$nport" "oauth2_cache zone=bench:10m ttl=1h;" > "$work/conf/nginx.conf"

"$NGINX_BIN" -p "$work/" -c conf/nginx.conf
"$NGINX_BIN" -p "$work/nc/" -c conf/nginx.conf
trap '"$NGINX_BIN" -p "$work/nc/" -c conf/nginx.conf -s stop 2>/dev/null || true; cleanup' EXIT

opaque=bench-opaque-token
key=oauth2:token:$(printf %s "$opaque" | sha256sum | cut -d' ' -f1)
redis-cli -p "$rport" HSET "$key" client_id bench scope accounts \
    consent_id c-bench >/dev/null
redis-cli -p "$rport" HSET oauth2:consent:c-bench status valid >/dev/null
sleep 0.5

declare -A url hdr
url[plain]=http://127.0.0.1:$cport/plain;   hdr[plain]="X-None: 1"
url[opaque]=http://127.0.0.1:$cport/opaque; hdr[opaque]="Authorization: Bearer $opaque"
url[cached]=http://127.0.0.1:$nport/opaque; hdr[cached]="Authorization: Bearer $opaque"
url[cached-norl]=http://127.0.0.1:$nport/opaque-norl
hdr[cached-norl]="Authorization: Bearer $opaque"
url[jwt]=http://127.0.0.1:$cport/jwt;       hdr[jwt]="Authorization: Bearer $jwt_rs"
url[jwt-hs]=http://127.0.0.1:$cport/jwt-hs; hdr[jwt-hs]="Authorization: Bearer $jwt_hs"
paths="plain opaque cached cached-norl jwt jwt-hs"

for p in $paths; do   # every path answers 200 before anything is measured
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "${hdr[$p]}" "${url[$p]}")
    [ "$code" = 200 ] || { echo "$p answers $code"; exit 1; }
done

cpu() {   # Redis's own CPU time so far, in microseconds
    redis-cli -p "$rport" INFO cpu | tr -d '\r' | awk -F: '
        $1 == "used_cpu_sys" || $1 == "used_cpu_user" { s += $2 }
        END { printf "%.0f", s * 1000000 }'
}

ncpu() {   # CPU time of the worker of the nginx at $1, in microseconds
    local w
    w=$(pgrep -P "$(cat "$1/logs/nginx.pid")" | head -1)
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) * 1000000 / hz }' \
        "/proc/$w/stat"
}

calls() {
    redis-cli -p "$rport" INFO commandstats \
        | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p'
}

declare -A rps p50 p99 trips reqs rcpu wcpu dir
for p in $paths; do dir[$p]=$work/nc; done
dir[cached]=$work; dir[cached-norl]=$work
for r in $(seq "$rounds"); do
    for p in $paths; do
        before=$(calls); before=${before:-0}
        cpu0=$(cpu)
        ncpu0=$(ncpu "${dir[$p]}")
        out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency -H "${hdr[$p]}" "${url[$p]}")
        after=$(calls); after=${after:-0}
        rcpu[$p]=$(( ${rcpu[$p]:-0} + $(cpu) - cpu0 ))
        wcpu[$p]=$(( ${wcpu[$p]:-0} + $(ncpu "${dir[$p]}") - ncpu0 ))
        n=$(echo "$out" | awk '/requests in/ { print $1 }')
        rps[$p]="${rps[$p]:-} $(echo "$out" | awk '/Requests\/sec/ { print $2 }')"
        p50[$p]="${p50[$p]:-} $(echo "$out" | awk '$1 == "50%" { print $2 }')"
        p99[$p]="${p99[$p]:-} $(echo "$out" | awk '$1 == "99%" { print $2 }')"
        trips[$p]=$(( ${trips[$p]:-0} + after - before ))
        reqs[$p]=$(( ${reqs[$p]:-0} + n ))
    done
done

mean() { echo "$1" | tr ' ' '\n' | awk 'NF { s += $1; n++ } END { printf "%.0f", s / n }'; }
median() { echo "$1" | tr ' ' '\n' | awk 'NF' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

base=$(mean "${rps[plain]}")
echo
echo "wrk -t1 -c$conns -d${secs}s --latency, $rounds rounds interleaved, one nginx worker"
printf '%-12s %8s %6s %9s %9s %9s %9s %9s\n' path 'req/s' ratio p50 p99 \
    'redis/req' 'nginx us' 'redis us'
for p in $paths; do
    m=$(mean "${rps[$p]}")
    printf '%-12s %8s %6s %9s %9s %9s %9s %9s\n' "$p" "$m" \
        "$(echo "scale=3; $m / $base" | bc)" "$(median "${p50[$p]}")" \
        "$(median "${p99[$p]}")" \
        "$(echo "scale=3; ${trips[$p]} / ${reqs[$p]}" | bc)" \
        "$(echo "scale=1; ${wcpu[$p]} / ${reqs[$p]}" | bc)" \
        "$(echo "scale=1; ${rcpu[$p]} / ${reqs[$p]}" | bc)"
done
echo "(nginx us, redis us: CPU time of the nginx worker and of Redis per request)"

# the token endpoint: codes and refresh tokens seeded for each run, as many
# as the run can spend (measured on the first, with margin)

secret=bench-client-secret
redis-cli -p "$rport" HSET oauth2:client:bench-tpp \
    secret_sha256 "$(printf %s "$secret" | sha256sum | cut -d' ' -f1)" \
    redirect_uris https://tpp.example/cb subscribed 1 scopes accounts \
    plan big >/dev/null
redis-cli -p "$rport" HSET oauth2:consent:c-bench status valid \
    client_id bench-tpp sub psu expires $(( $(date +%s) + 86400 )) >/dev/null
verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk
challenge=$(printf %s "$verifier" | openssl dgst -sha256 -binary \
            | base64 | tr '+/' '-_' | tr -d '=')

seed() {   # seed code|refresh PREFIX N: N records in one redis-cli --pipe
    perl -MDigest::SHA=sha256_hex -e '
        my ($kind, $prefix, $n, $challenge) = @ARGV;
        sub cmd { my $s = "*" . @_ . "\r\n";
                  $s .= "\$" . length($_) . "\r\n$_\r\n" for @_; $s }
        for my $i (1 .. $n) {
            my $k = "oauth2:$kind:" . sha256_hex("$prefix$i");
            print cmd("HSET", $k, "client_id", "bench-tpp",
                      "scope", "accounts", "consent_id", "c-bench",
                      "sub", "psu",
                      $kind eq "code"
                      ? ("redirect_uri", "https://tpp.example/cb",
                         "redirect_given", "0", "code_challenge",
                         $challenge) : ());
            print cmd("EXPIRE", $k, 3600);
        }' "$1" "$2" "$3" "$challenge" \
        | redis-cli -p "$rport" --pipe >/dev/null
}

tcalls() {   # EVALSHA only: commandstats counts a script's own HMGETs too
    calls
}

declare -A tgrant tn
tgrant[token-code]=code
tgrant[token-refresh]=refresh
tpaths="token-code token-refresh"
tn[token-code]=$(( secs * 15000 ))
tn[token-refresh]=$(( secs * 15000 ))

for r in $(seq "$rounds"); do
    for p in $tpaths; do
        kind=${tgrant[$p]}
        prefix=bench-$kind-$r-
        seed "$kind" "$prefix" "${tn[$p]}"
        before=$(tcalls)
        ncpu0=$(ncpu "$work/nc")
        cpu0=$(cpu)
        out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency \
                  -s "$top/util/bench-token.lua" \
                  "http://127.0.0.1:$cport/token" -- "$kind" "$prefix" \
                  "bench-tpp:$secret" "$verifier")
        after=$(tcalls)
        rcpu[$p]=$(( ${rcpu[$p]:-0} + $(cpu) - cpu0 ))
        wcpu[$p]=$(( ${wcpu[$p]:-0} + $(ncpu "$work/nc") - ncpu0 ))
        n=$(echo "$out" | awk '/requests in/ { print $1 }')
        bad=$(echo "$out" | awk '/Non-2xx/ { print $NF }')
        if [ -n "$bad" ] && [ "$bad" != 0 ]; then
            echo "$p: $bad of $n requests were not 200 (seeded ${tn[$p]})"
        fi
        rps[$p]="${rps[$p]:-} $(echo "$out" | awk '/Requests\/sec/ { print $2 }')"
        p50[$p]="${p50[$p]:-} $(echo "$out" | awk '$1 == "50%" { print $2 }')"
        p99[$p]="${p99[$p]:-} $(echo "$out" | awk '$1 == "99%" { print $2 }')"
        trips[$p]=$(( ${trips[$p]:-0} + after - before ))
        reqs[$p]=$(( ${reqs[$p]:-0} + n ))
        # what the run left: its tokens and the codes it did not spend
        redis-cli -p "$rport" --scan --pattern 'oauth2:token:*' \
            | grep -v "$key" | xargs -r -n 1000 redis-cli -p "$rport" DEL \
            >/dev/null
        for pat in 'oauth2:refresh:*' 'oauth2:code:*'; do
            redis-cli -p "$rport" --scan --pattern "$pat" \
                | xargs -r -n 1000 redis-cli -p "$rport" DEL >/dev/null
        done
    done
done

echo
echo "the token endpoint (oauth2_token): each request spends a code or a refresh token"
printf '%-14s %8s %9s %9s %9s %9s %9s\n' path 'req/s' p50 p99 \
    'evalsha/req' 'nginx us' 'redis us'
for p in $tpaths; do
    printf '%-14s %8s %9s %9s %9s %9s %9s\n' "$p" "$(mean "${rps[$p]}")" \
        "$(median "${p50[$p]}")" "$(median "${p99[$p]}")" \
        "$(echo "scale=3; ${trips[$p]} / ${reqs[$p]}" | bc)" \
        "$(echo "scale=1; ${wcpu[$p]} / ${reqs[$p]}" | bc)" \
        "$(echo "scale=1; ${rcpu[$p]} / ${reqs[$p]}" | bc)"
done
echo "(two round trips a request: HMGET of the client, EVALSHA of the grant's script)"
