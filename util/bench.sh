#!/usr/bin/env bash
# make bench: one nginx worker per instance, the same tiny static file
# behind every location, Redis on loopback, wrk; each path measured in
# turn, round after round (A B C ... A B C ...) so that machine drift
# cancels; every figure a ratio of paths measured side by side in one run.
#
#   util/bench.sh [seconds per run] [rounds] [connections]
#
# Paths:
#   plain        no oauth2 (the ceiling)
#   lua          what users deploy instead: an OpenResty location
#                (access_by_lua_block + lua-resty-redis's nginx.redis, 64
#                keepalive connections), one EVALSHA per request doing
#                HMGET token + scope check + HGET consent + TIME/GET/SET
#                GCRA (Debian's libnginx-mod-http-lua, lua-nginx-redis)
#   opaque-cN    opaque token, no cache, rate limit on: the lookup script
#                per request, oauth2_redis_connections N (1, 2, 4)
#   opaque-tls   the same over TLS to Redis (rediss://)
#   cached       oauth2_cache, rate limit on: the rate-limit script only
#   cached-norl  oauth2_cache, oauth2_rate_limit off: no Redis call
#   cached-lease oauth2_cache, rate limit on, oauth2_rate_limit_lease on
#                (max=1000 time=1s): permits taken in batches in the
#                background, most requests without a Redis call
#   jwt-hs       HS256 JWT verified locally, no Redis call
#   opaque-c1+m  opaque-c1 with oauth2_metrics (a metrics location, the
#                counters' zone, a label on /t): what counting costs
#   cached-norl+m  cached-norl with oauth2_metrics: the same, where nginx
#                does the least
#   prev-opaque, prev-cached
#                opaque-c1 and cached with the previous release's module
#                (BENCH_PREVIOUS, a git revision; built from git archive
#                into the bench's folder; left out, with a note, where
#                the checkout has no such revision; BENCH_PREVIOUS=none
#                leaves them out)
#
# Then the authorization server's token endpoint (oauth2_token), where
# every request spends what it asks for: a code (grant_type=
# authorization_code, with PKCE) or a refresh token (grant_type=
# refresh_token), each seeded in Redis beforehand, one per request (wrk
# numbers them with util/bench-token.lua); two Redis round trips per
# request (the client, then the grant's script).
#
# Prints requests/s, p50/p99 latency (at peak, and at half of each path's
# peak), the ratios to plain and to the Lua location, the Redis round
# trips per request (INFO commandstats), the CPU time the nginx worker and
# Redis spent per request, Redis's own cost of each script
# (usec_per_call), and the issue's goals, met or not.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-5}
rounds=${2:-3}
conns=${3:-64}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
MODULE=${MODULE:-$top/build/ngx_http_oauth2_module.so}
LUA_MODULES=/usr/lib/nginx/modules
# the release before the Redis connection layer of nginx's own (TLS,
# Sentinel) and the lean scripts: what this round is compared with
BENCH_PREVIOUS=${BENCH_PREVIOUS:-e6b585d}
work=$(mktemp -d /tmp/oauth2-bench.XXXXXX)
chmod 755 "$work"

free_port() {
    perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1,
        LocalAddr => "127.0.0.1:0", ReuseAddr => 1)->sockport'
}

rport=$(free_port)
tport=$(free_port)
instances=""

cleanup() {
    for i in $instances; do
        "$NGINX_BIN" -p "$work/$i/" -c conf/nginx.conf -s stop 2>/dev/null \
            || true
    done
    redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
    redis-cli -p "$tport" --tls --cacert "$work/ca.pem" shutdown nosave \
        >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# test certificates for TLS to Redis

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$work/redis.key" -out "$work/redis.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/ext"
openssl x509 -req -in "$work/redis.csr" -CA "$work/ca.pem" \
    -CAkey "$work/ca.key" -CAcreateserial -days 2 -extfile "$work/ext" \
    -out "$work/redis.pem" 2>/dev/null

redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --logfile "$work/redis.log"
redis-server --port 0 --tls-port "$tport" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize yes --logfile "$work/redis-tls.log" \
    --tls-cert-file "$work/redis.pem" --tls-key-file "$work/redis.key" \
    --tls-ca-cert-file "$work/ca.pem" --tls-auth-clients no
sleep 0.5

secret=bench-secret-bench-secret-bench-secret
jwt_hs=$(perl -I"$top/t/lib" -MOAuth2JWT -e '
    $OAuth2JWT::Secret = shift;
    print OAuth2JWT::sign("HS256", { client_id => "bench",
        scope => "accounts", exp => time + 86400 });' "$secret")

# an nginx of its own for a path:
# instance NAME PORT HTTP-LINES LOCATION [SERVER-LINES]
instance() {
    local name=$1 port=$2 http=$3 loc=$4 extra=${5:-} load="load_module $MODULE;"
    case $name in prev-*) load="load_module $work/prev.so;" ;; esac
    mkdir -p "$work/$name/conf" "$work/$name/logs"
    if [ "$name" = lua ]; then
        load="load_module $LUA_MODULES/ndk_http_module.so;
load_module $LUA_MODULES/ngx_http_lua_module.so;"
    fi
    cat > "$work/$name/conf/nginx.conf" <<CONF
$load
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    $http
    server {
        listen 127.0.0.1:$port;
        root $work/html;
        location /t { $loc try_files /ok.txt =404; }
        $extra
    }
}
CONF
    "$NGINX_BIN" -p "$work/$name/" -c conf/nginx.conf
    instances="$instances $name"
}

mkdir -p "$work/html"
echo ok > "$work/html/ok.txt"

oauth2_http="oauth2_redis 127.0.0.1:$rport;
    oauth2_plan big 1000000r/s;
    oauth2_default_plan big;
    oauth2_jwt_key HS256 $secret;"
oauth2_loc="oauth2 on; oauth2_scope accounts;"

declare -A port url
# the previous release's module, built as make builds this one
prev=""
if [ "$BENCH_PREVIOUS" != none ] \
   && git -C "$top" cat-file -e "$BENCH_PREVIOUS^{commit}" 2>/dev/null; then
    mkdir -p "$work/prev-src"
    git -C "$top" archive "$BENCH_PREVIOUS" | tar -x -C "$work/prev-src"
    echo "building the previous release ($BENCH_PREVIOUS) ..."
    if make -C "$work/prev-src" all \
           > "$work/prev-build.log" 2>&1; then
        cp "$work/prev-src/build/ngx_http_oauth2_module.so" "$work/prev.so"
        prev="prev-opaque prev-cached"
    else
        echo "the previous release did not build: $work/prev-build.log"
        tail -20 "$work/prev-build.log"
    fi
else
    echo "no previous release to compare with (BENCH_PREVIOUS=$BENCH_PREVIOUS)"
fi

for p in plain lua opaque-c1 opaque-c2 opaque-c4 opaque-tls cached \
         cached-norl cached-lease jwt-hs opaque-c1+m cached-norl+m $prev; do
    port[$p]=$(free_port)
    url[$p]=http://127.0.0.1:${port[$p]}/t
done

instance plain "${port[plain]}" "" ""
for n in 1 2 4; do
    instance "opaque-c$n" "${port[opaque-c$n]}" \
        "$oauth2_http oauth2_redis_connections $n;" "$oauth2_loc"
done
instance opaque-tls "${port[opaque-tls]}" \
    "oauth2_redis rediss://localhost:$tport;
    oauth2_redis_ssl_trusted_certificate $work/ca.pem;
    oauth2_plan big 1000000r/s; oauth2_default_plan big;" "$oauth2_loc"
instance cached "${port[cached]}" \
    "$oauth2_http oauth2_cache zone=bench:10m ttl=1h;" "$oauth2_loc"
instance cached-norl "${port[cached-norl]}" \
    "$oauth2_http oauth2_cache zone=bench:10m ttl=1h;" \
    "$oauth2_loc oauth2_rate_limit off;"
instance cached-lease "${port[cached-lease]}" \
    "$oauth2_http oauth2_cache zone=bench:10m ttl=1h;" \
    "$oauth2_loc oauth2_rate_limit_lease on max=1000 time=1s;"
metrics_loc="location /metrics { oauth2_metrics; }"
instance opaque-c1+m "${port[opaque-c1+m]}" \
    "$oauth2_http oauth2_redis_connections 1;" \
    "$oauth2_loc oauth2_metrics_label t;" "$metrics_loc"
instance cached-norl+m "${port[cached-norl+m]}" \
    "$oauth2_http oauth2_cache zone=bench:10m ttl=1h;" \
    "$oauth2_loc oauth2_rate_limit off; oauth2_metrics_label t;" \
    "$metrics_loc"
if [ -n "$prev" ]; then
    instance prev-opaque "${port[prev-opaque]}" "$oauth2_http" "$oauth2_loc"
    instance prev-cached "${port[prev-cached]}" \
        "$oauth2_http oauth2_cache zone=bench:10m ttl=1h;" "$oauth2_loc"
fi
instance jwt-hs "${port[jwt-hs]}" "$oauth2_http" \
    "$oauth2_loc oauth2_token_type jwt; oauth2_consent off;
     oauth2_rate_limit off;"

# the Lua location: what the module is measured against

cat > "$work/lua-check.lua" <<'LUA'
local f = redis.call('HMGET', KEYS[1], 'client_id', 'scope', 'consent_id')
if not f[1] then return 1 end
if not string.find(' ' .. (f[2] or '') .. ' ', ' accounts ', 1, true) then
  return 3
end
if redis.call('HGET', 'oauth2:consent:' .. (f[3] or ''), 'status')
   ~= 'valid' then
  return 3
end
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local key = 'oauth2:rl:{' .. f[1] .. '}:big:1000000:1000000'
local t, tau = 1, 999999
local tat = tonumber(redis.call('GET', key)) or now
if tat < now then tat = now end
if tat - now - tau > 0 then return 4 end
redis.call('SET', key, string.format('%.17g', tat + t), 'PX',
           math.ceil((tat + t - now) / 1000) + 1000)
return 0
LUA
lua_sha=$(redis-cli -p "$rport" -x SCRIPT LOAD < "$work/lua-check.lua")

instance lua "${port[lua]}" "lua_package_path '/usr/share/lua/5.1/?.lua;;';
    init_by_lua_block {
        local ffi = require 'ffi'
        ffi.cdef[[unsigned char *SHA256(const unsigned char *d, size_t n,
                                        unsigned char *md);]]
        sha_buf = ffi.new('unsigned char[32]')
        sha256_hex = function(s)
            ffi.C.SHA256(s, #s, sha_buf)
            return (ffi.string(sha_buf, 32):gsub('.', function(c)
                return string.format('%02x', string.byte(c)) end))
        end
    }" "access_by_lua_block {
        local h = ngx.var.http_authorization
        if not h or string.sub(h, 1, 7) ~= 'Bearer ' then
            return ngx.exit(401)
        end
        local redis = require 'nginx.redis'
        local red = redis:new()
        red:set_timeout(1000)
        local ok = red:connect('127.0.0.1', $rport)
        if not ok then return ngx.exit(503) end
        local key = 'oauth2:token:' .. sha256_hex(string.sub(h, 8))
        local r = red:evalsha('$lua_sha', 1, key)
        red:set_keepalive(10000, 64)
        if r == 1 then return ngx.exit(401) end
        if r == 3 then return ngx.exit(403) end
        if r == 4 then return ngx.exit(429) end
        if r ~= 0 then return ngx.exit(503) end
    }"

opaque=bench-opaque-token
hash=$(printf %s "$opaque" | sha256sum | cut -d' ' -f1)
for rp in "$rport" "tls"; do
    cli=(redis-cli -p "$rport")
    [ "$rp" = tls ] && cli=(redis-cli -p "$tport" --tls --cacert "$work/ca.pem")
    "${cli[@]}" HSET "oauth2:token:$hash" client_id bench scope accounts \
        consent_id c-bench >/dev/null
    "${cli[@]}" HSET oauth2:consent:c-bench status valid >/dev/null
done
sleep 0.5

declare -A hdr
for p in "${!url[@]}"; do hdr[$p]="Authorization: Bearer $opaque"; done
hdr[plain]="X-None: 1"
hdr[jwt-hs]="Authorization: Bearer $jwt_hs"
paths="plain lua opaque-c1 opaque-c2 opaque-c4 opaque-tls cached cached-norl
       cached-lease jwt-hs
       opaque-c1+m cached-norl+m $prev"

for p in $paths; do   # every path answers 200 before anything is measured
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "${hdr[$p]}" "${url[$p]}")
    [ "$code" = 200 ] || { echo "$p answers $code"; exit 1; }
done

rcli() { redis-cli -p "$rport" "$@"; }

cpu() {   # Redis's own CPU time so far, in microseconds
    rcli INFO cpu | tr -d '\r' | awk -F: '
        $1 == "used_cpu_sys" || $1 == "used_cpu_user" { s += $2 }
        END { printf "%.0f", s * 1000000 }'
}

ncpu() {   # CPU time of the worker of instance $1, in microseconds
    local w
    w=$(pgrep -P "$(cat "$work/$1/logs/nginx.pid")" | head -1)
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) * 1000000 / hz }' \
        "/proc/$w/stat"
}

calls() {   # script calls Redis has run so far
    rcli INFO commandstats | tr -d '\r' \
        | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p'
}

declare -A rps p50 p99 trips reqs rcpu wcpu
for r in $(seq "$rounds"); do
    for p in $paths; do
        before=$(calls); before=${before:-0}
        cpu0=$(cpu)
        ncpu0=$(ncpu "$p")
        out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency -H "${hdr[$p]}" "${url[$p]}")
        after=$(calls); after=${after:-0}
        rcpu[$p]=$(( ${rcpu[$p]:-0} + $(cpu) - cpu0 ))
        wcpu[$p]=$(( ${wcpu[$p]:-0} + $(ncpu "$p") - ncpu0 ))
        n=$(echo "$out" | awk '/requests in/ { print $1 }')
        rps[$p]="${rps[$p]:-} $(echo "$out" | awk '/Requests\/sec/ { print $2 }')"
        p50[$p]="${p50[$p]:-} $(echo "$out" | awk '$1 == "50%" { print $2 }')"
        p99[$p]="${p99[$p]:-} $(echo "$out" | awk '$1 == "99%" { print $2 }')"
        trips[$p]=$(( ${trips[$p]:-0} + after - before ))
        reqs[$p]=$(( ${reqs[$p]:-0} + n ))
    done
done

# what the metrics paths counted, read before anything else reaches them
declare -A counted
for p in opaque-c1+m cached-norl+m; do
    counted[$p]=$(curl -s "http://127.0.0.1:${port[$p]}/metrics" | awk '
        /^oauth2_requests_total\{outcome="allowed",location="t"\}/ { print $2 }')
done

mean() { echo "$1" | tr ' ' '\n' | awk 'NF { s += $1; n++ } END { printf "%.0f", s / n }'; }
median() { echo "$1" | tr ' ' '\n' | awk 'NF' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

base=$(mean "${rps[plain]}")
lua=$(mean "${rps[lua]}")
echo
echo "wrk -t1 -c$conns -d${secs}s --latency, $rounds rounds interleaved," \
     "one nginx worker per path, $(date -u +%Y-%m-%d)"
printf '%-14s %8s %7s %7s %9s %9s %9s %9s %9s\n' path 'req/s' 'x plain' \
    'x lua' p50 p99 'redis/req' 'nginx us' 'redis us'
for p in $paths; do
    m=$(mean "${rps[$p]}")
    trip=0
    [ "$p" != tls ] && trip=$(echo "scale=3; ${trips[$p]} / ${reqs[$p]}" | bc)
    printf '%-14s %8s %7s %7s %9s %9s %9s %9s %9s\n' "$p" "$m" \
        "$(echo "scale=3; $m / $base" | bc)" \
        "$(echo "scale=2; $m / $lua" | bc)" "$(median "${p50[$p]}")" \
        "$(median "${p99[$p]}")" "$trip" \
        "$(echo "scale=1; ${wcpu[$p]} / ${reqs[$p]}" | bc)" \
        "$(echo "scale=1; ${rcpu[$p]} / ${reqs[$p]}" | bc)"
done
echo "(redis/req: EVALSHA calls per request on the plaintext Redis; nginx us,"
echo " redis us: CPU time of the nginx worker and of that Redis per request;"
echo " opaque-tls talks to a Redis of its own, its redis columns are 0)"

# latency at half of each path's peak: every connection waits 10 ms
# (wrk's delay()) after each answer, with as many connections as make
# half the rate measured above; wrk measures from the request it sent,
# so a stall shows in p99 as it would for a client
echo
echo "Latency at half of each path's peak (wrk -s delay 10 ms, one run):"
printf '%-14s %8s %8s %9s %9s
' path target 'req/s' p50 p99
echo 'function delay() return 10 end' > "$work/delay.lua"
for p in $paths; do
    target=$(( $(mean "${rps[$p]}") / 2 ))
    c=$(( (target + 50) / 100 )); [ "$c" -ge 1 ] || c=1
    out=$(wrk -t1 -c"$c" -d"${secs}s" --latency -s "$work/delay.lua" \
          -H "${hdr[$p]}" "${url[$p]}")
    printf '%-14s %8s %8s %9s %9s\n' "$p" "$target" \
        "$(echo "$out" | awk '/Requests\/sec/ { printf "%.0f", $2 }')" \
        "$(echo "$out" | awk '$1 == "50%" { print $2 }')" \
        "$(echo "$out" | awk '$1 == "99%" { print $2 }')"
done

# Redis's own cost of each script, on a Redis of its own, no nginx
echo
echo "Redis's cost per call (INFO commandstats usec_per_call, redis-benchmark -P 32):"
key=oauth2:token:$hash
now=$(date +%s)
lookup_sha=$(rcli -x SCRIPT LOAD < <("$top/util/gen-scripts.pl" --text lookup))
per_call() {
    rcli CONFIG RESETSTAT >/dev/null
    redis-benchmark -p "$rport" -c 1 -P 32 -n 100000 -q "$@" >/dev/null 2>&1
    rcli INFO commandstats | tr -d '\r' \
        | sed -n 's/^cmdstat_evalsha:.*usec_per_call=\([0-9.]*\).*/\1/p'
}
lk=$(per_call EVALSHA "$lookup_sha" 1 "$key" oauth2: 1 big 1 accounts "" \
     "$now" 0 big 1 1000000 1000000)
lu=$(per_call EVALSHA "$lua_sha" 1 "$key")
printf '  %-44s %6s us\n' 'the module'"'"'s lookup script (rate limit on)' "$lk" \
    'the Lua location'"'"'s script' "$lu"

echo
echo "Goals (issue 12):"
# the default (oauth2_redis_connections 1), not the best of the three
# rows: the best of three noisy figures would flatter the goal
best=opaque-c1
goal() {   # goal NAME VALUE TARGET
    local ok=not
    [ "$(echo "$2 >= $3" | bc)" = 1 ] && ok=met
    printf '  %-52s %6s (>= %s): %s\n' "$1" "$2" "$3" "$ok"
}
goal "opaque, no cache, rate limit ($best) x the Lua location" \
    "$(echo "scale=2; $(mean "${rps[$best]}") / $lua" | bc)" 1.3
goal "cached, no rate limit x plain" \
    "$(echo "scale=3; $(mean "${rps[cached-norl]}") / $base" | bc)" 0.93
goal "cached + rate limit x the Lua location" \
    "$(echo "scale=2; $(mean "${rps[cached]}") / $lua" | bc)" 1.0
goal "cached + rate limit with leases x plain" \
    "$(echo "scale=3; $(mean "${rps[cached-lease]}") / $base" | bc)" 0.8
goal "cached + rate limit with leases x the Lua location" \
    "$(echo "scale=2; $(mean "${rps[cached-lease]}") / $lua" | bc)" 2.5

if [ -n "$prev" ]; then
    echo
    echo "This release against the previous one ($BENCH_PREVIOUS), same run:"
    for pair in opaque-c1:prev-opaque cached:prev-cached; do
        a=${pair%%:*} b=${pair##*:}
        printf '  %-12s x %-12s req/s %5s, nginx us %s vs %s, redis us %s vs %s\n' \
            "$a" "$b" \
            "$(echo "scale=3; $(mean "${rps[$a]}") / $(mean "${rps[$b]}")" | bc)" \
            "$(echo "scale=1; ${wcpu[$a]} / ${reqs[$a]}" | bc)" \
            "$(echo "scale=1; ${wcpu[$b]} / ${reqs[$b]}" | bc)" \
            "$(echo "scale=1; ${rcpu[$a]} / ${reqs[$a]}" | bc)" \
            "$(echo "scale=1; ${rcpu[$b]} / ${reqs[$b]}" | bc)"
    done
fi

# what counting costs (issue 14): each path with and without the metrics
# zone, round by round (the rounds' spread is the noise of the machine)
echo
echo "Metrics (issue 14): the same path with oauth2_metrics / without, per round:"
for p in opaque-c1 cached-norl; do
    a=(${rps[$p]}) b=(${rps[$p+m]}) r=""
    for i in "${!a[@]}"; do
        r="$r $(echo "scale=3; ${b[$i]} / ${a[$i]}" | bc)"
    done
    printf '  %-12s %s (mean %s)\n' "$p" "$r" \
        "$(echo "scale=3; $(mean "${rps[$p+m]}") / $(mean "${rps[$p]}")" | bc)"
    echo "  $p+m counted ${counted[$p+m]} requests let through; wrk sent" \
         "${reqs[$p+m]} (and 1 check before)"
done

# the token endpoint: codes and refresh tokens seeded for each run, as many
# as the run can spend (measured on the first, with margin)

tokport=$(free_port)
mkdir -p "$work/token/conf" "$work/token/logs"
cat > "$work/token/conf/nginx.conf" <<CONF
load_module $MODULE;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    oauth2_redis 127.0.0.1:$rport;
    server {
        listen 127.0.0.1:$tokport;
        location = /token { oauth2_token; }
    }
}
CONF
"$NGINX_BIN" -p "$work/token/" -c conf/nginx.conf
instances="$instances token"

tsecret=bench-client-secret
redis-cli -p "$rport" HSET oauth2:client:bench-tpp \
    secret_sha256 "$(printf %s "$tsecret" | sha256sum | cut -d' ' -f1)" \
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
        ncpu0=$(ncpu token)
        cpu0=$(cpu)
        out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency \
                  -s "$top/util/bench-token.lua" \
                  "http://127.0.0.1:$tokport/token" -- "$kind" "$prefix" \
                  "bench-tpp:$tsecret" "$verifier")
        after=$(tcalls)
        rcpu[$p]=$(( ${rcpu[$p]:-0} + $(cpu) - cpu0 ))
        wcpu[$p]=$(( ${wcpu[$p]:-0} + $(ncpu token) - ncpu0 ))
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
            | grep -v "$hash" | xargs -r -n 1000 redis-cli -p "$rport" DEL \
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
