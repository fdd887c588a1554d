#!/usr/bin/env bash
# make run / make stop: Redis on 127.0.0.1:6479, nginx with
# examples/nginx.conf on 127.0.0.1:8080, demo tokens, consents and clients;
# and the OAuth 2.0 flow of the authorization server: a client registered
# with util/oauth2-client, a consent page (examples/consent/) behind
# auth_basic (alice / alice), and the TPP's callback on 127.0.0.1:8081.

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

    # the authorization server's demo: a client, the login, the TPP

    mkdir -p "$run/html/consent"
    cp "$top/examples/consent/index.html" "$run/html/consent/"
    printf 'alice:%s\n' "$(openssl passwd -apr1 alice)" \
        > "$run/conf/demo.htpasswd"

    rcli DEL oauth2:client:demo-tpp
    secret=$(REDIS_PORT=$REDIS_PORT "$top/util/oauth2-client" add demo-tpp \
                 --redirect-uri http://127.0.0.1:8081/cb \
                 --scopes "accounts paymentRequest" --plan gold \
                 --name "Demo TPP Ltd")
    verifier=$(openssl rand 32 | base64 | tr '+/' '-_' | tr -d '=\n')
    challenge=$(printf %s "$verifier" | openssl dgst -sha256 -binary \
                | base64 | tr '+/' '-_' | tr -d '=\n')

    cat > "$run/conf/demo-client.conf" <<CONF
        # written by util/demo.sh: the demo TPP's redirect_uri
        location = /cb {
            default_type  text/html;
            return  200 '<!DOCTYPE html><html><body><h1>Demo TPP</h1>
<p>The bank sent you back with code <b>\$arg_code</b>
(error: "\$arg_error", state: "\$arg_state").</p>
<p>The TPP swaps the code for tokens, within 5 minutes, once:</p>
<pre>curl -s -u demo-tpp:$secret -d grant_type=authorization_code \\
     -d code=\$arg_code -d code_verifier=$verifier \\
     --data-urlencode redirect_uri=http://127.0.0.1:8081/cb \\
     http://127.0.0.1:8080/oauth2/token</pre></body></html>\n';
        }
CONF

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
    flow
    echo "logs: $run/logs/error.log, $run/logs/access.log; 'make stop' stops it"
}

# the authorization server: the URL to click through, then the same flow
# with curl (the browser's part played with -u alice:alice)
flow() {
    local as=http://127.0.0.1:8080 q loc req code tokens access refresh
    local consent

    # Redis may still be asleep from the 503 above: wait until the
    # endpoints reach it again (an unknown request is a 404 then)
    for _ in $(seq 50); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' \
                  "$as/oauth2/authorize?request=none")" = 404 ] && break
        sleep 0.1
    done

    q="response_type=code&client_id=demo-tpp"
    q="$q&redirect_uri=http%3A%2F%2F127.0.0.1%3A8081%2Fcb&scope=accounts"
    q="$q&state=demo&code_challenge=$challenge&code_challenge_method=S256"

    echo "# The authorization server (docs/authorization-server.md)"
    echo "# client demo-tpp, secret $secret (util/oauth2-client add)"
    echo "# open in a browser, log in as alice / alice, allow:"
    echo "$as/oauth2/authorize?$q"
    echo
    echo "# the same with curl:"

    loc=$(curl -s -o /dev/null -w '%{redirect_url}' "$as/oauth2/authorize?$q")
    req=${loc##*request=}
    echo "curl -si '$as/oauth2/authorize?...'   -> 302 $loc"
    echo "curl -s -u alice:alice '$as/oauth2/authorize?request=$req'"
    echo "    -> $(curl -s "$as/oauth2/authorize?request=$req")"
    loc=$(curl -s -o /dev/null -w '%{redirect_url}' -u alice:alice \
              -d "request=$req" -d decision=allow "$as/oauth2/decision")
    code=$(printf %s "$loc" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
    echo "curl -si -u alice:alice -d request=$req -d decision=allow $as/oauth2/decision"
    echo "    -> 302 $loc"
    tokens=$(curl -s -u "demo-tpp:$secret" -d grant_type=authorization_code \
                  -d "code=$code" -d "code_verifier=$verifier" \
                  --data-urlencode redirect_uri=http://127.0.0.1:8081/cb \
                  "$as/oauth2/token")
    echo "curl -s -u demo-tpp:$secret -d grant_type=authorization_code -d code=$code -d code_verifier=$verifier --data-urlencode redirect_uri=http://127.0.0.1:8081/cb $as/oauth2/token"
    echo "    -> $tokens"
    access=$(printf %s "$tokens" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    refresh=$(printf %s "$tokens" | sed -n 's/.*"refresh_token":"\([^"]*\)".*/\1/p')
    consent=$(printf %s "$tokens" | sed -n 's/.*"consent_id":"\([^"]*\)".*/\1/p')
    echo "curl -si -H 'Authorization: Bearer $access' $as/open-banking/v3.1/aisp/accounts"
    echo "    -> $(curl -s -H "Authorization: Bearer $access" "$as/open-banking/v3.1/aisp/accounts")"
    echo "curl -s -u demo-tpp:$secret $as/open-banking/v3.1/consents/$consent"
    echo "    -> $(curl -s -u "demo-tpp:$secret" "$as/open-banking/v3.1/consents/$consent")"
    tokens=$(curl -s -u "demo-tpp:$secret" -d grant_type=refresh_token \
                  -d "refresh_token=$refresh" "$as/oauth2/token")
    echo "curl -s -u demo-tpp:$secret -d grant_type=refresh_token -d refresh_token=$refresh $as/oauth2/token"
    echo "    -> $tokens"
    access=$(printf %s "$tokens" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    echo "curl -s -X DELETE -u demo-tpp:$secret $as/open-banking/v3.1/consents/$consent"
    echo "    -> $(curl -s -o /dev/null -w '%{http_code}' -X DELETE -u "demo-tpp:$secret" "$as/open-banking/v3.1/consents/$consent") (the consent is revoked)"
    echo "curl -si -H 'Authorization: Bearer $access' $as/open-banking/v3.1/aisp/accounts"
    echo "    -> $(curl -s -w ' %{http_code}' -H "Authorization: Bearer $access" "$as/open-banking/v3.1/aisp/accounts")"
    echo "# (a token the gateway has seen stays in oauth2_cache for its ttl, 10 s)"
    echo
}

case "${1:-start}" in
    start) start ;;
    stop)  stop; echo "stopped" ;;
    *)     echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
