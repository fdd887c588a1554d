#!/usr/bin/env bash
# Redis's own cost of the module's lookup: the lookup script (from
# util/gen-scripts.pl), replayed with redis-benchmark on a Redis of its own,
# as nginx sends it (one connection, pipelined), with the rate limit off
# and on, next to a plain HMGET of the same record.
#
#   util/bench-redis.sh [requests] [rounds]

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-200000}
rounds=${2:-3}
work=$(mktemp -d /tmp/oauth2-bench-redis.XXXXXX)

port=$(perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1,
        LocalAddr => "127.0.0.1:0", ReuseAddr => 1)->sockport')

cleanup() {
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --logfile "$work/redis.log"
sleep 0.3

# the lookup script, as the module loads it
"$top/util/gen-scripts.pl" --text lookup > "$work/lookup.lua"

sha=$(redis-cli -p "$port" -x SCRIPT LOAD < "$work/lookup.lua")
key=oauth2:token:$(printf %s bench-token | sha256sum | cut -d' ' -f1)
redis-cli -p "$port" HSET "$key" client_id bench scope accounts \
    consent_id c-bench >/dev/null
redis-cli -p "$port" HSET oauth2:consent:c-bench status valid >/dev/null

now=$(date +%s)

rps() {
    redis-benchmark -p "$port" -c 1 -P 32 -n "$n" -q "$@" 2>&1 \
        | tr '\r' '\n' \
        | sed -n 's/.* \([0-9.]*\) requests per second.*/\1/p' | tail -1
}

printf '%-26s %s\n' 'call' 'calls/s (each round)'
for what in lookup-rl-off lookup-rl-on hmget; do
    line=""
    for r in $(seq "$rounds"); do
        case $what in
        lookup-rl-off)
            v=$(rps EVALSHA "$sha" 1 "$key" oauth2: 0 big 1 accounts "" \
                "$now" 0 big 1 1000000 1000000) ;;
        lookup-rl-on)
            v=$(rps EVALSHA "$sha" 1 "$key" oauth2: 1 big 1 accounts "" \
                "$now" 0 big 1 1000000 1000000) ;;
        hmget)
            v=$(rps HMGET "$key" client_id scope plan consent_id sub exp) ;;
        esac
        line="$line $v"
    done
    printf '%-26s%s\n' "$what" "$line"
done
