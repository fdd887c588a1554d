#!/usr/bin/env bash
# make run / make stop: Redis on 127.0.0.1:6479, nginx with
# examples/nginx.conf on 127.0.0.1:8080, demo tokens, consents and clients.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
run=$top/build/demo
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
MODULE=${MODULE:-$top/build/ngx_http_oauth2_module.so}
REDIS_PORT=6479

stop() {
    if [ -f "$run/logs/nginx.pid" ]; then
        "$NGINX_BIN" -p "$run/" -c conf/nginx.conf -s stop 2>/dev/null || true
    fi
    if [ -f "$run/redis.pid" ]; then
        kill "$(cat "$run/redis.pid")" 2>/dev/null || true
        rm -f "$run/redis.pid"
    fi
}

sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

rcli() { redis-cli -p "$REDIS_PORT" "$@" >/dev/null; }

token() {   # token client scope consent_id [plan]
    local key="oauth2:token:$(sha "$1")"
    rcli DEL "$key"
    rcli HSET "$key" client_id "$2" scope "$3" consent_id "$4" \
        plan "${5:-gold}" sub "psu-$2"
    rcli EXPIRE "$key" 3600
}

start() {
    stop
    mkdir -p "$run/conf" "$run/logs"

    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --daemonize yes --dir "$run" \
        --pidfile "$run/redis.pid" --logfile "$run/redis.log" \
        --enable-debug-command local
    for _ in $(seq 50); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
        sleep 0.1
    done

    token demo-payments tpp-acme "accounts paymentRequest" consent-1
    token demo-accounts tpp-acme "accounts" consent-1
    token demo-revoked tpp-globex "accounts paymentRequest" consent-2
    token demo-trial tpp-initech "accounts" consent-1 trial
    rcli DEL 'oauth2:rl:{tpp-initech}:trial:2:60000000'
    token demo-slow tpp-acme "accounts" consent-1
    rcli HSET oauth2:consent:consent-1 status valid
    rcli HSET oauth2:consent:consent-2 status revoked

    { echo "load_module $MODULE;"; cat "$top/examples/nginx.conf"; } \
        > "$run/conf/nginx.conf"
    "$NGINX_BIN" -p "$run/" -c conf/nginx.conf -t -q
    "$NGINX_BIN" -p "$run/" -c conf/nginx.conf

    sleep 0.3

    local base=http://127.0.0.1:8080/open-banking/v3.1
    local demos=(
        "200: valid token, scope and consent|-H 'Authorization: Bearer demo-payments' $base/pisp/domestic-payments"
        "401: no token|$base/pisp/domestic-payments"
        "401: unknown token|-H 'Authorization: Bearer nope' $base/aisp/accounts"
        "403: token without the paymentRequest scope|-H 'Authorization: Bearer demo-accounts' $base/pisp/domestic-payments"
        "403: consent revoked|-H 'Authorization: Bearer demo-revoked' $base/aisp/accounts"
        "200: a client on the trial plan (2 requests a minute)|-H 'Authorization: Bearer demo-trial' $base/aisp/accounts"
        "200: its second request|-H 'Authorization: Bearer demo-trial' $base/aisp/accounts"
        "429: its third, over the plan|-H 'Authorization: Bearer demo-trial' $base/aisp/accounts"
        "503: Redis stalls (DEBUG SLEEP 1) longer than oauth2_redis_timeout (500ms)|-H 'Authorization: Bearer demo-slow' $base/aisp/accounts"
    )

    echo "Redis on 127.0.0.1:$REDIS_PORT, nginx on 127.0.0.1:8080 ($run)"
    echo
    for d in "${demos[@]}"; do
        case $d in
        503*)
            # a token the cache does not hold yet, Redis asleep
            (redis-cli -p "$REDIS_PORT" DEBUG SLEEP 1 >/dev/null &)
            sleep 0.1 ;;
        esac
        echo "# ${d%%|*}"
        echo "curl -si ${d#*|}"
        eval "curl -si ${d#*|}" \
            | grep -E '^(HTTP|WWW-Auth|Retry-After|X-RateLimit-Remaining)|^\{' \
            || true
        echo
    done
    echo "# the module's counters (Prometheus text; /metrics.json: the same as JSON)"
    echo "curl -s http://127.0.0.1:9145/metrics | grep '^oauth2_requests_total'"
    curl -s http://127.0.0.1:9145/metrics | grep '^oauth2_requests_total.*[1-9]$' || true
    echo
    echo "logs: $run/logs/error.log, $run/logs/access.log; 'make stop' stops it"
}

case "${1:-start}" in
    start) start ;;
    stop)  stop; echo "stopped" ;;
    *)     echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
