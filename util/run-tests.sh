#!/usr/bin/env bash
# Runs the t/ suite: starts a throwaway redis-server on a free loopback port,
# runs prove, stops what it started, exits non-zero on any failure.
#
#   NGINX_BIN       nginx binary (default /usr/sbin/nginx)
#   MODULE          the module .so to load (default build/ngx_http_oauth2_module.so)
#   TEST_NGINX_LIB  where Test::Nginx::Socket comes from (default: the real one
#                   if perl finds it, else util/test-nginx/lib)
#   arguments       test files (default: t/)

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
MODULE=${MODULE:-$top/build/ngx_http_oauth2_module.so}
if [ -z "${TEST_NGINX_LIB:-}" ]; then
    if perl -MTest::Nginx::Socket -e1 2>/dev/null; then
        TEST_NGINX_LIB=
    else
        TEST_NGINX_LIB=$top/util/test-nginx/lib
    fi
fi

free_port() {
    perl -MIO::Socket::INET -e \
        'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0",
                                     ReuseAddr => 1)->sockport'
}

work=$(mktemp -d /tmp/oauth2-test.XXXXXX)
redis_port=$(free_port)

cleanup() {
    local pid
    if [ -f "$work/redis.pid" ]; then
        pid=$(cat "$work/redis.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -rf "$work" || true
}
trap cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize yes --dir "$work" \
    --pidfile "$work/redis.pid" --logfile "$work/redis.log" \
    --unixsocket "$work/redis.sock" --unixsocketperm 700 \
    --enable-debug-command local

for _ in $(seq 50); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
done

export TEST_NGINX_BINARY=$NGINX_BIN
export TEST_NGINX_LOAD_MODULES=$MODULE
export TEST_NGINX_REDIS_PORT=$redis_port
export TEST_NGINX_REDIS_SOCKET=$work/redis.sock
export TEST_NGINX_DEAD_PORT=$(free_port)   # nothing listens there
# nginx's port: a free one, not Test::Nginx's fixed 1984, so that two runs
# on one machine (or an nginx already there) do not collide
export TEST_NGINX_PORT=${TEST_NGINX_PORT:-$(free_port)}
export TEST_NGINX_MODULE=$MODULE
# the nginx of the Test::Nginx suites runs in a server root of this run's
# own, so that two runs at once (two checkouts, a helper) do not stop each
# other's nginx; TEST_NGINX_SERVROOT=t/servroot keeps it after the run
export TEST_NGINX_SERVROOT=${TEST_NGINX_SERVROOT:-$work/servroot}
export TEST_NGINX_NGINX_SRC=$top/build/nginx-src
if [ -n "$TEST_NGINX_LIB" ]; then
    export PERL5LIB=$TEST_NGINX_LIB${PERL5LIB:+:$PERL5LIB}
fi

echo "redis-server on 127.0.0.1:$redis_port, nginx $NGINX_BIN, module $MODULE"

if [ $# -eq 0 ]; then
    set -- -r t
fi

prove "$@"
