#!/usr/bin/env bash
# Redis's cost of each script call in instructions, which unlike
# microseconds does not move with the machine's load: redis-server runs
# under valgrind's callgrind, the same call is replayed N and 3N times
# (redis-benchmark -c 1 -P 32, as nginx pipelines), and the difference of
# the two totals over 2N is what one call costs, start-up left out.
#
#   util/script-cost.sh [N]
#   util/script-cost.sh N SCRIPT.lua [ARG...]   one script, called with
#                                    the token's key and ARG...
#
# Rows: the lookup script as the module sends it (rate limit on and off);
# the same call to a script that only returns 0 (the price of the call,
# its 14 arguments and nothing else); the Lua location's script of
# util/bench.sh (5 Redis commands, no checks of the record); a script
# that only returns 0, called with its one key.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000}
work=$(mktemp -d /tmp/oauth2-script-cost.XXXXXX)
trap 'rm -rf "$work"' EXIT

command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null

"$top/util/gen-scripts.pl" --text lookup > "$work/lookup.lua"
echo 'return 0' > "$work/empty.lua"
# the Lua location's script: extracted from util/bench.sh, one definition
sed -n "/^cat > \"\$work\/lua-check.lua\" <<'LUA'/,/^LUA/p" \
    "$top/util/bench.sh" | sed '1d;$d' > "$work/lua-check.lua"
[ -s "$work/lua-check.lua" ] || { echo "no Lua location script"; exit 1; }

key=oauth2:token:$(printf %s bench-token | sha256sum | cut -d' ' -f1)
now=$(date +%s)

total() {   # total SCRIPT COUNT ARGS...: callgrind's instruction total
    local script=$1 count=$2 port out pid
    shift 2
    port=$(perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(
        Listen => 1, LocalAddr => "127.0.0.1:0", ReuseAddr => 1)->sockport')
    out=$work/cg.$port
    valgrind --tool=callgrind --callgrind-out-file="$out" redis-server \
        --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 150); do
        redis-cli -p "$port" PING >/dev/null 2>&1 && break
        sleep 0.2
    done
    redis-cli -p "$port" HSET "$key" client_id bench scope accounts \
        consent_id c-bench >/dev/null
    redis-cli -p "$port" HSET oauth2:consent:c-bench status valid >/dev/null
    sha=$(redis-cli -p "$port" -x SCRIPT LOAD < "$script")
    redis-benchmark -p "$port" -c 1 -P 32 -n "$count" -q \
        EVALSHA "$sha" 1 "$key" "$@" >/dev/null 2>&1
    redis-cli -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
    wait "$pid" || true
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

per_call() {   # per_call SCRIPT ARGS...: instructions of one call
    local a b
    a=$(total "$1" "$n" "${@:2}")
    b=$(total "$1" $((3 * n)) "${@:2}")
    echo $(( (b - a) / (2 * n) ))
}

if [ $# -ge 2 ]; then
    echo "$(per_call "$2" "${@:3}") instructions per EVALSHA of $2"
    exit 0
fi

args_on=(oauth2: 1 big 1 accounts "" "$now" 0 big 1 1000000 1000000)
args_off=(oauth2: 0 big 1 accounts "" "$now" 0 big 1 1000000 1000000)

echo "Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'):" \
     "instructions per EVALSHA (callgrind, $n and $((3 * n)) calls)," \
     "$(date -u +%Y-%m-%d)"
printf '  %-48s %8s\n' 'lookup, rate limit on' \
    "$(per_call "$work/lookup.lua" "${args_on[@]}")"
printf '  %-48s %8s\n' 'lookup, rate limit off' \
    "$(per_call "$work/lookup.lua" "${args_off[@]}")"
printf '  %-48s %8s\n' 'return 0, with the lookup'"'"'s arguments' \
    "$(per_call "$work/empty.lua" "${args_on[@]}")"
printf '  %-48s %8s\n' 'the Lua location'"'"'s script' \
    "$(per_call "$work/lua-check.lua")"
printf '  %-48s %8s\n' 'return 0, one key' \
    "$(per_call "$work/empty.lua")"
