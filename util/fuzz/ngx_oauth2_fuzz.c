
/*
 * ngx_oauth2_module fuzz targets: nginx is set up the way its main() sets
 * it up, as far as "nginx -t" goes, from $OAUTH2_FUZZ_DIR/fuzz.conf, so the
 * module's configuration (keys, plans, locations) is the real one.  Each
 * input then gets a request of its own, with its own pool, over the merged
 * configuration of one of the servers; the pool is destroyed after the
 * input, so that LeakSanitizer sees whatever the module forgets to free.
 */


#include "ngx_oauth2_fuzz.h"


static ngx_http_conf_ctx_t  *ngx_oauth2_fuzz_servers[NGX_OAUTH2_FUZZ_SERVERS];


int LLVMFuzzerInitialize(int *argc, char ***argv);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (ngx_oauth2_fuzz_init(*argc, *argv) != NGX_OK
        || ngx_oauth2_fuzz_target_init() != NGX_OK)
    {
        exit(1);
    }

    return 0;
}


ngx_int_t
ngx_oauth2_fuzz_init(int argc, char **argv)
{
    char                       *dir;
    size_t                      len;
    u_char                     *p;
    ngx_log_t                  *log;
    ngx_uint_t                  i;
    ngx_cycle_t                *cycle;
    ngx_http_core_srv_conf_t  **cscfp;
    ngx_http_core_main_conf_t  *cmcf;

    static ngx_cycle_t          init_cycle;

    dir = getenv("OAUTH2_FUZZ_DIR");
    if (dir == NULL || dir[0] != '/') {
        fprintf(stderr, "fuzz: OAUTH2_FUZZ_DIR must name the directory "
                "util/fuzz/seeds.sh prepared, as an absolute path\n");
        return NGX_ERROR;
    }

    len = ngx_strlen(dir);

    ngx_debug_init();

    /* what ngx_save_argv() would keep, for ngx_os_init()'s setproctitle */

    ngx_argc = argc;
    ngx_argv = argv;
    ngx_os_argv = argv;

    if (ngx_strerror_init() != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_max_sockets = -1;
    ngx_time_init();
#if (NGX_PCRE)
    ngx_regex_init();
#endif

    ngx_pid = ngx_getpid();
    ngx_parent = ngx_getppid();

    /* until fuzz.conf's error_log is read: stderr (as "nginx -e stderr") */

    log = ngx_log_init((u_char *) dir, (u_char *) "");
    if (log == NULL) {
        return NGX_ERROR;
    }

    ngx_ssl_init(log);

    init_cycle.log = log;
    ngx_cycle = &init_cycle;

    init_cycle.pool = ngx_create_pool(1024, log);
    if (init_cycle.pool == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(init_cycle.pool, len + sizeof("/fuzz.conf"));
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(p, "%s/fuzz.conf%Z", dir);

    init_cycle.conf_file.data = p;
    init_cycle.conf_file.len = len + sizeof("/fuzz.conf") - 1;
    init_cycle.conf_prefix.data = p;
    init_cycle.conf_prefix.len = len + 1;
    init_cycle.prefix = init_cycle.conf_prefix;
    ngx_str_set(&init_cycle.error_log, "");
    ngx_str_set(&init_cycle.conf_param, "");

    if (ngx_os_init(log) != NGX_OK || ngx_crc32_table_init() != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_slab_sizes_init();

    if (ngx_preinit_modules() != NGX_OK) {
        return NGX_ERROR;
    }

    /* as "nginx -t": the configuration, no workers, no Redis connection */

    ngx_test_config = 1;
    ngx_quiet_mode = 1;

    cycle = ngx_init_cycle(&init_cycle);
    if (cycle == NULL) {
        fprintf(stderr, "fuzz: %s failed to load\n",
                init_cycle.conf_file.data);
        return NGX_ERROR;
    }

    ngx_cycle = cycle;

    ngx_oauth2_fuzz_clock();

    /* the requests log to fuzz.conf's error_log, at its level */

    cycle->log = &cycle->new_log;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module);

    if (cmcf == NULL || cmcf->servers.nelts != NGX_OAUTH2_FUZZ_SERVERS) {
        fprintf(stderr, "fuzz: fuzz.conf must have %d servers\n",
                NGX_OAUTH2_FUZZ_SERVERS);
        return NGX_ERROR;
    }

    cscfp = cmcf->servers.elts;

    for (i = 0; i < NGX_OAUTH2_FUZZ_SERVERS; i++) {
        ngx_oauth2_fuzz_servers[i] = cscfp[i]->ctx;
    }

    return NGX_OK;
}


void
ngx_oauth2_fuzz_clock(void)
{
    ngx_time_t  *tp;

    tp = (ngx_time_t *) ngx_cached_time;
    tp->sec = NGX_OAUTH2_FUZZ_NOW;
    tp->msec = 0;
}


ngx_http_request_t *
ngx_oauth2_fuzz_request(ngx_uint_t server)
{
    ngx_pool_t            *pool;
    ngx_connection_t      *c;
    ngx_http_request_t    *r;
    ngx_http_conf_ctx_t   *ctx;

    ctx = ngx_oauth2_fuzz_servers[server % NGX_OAUTH2_FUZZ_SERVERS];

    ngx_oauth2_fuzz_clock();

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        abort();
    }

    c = ngx_pcalloc(pool, sizeof(ngx_connection_t));
    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));

    if (c == NULL || r == NULL) {
        abort();
    }

    c->fd = (ngx_socket_t) -1;
    c->log = ngx_cycle->log;
    c->pool = pool;

    r->pool = pool;
    r->connection = c;
    r->main = r;
    r->main_conf = ctx->main_conf;
    r->srv_conf = ctx->srv_conf;
    r->loc_conf = ctx->loc_conf;

    r->ctx = ngx_pcalloc(pool, sizeof(void *) * ngx_http_max_module);
    if (r->ctx == NULL) {
        abort();
    }

    return r;
}


ngx_http_oauth2_ctx_t *
ngx_oauth2_fuzz_ctx(ngx_http_request_t *r)
{
    ngx_http_oauth2_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_oauth2_ctx_t));
    if (ctx == NULL) {
        abort();
    }

    ctx->request = r;
    ngx_memset(ctx->digest, 0xff, NGX_OAUTH2_DIGEST_LEN);
    ctx->now = ngx_time();
    ngx_str_set(&ctx->record.name, "token ffffff");

    ngx_http_set_ctx(r, ctx, ngx_http_oauth2_module);

    return ctx;
}


void
ngx_oauth2_fuzz_done(ngx_http_request_t *r)
{
    ngx_destroy_pool(r->pool);
}
