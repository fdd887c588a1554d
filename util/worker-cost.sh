#!/usr/bin/env bash
# The nginx worker's cost of a request in instructions, which unlike
# microseconds does not move with the machine's load: nginx runs as one
# process under valgrind's callgrind, one keep-alive connection (curl)
# sends N and then 3N requests to a location, and the difference of the
# two totals over 2N is what one request costs, start-up left out.
# User-space only: the kernel's part (sockets, the file) is not counted.
#
#   util/worker-cost.sh [N]
#
# Rows (util/bench.sh's paths, one location each, the same static file):
#   plain        no oauth2
#   cached-norl  oauth2_cache holds the record, oauth2_rate_limit off:
#                the token's SHA-256, the zone lookup, the checks
#   jwt-hs       an HS256 JWT verified in the worker, no Redis call
#   cached       oauth2_cache and the rate limit's call to Redis
#   cached-lease the same with oauth2_rate_limit_lease on max=1000: the
#                permits of a batch spent in the worker
#   opaque       no cache: the lookup script, its reply parsed
# (oauth2_cache is set at the http level: the cached rows run an nginx of
# their own)
# Then the functions that cost the most in cached-norl above plain.
#
# valgrind runs SHA-256 and HMAC with the CPU's generic code, not its
# SHA extensions: those rows count more instructions than the CPU runs.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
MODULE=${MODULE:-$top/build/ngx_http_oauth2_module.so}
work=$(mktemp -d /tmp/oauth2-worker-cost.XXXXXX)
chmod 755 "$work"

free_port() {
    perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1,
        LocalAddr => "127.0.0.1:0", ReuseAddr => 1)->sockport'
}

rport=$(free_port)
cleanup() {
    redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null

redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --logfile "$work/redis.log"
sleep 0.3

token=bench-opaque-token
key=oauth2:token:$(printf %s "$token" | sha256sum | cut -d' ' -f1)
redis-cli -p "$rport" HSET "$key" client_id bench scope accounts \
    consent_id c-bench >/dev/null
redis-cli -p "$rport" EXPIRE "$key" 3600 >/dev/null
redis-cli -p "$rport" HSET oauth2:consent:c-bench status valid >/dev/null

secret=bench-secret-bench-secret-bench-secret
jwt=$(perl -I"$top/t/lib" -MOAuth2JWT -e '
    $OAuth2JWT::Secret = shift;
    print OAuth2JWT::sign("HS256", { client_id => "bench",
        scope => "accounts", exp => time + 86400 });' "$secret")

echo ok > "$work/ok.txt"
mkdir -p "$work/conf" "$work/logs"
cat > "$work/conf/nginx.conf" <<CONF
load_module $MODULE;
master_process off;
daemon off;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    oauth2_redis 127.0.0.1:$rport;
    oauth2_plan big 1000000r/s;
    oauth2_default_plan big;
    oauth2_jwt_key HS256 $secret;
    CACHE
    server {
        listen 127.0.0.1:PORT;
        root $work;
        location /plain { try_files /ok.txt =404; }
        location /cached-norl {
            oauth2 on; oauth2_scope accounts; oauth2_rate_limit off;
            try_files /ok.txt =404;
        }
        location /jwt-hs {
            oauth2 on; oauth2_scope accounts; oauth2_token_type jwt;
            oauth2_consent off; oauth2_rate_limit off;
            try_files /ok.txt =404;
        }
        location /cached {
            oauth2 on; oauth2_scope accounts;
            try_files /ok.txt =404;
        }
        location /cached-lease {
            oauth2 on; oauth2_scope accounts;
            oauth2_rate_limit_lease on max=1000 time=1s;
            try_files /ok.txt =404;
        }
        location /opaque {
            oauth2 on; oauth2_scope accounts;
            try_files /ok.txt =404;
        }
    }
}
CONF

# total PATH TOKEN COUNT: callgrind's instruction total for COUNT requests
total() {
    local path=$1 tok=$2 count=$3 port out pid ok
    port=$(free_port)
    out=$work/cg.$port
    cache=""
    case $path in   # oauth2_cache is an http-level directive
        /cached*) cache="oauth2_cache zone=cost:1m ttl=1h;" ;;
    esac
    sed "s/PORT/$port/; s/CACHE/$cache/" "$work/conf/nginx.conf" \
        > "$work/conf/run.conf"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$NGINX_BIN" \
        -p "$work/" -c conf/run.conf >"$work/valgrind.log" 2>&1 &
    pid=$!
    for _ in $(seq 150); do
        curl -s -o /dev/null "http://127.0.0.1:$port/plain" && break
        sleep 0.2
    done
    {
        echo 'header = "Authorization: Bearer '"$tok"'"'
        for _ in $(seq "$count"); do
            echo "url = \"http://127.0.0.1:$port$path\""
            echo 'output = "/dev/null"'
        done
    } > "$work/curl.cfg"
    ok=$(curl -s -w '%{http_code}\n' -K "$work/curl.cfg" | grep -c '^200$' \
         || true)
    if [ "$ok" != "$count" ]; then
        echo "$path: $ok of $count requests got 200" >&2
        cat "$work/valgrind.log" "$work/logs/error.log" >&2
        exit 1
    fi
    kill -QUIT "$pid"
    wait "$pid" || true
    echo "$out"
}

sum() { callgrind_annotate "$1" 2>/dev/null \
        | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,; }

printf '%-12s %12s %12s\n' path instr/req "x plain"
declare -A cost
for p in plain cached-norl jwt-hs cached cached-lease opaque; do
    tok=$token
    [ "$p" = jwt-hs ] && tok=$jwt
    a=$(total "/$p" "$tok" "$n")
    b=$(total "/$p" "$tok" $((3 * n)))
    cost[$p]=$(( ($(sum "$b") - $(sum "$a")) / (2 * n) ))
    printf '%-12s %12d %12s\n' "$p" "${cost[$p]}" \
        "$(echo "scale=2; ${cost[$p]} / ${cost[plain]}" | bc)"
    [ "$p" = cached-norl ] && cp "$a" "$work/norl.1" && cp "$b" "$work/norl.3"
    [ "$p" = plain ] && cp "$a" "$work/plain.1" && cp "$b" "$work/plain.3"
done

# per function: (3N run - N run) / 2N, cached-norl against plain
echo
echo "cached-norl above plain, by function (instructions per request):"
for f in plain.1 plain.3 norl.1 norl.3; do
    callgrind_annotate --threshold=100 "$work/$f" 2>/dev/null \
        | grep -E '^ *[0-9,]+ ' | grep -v 'PROGRAM TOTALS' \
        | sed 's/,//g; s/ ([^)]*)//' \
        | awk '{ c = $1; $1 = ""; sub(/^ /, ""); print c "\t" $0 }' \
        > "$work/fn.$f"
done
perl -e '
    my %d; my $n = shift;
    for my $f (@ARGV) {
        my ($run, $sign) = ($f =~ /plain/ ? -1 : 1, 0);
        my $scale = $f =~ /\.3$/ ? 1 : -1;
        open my $fh, "<", $f or die;
        while (<$fh>) {
            chomp; my ($c, $k) = split /\t/, $_, 2;
            $k =~ s/^\S*://;       # the file, not the function
            $k =~ s/ \[.*//;
            $d{$k} += $run * $scale * $c / (2 * $n);
        }
    }
    my @k = sort { $d{$b} <=> $d{$a} } keys %d;
    printf "%8.0f  %s\n", $d{$_}, $_ for grep { $d{$_} >= 20 } @k[0 .. 14];
' "$n" "$work"/fn.plain.1 "$work"/fn.plain.3 "$work"/fn.norl.1 \
    "$work"/fn.norl.3
