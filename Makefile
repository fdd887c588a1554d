# ngx_oauth2_module build, test and demo.
#
#   make                 build build/ngx_http_oauth2_module.so for Debian's nginx
#   make NGINX_SRC=DIR   build against an nginx source tree instead
#   make test            install what is missing, build, run the t/ suite
#   make run / stop      demo: Redis + nginx on 127.0.0.1:8080
#   make bench           throughput and latency of each path (wrk)
#   make test-valgrind   the suites with nginx under valgrind memcheck
#   make fuzz            libFuzzer + ASan/UBSan targets, FUZZ_TIME s each
#   make deb             build/libnginx-mod-http-oauth2_VERSION_ARCH.deb
#                        (util/debian; VERSION from util/debian/changelog)

SHELL        := /bin/bash
BUILD        := $(CURDIR)/build
MODULE       := $(BUILD)/ngx_http_oauth2_module.so
NGINX_SRC    ?=
NGINX_BIN    ?= $(if $(NGINX_SRC),$(BUILD)/nginx-src/objs/nginx,/usr/sbin/nginx)
SOURCES      := config $(wildcard ngx_oauth2_module/*.c ngx_oauth2_module/*.h \
                                 ngx_oauth2_module/*.map)
DEB_PACKAGES := nginx-dev nginx nginx-extras libhiredis-dev libjansson-dev strace \
                libjwt-dev libssl-dev libpcre2-dev zlib1g-dev redis-server \
                redis-sentinel redis-tools libtest-base-perl libtext-diff-perl \
                libtest-longstring-perl liblist-moreutils-perl \
                libipc-run-perl liburi-perl libio-socket-ssl-perl curl \
                openssl gcc make

# the compiler and linker flags Debian builds its packages with
# (dpkg-buildflags, from dpkg-dev), or the same by hand where it is missing
HARDENING    := DEB_BUILD_MAINT_OPTIONS=hardening=+all
CC_OPT       ?= $(shell $(HARDENING) dpkg-buildflags --get CFLAGS 2>/dev/null \
                  && $(HARDENING) dpkg-buildflags --get CPPFLAGS 2>/dev/null \
                  || echo -g -O2 -fstack-protector-strong -Wformat \
                          -Werror=format-security -D_FORTIFY_SOURCE=2)
LD_OPT       ?= $(shell $(HARDENING) dpkg-buildflags --get LDFLAGS 2>/dev/null \
                  || echo -Wl,-z,relro -Wl,-z,now)

# Test::Nginx: the real one (openresty/test-nginx) when it is on PERL5LIB,
# otherwise the project's compatible runner in util/test-nginx.
TEST_NGINX_LIB := $(shell perl -MTest::Nginx::Socket -e1 2>/dev/null \
                    || echo $(CURDIR)/util/test-nginx/lib)

# the Debian package: util/debian is the debian/ directory of a build tree
# in build/deb; the version is the one of util/debian/changelog's first line
DEB_NAME     := libnginx-mod-http-oauth2
DEB_VERSION  := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' util/debian/changelog)
DEB_ARCH     := $(shell dpkg --print-architecture)
DEB_FILE     := $(BUILD)/$(DEB_NAME)_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_TREE     := $(BUILD)/deb/$(DEB_NAME)-$(DEB_VERSION)
DEB_INPUTS   := $(SOURCES) $(wildcard util/debian/* util/debian/*/*) \
                README.md $(wildcard docs/*.md examples/* examples/*/*)
# util/debian/control's Build-Depends (dpkg-buildpackage checks them)
DEB_BUILD_DEPS := debhelper dpkg-dev nginx-dev libhiredis-dev \
                  libjansson-dev libjwt-dev libssl-dev gcc make

FUZZ_TIME    ?= 20
FUZZ_TARGETS ?= token redis jwt form

.PHONY: all deps deb test test-valgrind fuzz run stop bench clean

all: $(MODULE)

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	        --no-install-recommends $$missing >/dev/null; \
	fi

$(MODULE): $(SOURCES)
	@mkdir -p $(BUILD)
	@if [ -n "$(NGINX_SRC)" ]; then \
	    rm -rf $(BUILD)/nginx-src && cp -r $(NGINX_SRC) $(BUILD)/nginx-src && \
	    cd $(BUILD)/nginx-src && \
	    ./configure --with-compat --with-debug --with-http_ssl_module \
	        --add-dynamic-module=$(CURDIR) > $(BUILD)/configure.log && \
	    $(MAKE) -f objs/Makefile >/dev/null; \
	else \
	    test -f /usr/share/nginx/src/conf_flags || \
	        { echo "no /usr/share/nginx/src: run 'make deps'"; exit 1; }; \
	    if [ ! -f $(BUILD)/nginx-src/objs/Makefile ] || \
	       [ config -nt $(BUILD)/nginx-src/objs/Makefile ]; then \
	        rm -rf $(BUILD)/nginx-src && \
	        cp -r /usr/share/nginx/src $(BUILD)/nginx-src && \
	        cd $(BUILD)/nginx-src && \
	        . ./conf_flags && \
	        ./configure "$${NGX_CONF_FLAGS[@]}" \
	            --with-cc-opt="$(CC_OPT) -fPIC" \
	            --with-ld-opt="$(LD_OPT) -fPIC" \
	            --add-dynamic-module=$(CURDIR) > $(BUILD)/configure.log \
	        || { cat $(BUILD)/configure.log; exit 1; }; \
	    fi; \
	fi
	$(MAKE) -C $(BUILD)/nginx-src -f objs/Makefile modules
	@# a new file, not new bytes in the old one: an nginx that has the
	@# module loaded (a test, make run) would crash on the rewritten pages
	cp $(BUILD)/nginx-src/objs/ngx_http_oauth2_module.so $(MODULE).new
	mv -f $(MODULE).new $(MODULE)

test: deps $(MODULE)
	@NGINX_BIN=$(NGINX_BIN) MODULE=$(MODULE) \
	    TEST_NGINX_LIB=$(TEST_NGINX_LIB) util/run-tests.sh $(T)

# the suites that do not depend on timing, with nginx under valgrind
VALGRIND_T ?= t/010-token.t t/015-boundary.t t/016-access-checker.t \
              t/020-scope.t t/030-consent.t t/041-client-gone.t \
              t/060-ratelimit.t t/070-jwt.t t/080-bad-input.t \
              t/110-authorize.t t/111-token.t t/112-consent-api.t \
              t/113-revoke.t t/118-authz-client-gone.t

test-valgrind: deps $(MODULE)
	@command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null
	@TEST_NGINX_USE_VALGRIND=1 TEST_NGINX_TIMEOUT=30 \
	    TEST_NGINX_VALGRIND_FRAMES="oauth2 hiredis redis jansson json jwt" \
	    NGINX_BIN=$(NGINX_BIN) MODULE=$(MODULE) \
	    TEST_NGINX_LIB=$(CURDIR)/util/test-nginx/lib \
	    util/run-tests.sh $(VALGRIND_T)

# clang's libFuzzer and sanitizers; nginx's source comes from Debian's
# nginx source package (util/fuzz.sh checks its SHA-256)
fuzz:
	@$(MAKE) --no-print-directory deps \
	    DEB_PACKAGES="$(DEB_PACKAGES) clang libclang-rt-14-dev binutils"
	@util/fuzz.sh $(FUZZ_TIME) $(FUZZ_TARGETS)

# Debian's way of building a third-party module: dpkg-buildpackage with
# dh-sequence-nginx (from nginx-dev) in a copy of the sources
deb: $(DEB_FILE)

$(DEB_FILE): $(DEB_INPUTS)
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_BUILD_DEPS)"
	rm -rf $(BUILD)/deb && mkdir -p $(DEB_TREE)/examples
	cp -r config ngx_oauth2_module README.md docs $(DEB_TREE)/
	cp -r examples/nginx.conf examples/sites-available $(DEB_TREE)/examples/
	cp -r util/debian $(DEB_TREE)/debian
	cd $(DEB_TREE) && env -u MAKEFLAGS -u MFLAGS \
	    dpkg-buildpackage -b -us -uc > $(BUILD)/deb/build.log 2>&1 \
	    || { tail -40 $(BUILD)/deb/build.log; \
	         echo "make deb: see $(BUILD)/deb/build.log"; exit 1; }
	cp $(BUILD)/deb/$(notdir $(DEB_FILE)) $(DEB_FILE)
	@echo "$(DEB_FILE)"

run: deps $(MODULE)
	@NGINX_BIN=$(NGINX_BIN) MODULE=$(MODULE) util/demo.sh start

stop:
	@util/demo.sh stop

bench: deps $(MODULE)
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="wrk bc curl \
	    libnginx-mod-http-lua lua-nginx-redis"
	@NGINX_BIN=$(NGINX_BIN) MODULE=$(MODULE) util/bench.sh $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) t/servroot
