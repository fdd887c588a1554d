#!/usr/bin/env bash
# Cost of the rate limit: the same protected location with rate limiting
# off and on (cache off: one Redis round trip per request either way),
# measured with wrk, interleaved A B A B so that machine drift cancels.
#
#   util/bench-ratelimit.sh [seconds per run] [rounds]
#
# Needs wrk, redis-server and the built module (make).

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-5}
rounds=${2:-3}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
MODULE=${MODULE:-$top/build/ngx_http_oauth2_module.so}
work=$(mktemp -d /tmp/oauth2-bench.XXXXXX)
rport=6491
nport=8491

cleanup() {
    "$NGINX_BIN" -p "$work/" -c conf/nginx.conf -s stop 2>/dev/null || true
    redis-cli -p $rport shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

redis-server --port $rport --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --logfile "$work/redis.log"
sleep 0.3

mkdir -p "$work/conf" "$work/logs"
cat > "$work/conf/nginx.conf" <<CONF
load_module $MODULE;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    oauth2_redis 127.0.0.1:$rport;
    oauth2_plan big 1000000r/s;
    oauth2_default_plan big;
    server {
        listen 127.0.0.1:$nport;
        location /off { oauth2 on; oauth2_rate_limit off;
                        proxy_pass http://127.0.0.1:$nport/backend; }
        location /on  { oauth2 on;
                        proxy_pass http://127.0.0.1:$nport/backend; }
        location /backend { oauth2 off; return 200 "ok\n"; }
    }
}
CONF
"$NGINX_BIN" -p "$work/" -c conf/nginx.conf

key=oauth2:token:$(printf %s bench-token | sha256sum | cut -d' ' -f1)
redis-cli -p $rport HSET "$key" client_id bench scope accounts consent_id c >/dev/null
redis-cli -p $rport HSET oauth2:consent:c status valid >/dev/null
sleep 0.3

run() {   # location -> requests/s
    wrk -t1 -c16 -d"${secs}s" -H 'Authorization: Bearer bench-token' \
        "http://127.0.0.1:$nport/$1" | awk '/Requests\/sec/ { print $2 }'
}

evalsha() {
    redis-cli -p $rport INFO commandstats \
        | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p'
}

echo "wrk -t1 -c16 -d${secs}s, one nginx worker, $rounds rounds"
declare -A sum
for i in $(seq "$rounds"); do
    for loc in off on; do
        before=$(evalsha); before=${before:-0}
        rps=$(run $loc)
        after=$(evalsha)
        printf '%-4s %10s req/s  (%s EVALSHA)\n' $loc "$rps" $((after - before))
        sum[$loc]=$(echo "${sum[$loc]:-0} + $rps" | bc)
    done
done
off=$(echo "scale=1; ${sum[off]} / $rounds" | bc)
on=$(echo "scale=1; ${sum[on]} / $rounds" | bc)
echo "mean: rate limit off $off req/s, on $on req/s," \
     "ratio $(echo "scale=3; $on / $off" | bc)"
