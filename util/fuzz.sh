#!/usr/bin/env bash
# make fuzz: libFuzzer + AddressSanitizer targets for the parts of the module
# that read what the network and Redis send.
#
#   util/fuzz.sh [seconds per target] [target ...]
#
# Targets (util/fuzz/*.c):
#   token   the Authorization header and the query string (RFC 6750 parser,
#           token hash, scope matching)
#   redis   the replies of the three Lua scripts, as bytes on the wire, read
#           by hiredis's reader and handed to the module's reply parser
#   jwt     JWT access tokens: raw tokens against RS256/ES256/HS256 keys, and
#           fuzzed header and claims JSON signed with the HS256 secret so
#           that the claim checks behind the signature are reached
#   form    the authorization server's input: form bodies and query
#           strings, HTTP Basic client credentials, the parameters'
#           grammars and scope normalisation
#
# The module is linked with nginx's own objects, built here with clang and
# ASan from Debian's nginx 1.22.1 source (the orig tarball of the nginx
# source package, fetched with apt-get source and checked against its
# SHA-256), the module added with --add-module: this is also the static
# build of the module.
#
# Corpora grow in build/fuzz/corpus/<target> (seeded by util/fuzz/seeds.sh);
# util/fuzz/regress/<target> holds the inputs that once failed, run first
# every time.  A crash, a leak or undefined behaviour leaves its input in
# build/fuzz/artifacts and fails the run.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-20}
shift || true
targets=${*:-token redis jwt form}

build=$top/build/fuzz
ver=1.22.1
tarball=nginx_$ver.orig.tar.gz
sha256=9ebb333a9e82b952acd3e2b4aeb1d4ff6406f72491bab6cd9fe69f0dea737f31
src=$build/nginx-$ver
CC=${CC:-clang}
# UBSan (every check, alignment included) recovers so that
# util/fuzz/ubsan.supp can apply; halt_on_error (below) still makes every
# report that is not suppressed a crash
SAN="-fsanitize=address,undefined"
# every ngx_palloc() a malloc() of its own, so that ASan sees a read past
# the end of any pool allocation (a pool hands out parts of one block)
DEFS="-DNGX_DEBUG_PALLOC=1"

mkdir -p "$build/dl"

# 1. nginx's source, once

if [ ! -f "$build/dl/$tarball" ]; then
    # apt-get source, with deb-src entries made from the machine's own deb
    # entries, in an apt state of our own (the system's is not touched)
    echo "fuzz: fetching nginx's source with apt-get source"
    apt=$build/apt
    rm -rf "$apt"
    mkdir -p "$apt/parts" "$apt/lists/partial"
    : > "$apt/sources.list"
    if [ -f /etc/apt/sources.list ]; then
        sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' /etc/apt/sources.list \
            >> "$apt/sources.list"
    fi
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        sed 's/^Types:.*/Types: deb-src/' "$f" > "$apt/parts/${f##*/}"
    done
    for f in /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" \
            > "$apt/parts/${f##*/}"
    done
    aptopts=(-o Dir::Etc::SourceList="$apt/sources.list"
             -o Dir::Etc::SourceParts="$apt/parts"
             -o Dir::State::Lists="$apt/lists"
             -o APT::Get::List-Cleanup=0 -qq)
    apt-get "${aptopts[@]}" update >/dev/null 2>&1 || true
    # the orig tarball is what is needed (a mirror may lack the newest
    # .dsc of a security update): the candidate first, then bookworm's own
    for v in "" "=$ver-9"; do
        (cd "$build/dl" && apt-get "${aptopts[@]}" source --download-only \
            "nginx$v" >/dev/null 2>&1) || true
        [ -f "$build/dl/$tarball" ] && break
    done
    if [ ! -f "$build/dl/$tarball" ]; then
        echo "fuzz: apt-get source nginx did not bring $tarball" >&2
        exit 1
    fi
fi

echo "$sha256  $build/dl/$tarball" | sha256sum -c --quiet - || {
    echo "fuzz: $tarball does not have the expected SHA-256" >&2
    rm -f "$build/dl/$tarball"
    exit 1
}

# 2. nginx and the module, statically, with clang, ASan and coverage

stamp=$build/nginx.stamp
newest=$(ls -t "$top/config" "$top"/ngx_oauth2_module/* | head -1)

# configured again when the compiler or the sanitizer flags change
if [ "$(cat "$build/flags" 2>/dev/null)" != "$CC $SAN $DEFS" ]; then
    rm -rf "$src" "$stamp"
fi

# and when config (the module's file list) changed
if [ ! -f "$src/objs/Makefile" ] || [ "$top/config" -nt "$src/objs/Makefile" ]
then
    rm -rf "$src"
    tar -C "$build" -xzf "$build/dl/$tarball"
    (cd "$src" && ./configure --with-cc="$CC" \
        --with-cc-opt="-g -O1 -fno-omit-frame-pointer $SAN $DEFS \
                       -fsanitize=fuzzer-no-link" \
        --with-ld-opt="$SAN" \
        --with-http_ssl_module --add-module="$top" \
        > "$build/configure.log") || { cat "$build/configure.log"; exit 1; }
    echo "$CC $SAN $DEFS" > "$build/flags"
fi

if [ ! -f "$stamp" ] || [ "$newest" -nt "$stamp" ]; then
    echo "fuzz: building nginx $ver with the module (clang, ASan, UBSan)"
    make -C "$src" -f objs/Makefile -j"$(nproc)" > "$build/make.log" 2>&1 \
        || { tail -40 "$build/make.log"; exit 1; }
    touch "$stamp"
fi

# 3. the targets: nginx's objects (main renamed away) + the harness

libs=$(sed -n '/$(LINK) -o objs\/nginx/,/^[[:space:]]*$/p' \
       "$src/objs/Makefile" | tr ' \\\t' '\n\n\n' | grep -E '^-l|^-Wl' \
       | tr '\n' ' ')
objs=$(find "$src/objs" -name '*.o' ! -path '*/src/core/nginx.o' | sort)
objcopy --redefine-sym main=ngx_fuzz_nginx_main \
    "$src/objs/src/core/nginx.o" "$build/nginx-nomain.o"

incs="-I $src/objs -I $src/src/core -I $src/src/event -I $src/src/event/modules
      -I $src/src/os/unix -I $src/src/http -I $src/src/http/modules
      -I $src/src/http/v2 -I $top/ngx_oauth2_module"

for t in $targets; do
    bin=$build/fuzz-$t
    if [ ! -f "$bin" ] || [ "$stamp" -nt "$bin" ] \
       || [ "$top/util/fuzz/fuzz_$t.c" -nt "$bin" ] \
       || [ "$top/util/fuzz/ngx_oauth2_fuzz.c" -nt "$bin" ] \
       || [ "$top/util/fuzz/ngx_oauth2_fuzz.h" -nt "$bin" ]
    then
        # shellcheck disable=SC2086
        $CC -g -O1 -fno-omit-frame-pointer $SAN $DEFS -fsanitize=fuzzer \
            -Wall -Werror $incs \
            -o "$bin" "$top/util/fuzz/fuzz_$t.c" \
            "$top/util/fuzz/ngx_oauth2_fuzz.c" \
            $objs "$build/nginx-nomain.o" $libs
    fi
done

# 4. the configuration the targets load, its keys, the seed corpora

work=$build/work
mkdir -p "$work/logs"
"$top/util/fuzz/seeds.sh" "$work" "$build/corpus"

[ "$secs" = 0 ] && exit 0

# 5. run each target for $secs seconds

mkdir -p "$build/artifacts"
export OAUTH2_FUZZ_DIR=$work
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:\
suppressions=$top/util/fuzz/ubsan.supp}

rc=0
for t in $targets; do
    echo "fuzz: $t for ${secs}s"
    if ! "$build/fuzz-$t" -max_total_time="$secs" -timeout=10 \
            -rss_limit_mb=2048 -max_len=70000 -print_final_stats=1 \
            -dict="$top/util/fuzz/$t.dict" \
            -artifact_prefix="$build/artifacts/$t-" \
            "$build/corpus/$t" "$top/util/fuzz/regress/$t" \
            > "$build/fuzz-$t.log" 2>&1
    then
        echo "fuzz: $t FAILED, see $build/fuzz-$t.log and $build/artifacts"
        tail -60 "$build/fuzz-$t.log"
        rc=1
    else
        grep -aE '^stat::(number_of_executed_units|new_units_added)|cov:' \
            "$build/fuzz-$t.log" | tail -3
    fi
done

exit $rc
