
/*
 * ngx_oauth2_module: calls to Redis, and where Redis is configured.
 *
 * A call (ngx_oauth2_redis_call_t) is what the module asks Redis: a
 * script with its KEYS and ARGV, or a plain command.  The caller takes a
 * call from the worker (ngx_oauth2_redis_call_create), fills it, and sends
 * it; it is answered once through its handler, with the reply or with NULL
 * when Redis does not answer in oauth2_redis_timeout or the connection is
 * lost.  The call and its timer belong to this layer: a request that goes
 * away cancels its call, and the late reply finds no handler.
 *
 * Scripts are sent as EVALSHA; a NOSCRIPT reply (Redis's script cache was
 * flushed) sends the call again once as EVAL, which loads the script.
 */


#include "ngx_oauth2_redis.h"
#include "ngx_oauth2_scripts.h"


#define NGX_OAUTH2_NSCRIPTS                                                   \
    (sizeof(ngx_oauth2_scripts) / sizeof(ngx_oauth2_scripts[0]))

#define NGX_OAUTH2_SHA1_HEX_LEN      40


static ngx_int_t ngx_oauth2_redis_push(ngx_oauth2_redis_call_t *call,
    ngx_oauth2_conn_t *conn);
static ngx_oauth2_conn_t *ngx_oauth2_redis_pick(ngx_oauth2_redis_t *rd);
static void ngx_oauth2_redis_timeout(ngx_event_t *ev);
static char *ngx_oauth2_redis_parse_url(ngx_conf_t *cf,
    ngx_oauth2_redis_conf_t *rcf, ngx_str_t *url);


/* the worker's Redis: set up by init_process, gone at exit */
static ngx_oauth2_redis_t  *ngx_oauth2_redis;


/*
 * oauth2_redis ADDRESS | URL
 *
 *   127.0.0.1:6379, [::1]:6379, redis.internal:6379, unix:/path
 *   redis://[[user]:password@]host[:port][/db]
 *   rediss://...      (TLS, as oauth2_redis_ssl on)
 */

char *
ngx_http_oauth2_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_main_conf_t *omcf = conf;

    ngx_str_t  *value;

    if (omcf->redis.addr.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    return ngx_oauth2_redis_parse_url(cf, &omcf->redis, &value[1]);
}


static char *
ngx_oauth2_redis_parse_url(ngx_conf_t *cf, ngx_oauth2_redis_conf_t *rcf,
    ngx_str_t *url)
{
    u_char     *p, *at, *colon, *slash, *end;
    ngx_str_t   s;
    ngx_url_t   u;
    ngx_int_t   db;

    rcf->addr = *url;

    s = *url;
    end = s.data + s.len;

    rcf->url_db = -1;

    /*
     * what the URL says (TLS, credentials, database) may be said again
     * by the directives, in any order: ngx_oauth2_redis_init_conf() takes
     * either when they agree
     */

    if (s.len > 8 && ngx_strncasecmp(s.data, (u_char *) "rediss://", 9) == 0)
    {
        rcf->url_ssl = 1;
        s.data += 9;

    } else if (s.len > 7
               && ngx_strncasecmp(s.data, (u_char *) "redis://", 8) == 0)
    {
        rcf->url_plain = 1;
        s.data += 8;

    } else {
        goto address;
    }

    /* [[user]:password@] */

    slash = ngx_strlchr(s.data, end, '/');
    at = NULL;

    for (p = s.data; p < (slash ? slash : end); p++) {
        if (*p == '@') {
            at = p;
        }
    }

    if (at) {
        colon = ngx_strlchr(s.data, at, ':');

        if (colon == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"oauth2_redis\" URL \"%V\": "
                               "user:password@ or :password@ expected",
                               url);
            return NGX_CONF_ERROR;
        }

        rcf->url_user.data = ngx_pnalloc(cf->pool, colon - s.data + 1);
        rcf->url_password.data = ngx_pnalloc(cf->pool, at - colon);
        if (rcf->url_user.data == NULL || rcf->url_password.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = rcf->url_user.data;
        ngx_unescape_uri(&p, &s.data, colon - s.data, 0);
        rcf->url_user.len = p - rcf->url_user.data;

        s.data = colon + 1;
        p = rcf->url_password.data;
        ngx_unescape_uri(&p, &s.data, at - colon - 1, 0);
        rcf->url_password.len = p - rcf->url_password.data;

        if (rcf->url_password.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"oauth2_redis\" URL \"%V\": "
                               "empty password", url);
            return NGX_CONF_ERROR;
        }

        s.data = at + 1;
    }

    /* [/db] */

    if (slash) {
        if (slash + 1 < end) {
            db = ngx_atoi(slash + 1, end - slash - 1);

            if (db == NGX_ERROR || db > 65535) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"oauth2_redis\" URL \"%V\": "
                                   "the database must be 0 to 65535", url);
                return NGX_CONF_ERROR;
            }

            rcf->url_db = db;
        }

        end = slash;
    }

address:

    s.len = end - s.data;

    if (s.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"oauth2_redis\" address \"%V\"", url);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = s;
    u.default_port = 6379;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"oauth2_redis\" address \"%V\"%s%s",
                           url, u.err ? ": " : "", u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    if (u.uri.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"oauth2_redis\" address \"%V\": "
                           "a path is not an address (redis://HOST/DB "
                           "selects a database)", url);
        return NGX_CONF_ERROR;
    }

    rcf->host = u.host;
    rcf->port = u.port;

    if (u.naddrs) {
        /* an address, or a unix socket: nothing to resolve */
        rcf->addrs = u.addrs;
        rcf->naddrs = u.naddrs;
    }

    return NGX_CONF_OK;
}


/*
 * oauth2_redis_sentinel ADDRESS ... master=NAME [user=USER]
 *     [password=PASSWORD];
 */

char *
ngx_http_oauth2_sentinel_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_main_conf_t *omcf = conf;

    ngx_str_t                  *value, *v;
    ngx_url_t                   u;
    ngx_uint_t                  i;
    ngx_oauth2_redis_conf_t    *rcf;
    ngx_oauth2_redis_server_t  *s;

    rcf = &omcf->redis;

    if (rcf->sentinels) {
        return "is duplicate";
    }

    rcf->sentinels = ngx_array_create(cf->pool, 3,
                                      sizeof(ngx_oauth2_redis_server_t));
    if (rcf->sentinels == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        v = &value[i];

        if (ngx_strncmp(v->data, "master=", 7) == 0) {
            rcf->master.data = v->data + 7;
            rcf->master.len = v->len - 7;
            continue;
        }

        if (ngx_strncmp(v->data, "user=", 5) == 0) {
            rcf->sentinel_user.data = v->data + 5;
            rcf->sentinel_user.len = v->len - 5;
            continue;
        }

        if (ngx_strncmp(v->data, "password=", 9) == 0) {
            rcf->sentinel_password.data = v->data + 9;
            rcf->sentinel_password.len = v->len - 9;
            continue;
        }

        /* a Sentinel, resolved now: Sentinels do not move */

        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = *v;
        u.default_port = 26379;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.uri.len
            || u.naddrs == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid Sentinel address \"%V\" in "
                               "\"oauth2_redis_sentinel\"%s%s", v,
                               u.err ? ": " : "", u.err ? u.err : "");
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(rcf->sentinels);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        s->name = *v;
        s->addrs = u.addrs;
        s->naddrs = u.naddrs;
    }

    if (rcf->master.len == 0 || rcf->sentinels->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_redis_sentinel\" needs at least one "
                           "Sentinel address and master=NAME");
        return NGX_CONF_ERROR;
    }

    if ((rcf->sentinel_user.data && rcf->sentinel_user.len == 0)
        || (rcf->sentinel_password.data && rcf->sentinel_password.len == 0)
        || (rcf->sentinel_user.len && rcf->sentinel_password.len == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_redis_sentinel\": an empty user or "
                           "password, or a user without a password");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * oauth2_redis_timeout [TIME | timeout=TIME] [connect_timeout=TIME]
 *     [handshake_timeout=TIME]
 */

char *
ngx_http_oauth2_redis_timeout_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_main_conf_t *omcf = conf;

    size_t       n;
    ngx_str_t   *value, s;
    ngx_msec_t   t, *to;
    ngx_uint_t   i;

    if (omcf->redis.timeout_set) {
        return "is duplicate";
    }

    omcf->redis.timeout_set = 1;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        s = value[i];

        if (ngx_strncmp(s.data, "timeout=", 8) == 0) {
            n = 8;
            to = &omcf->redis.timeout;

        } else if (ngx_strncmp(s.data, "connect_timeout=", 16) == 0) {
            n = 16;
            to = &omcf->redis.connect_timeout;

        } else if (ngx_strncmp(s.data, "handshake_timeout=", 18) == 0) {
            n = 18;
            to = &omcf->redis.handshake_timeout;

        } else if (ngx_strlchr(s.data, s.data + s.len, '=') == NULL) {
            n = 0;
            to = &omcf->redis.timeout;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"oauth2_redis_timeout\" (a time, timeout=, "
                               "connect_timeout= or handshake_timeout=)",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (*to != NGX_CONF_UNSET_MSEC) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_redis_timeout\" sets \"%V\" twice%s",
                               &value[i],
                               to == &omcf->redis.timeout
                               ? " (a time and timeout= are the same)" : "");
            return NGX_CONF_ERROR;
        }

        s.data += n;
        s.len -= n;

        t = ngx_parse_time(&s, 0);

        if (t == (ngx_msec_t) NGX_ERROR && s.len && s.data[0] != '0') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid time \"%V\" in "
                               "\"oauth2_redis_timeout\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (t == (ngx_msec_t) NGX_ERROR || t == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_redis_timeout\" must be more than "
                               "0: invalid value \"%V\" (e.g. 500ms, "
                               "timeout=500ms, connect_timeout=2s or "
                               "handshake_timeout=2s)", &value[i]);
            return NGX_CONF_ERROR;
        }

        *to = t;
    }

    return NGX_CONF_OK;
}


/*
 * An oauth2_redis URL's TLS, credentials and database, and the
 * directives that say the same (oauth2_redis_ssl, oauth2_redis_password,
 * oauth2_redis_db), in either order: the same value twice is fine, two
 * different ones are an error that names both.
 */

static ngx_int_t
ngx_oauth2_redis_url_agrees(ngx_conf_t *cf, ngx_oauth2_redis_conf_t *rcf)
{
    if (rcf->addr.len == 0) {
        return NGX_OK;
    }

    if (rcf->url_ssl) {
        if (rcf->ssl == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_redis\" \"%V\" asks for TLS but "
                               "\"oauth2_redis_ssl off\" is set",
                               &rcf->addr);
            return NGX_ERROR;
        }

        rcf->ssl = 1;

    } else if (rcf->url_plain && rcf->ssl == 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_redis\" \"%V\" asks for no TLS but "
                           "\"oauth2_redis_ssl on\" is set (rediss:// "
                           "asks for TLS)", &rcf->addr);
        return NGX_ERROR;
    }

    if (rcf->url_db >= 0) {
        if (rcf->db != NGX_CONF_UNSET && rcf->db != rcf->url_db) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_redis\" \"%V\" selects database "
                               "%i but \"oauth2_redis_db %i\" is set",
                               &rcf->addr, rcf->url_db, rcf->db);
            return NGX_ERROR;
        }

        rcf->db = rcf->url_db;
    }

    if (rcf->url_password.len) {
        if (rcf->password.len
            && (rcf->password.len != rcf->url_password.len
                || ngx_memcmp(rcf->password.data, rcf->url_password.data,
                              rcf->password.len) != 0
                || rcf->user.len != rcf->url_user.len
                || ngx_memcmp(rcf->user.data, rcf->url_user.data,
                              rcf->user.len) != 0))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the \"oauth2_redis\" URL's user and password "
                               "are not those of \"oauth2_redis_password\": "
                               "keep one of the two");
            return NGX_ERROR;
        }

        rcf->user = rcf->url_user;
        rcf->password = rcf->url_password;
    }

    return NGX_OK;
}


/* defaults, the resolver, TLS: once the http block is read */

char *
ngx_oauth2_redis_init_conf(ngx_conf_t *cf, ngx_http_oauth2_main_conf_t *omcf)
{
    ngx_oauth2_redis_conf_t   *rcf;
    ngx_http_core_loc_conf_t  *clcf;

    rcf = &omcf->redis;

    if (ngx_oauth2_redis_url_agrees(cf, rcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(rcf->db, 0);
    ngx_conf_init_msec_value(rcf->timeout, 1000);
    ngx_conf_init_msec_value(rcf->connect_timeout, rcf->timeout);
    ngx_conf_init_msec_value(rcf->handshake_timeout, rcf->connect_timeout);
    ngx_conf_init_uint_value(rcf->connections, 1);
    ngx_conf_init_value(rcf->ssl, 0);
    ngx_conf_init_value(rcf->ssl_verify, 1);
    ngx_conf_init_uint_value(rcf->ssl_verify_depth, 1);
    ngx_conf_init_value(rcf->ssl_server_name, 0);

    if (rcf->ssl_protocols == 0) {
        rcf->ssl_protocols = NGX_CONF_BITMASK_SET
                             |NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3;
    }

    if (rcf->ssl_ciphers.data == NULL) {
        ngx_str_set(&rcf->ssl_ciphers, "DEFAULT");
    }

    if (rcf->sentinels && rcf->addr.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_redis\" and \"oauth2_redis_sentinel\" "
                           "both say where Redis is: keep one (with "
                           "Sentinel, oauth2_redis_password, "
                           "oauth2_redis_db and oauth2_redis_ssl apply to "
                           "the primary)");
        return NGX_CONF_ERROR;
    }

    if (rcf->sentinels) {
        ngx_str_set(&rcf->addr, "(the primary Sentinel names)");
    }

    /* a name: nginx's resolver at run time, or the system's now */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    rcf->resolver_timeout = (clcf->resolver_timeout == NGX_CONF_UNSET_MSEC)
                            ? 30000 : clcf->resolver_timeout;

    if (rcf->sentinels == NULL && rcf->addr.len && rcf->addrs == NULL) {

        if (clcf->resolver && clcf->resolver->connections.nelts) {
            rcf->resolver = clcf->resolver;

        } else {
            ngx_url_t  u;

            ngx_memzero(&u, sizeof(ngx_url_t));

            u.url.len = rcf->host.len;
            u.url.data = rcf->host.data;
            u.default_port = rcf->port;

            if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"oauth2_redis\" host \"%V\" cannot be "
                                   "resolved%s%s (or set a \"resolver\" in "
                                   "the http block to resolve it at run "
                                   "time)", &rcf->host, u.err ? ": " : "",
                                   u.err ? u.err : "");
                return NGX_CONF_ERROR;
            }

            rcf->addrs = u.addrs;
            rcf->naddrs = u.naddrs;
        }
    }

    if (!rcf->ssl) {
        return NGX_CONF_OK;
    }

#if (NGX_HTTP_SSL)
    {
    u_char              *name;
    ngx_pool_cleanup_t  *cln;

    rcf->ssl_ctx = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (rcf->ssl_ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    rcf->ssl_ctx->log = cf->log;

    if (ngx_ssl_create(rcf->ssl_ctx, rcf->ssl_protocols, NULL) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /*
     * a write that must wait is retried with what was queued meanwhile
     * appended, and the buffer may have moved (ngx_oauth2_conn_append):
     * never shorter, never other bytes, but not at the same address
     */
    SSL_CTX_set_mode(rcf->ssl_ctx->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(rcf->ssl_ctx);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = rcf->ssl_ctx;

    if (ngx_ssl_ciphers(cf, rcf->ssl_ctx, &rcf->ssl_ciphers, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (rcf->ssl_certificate.len) {

        if (rcf->ssl_certificate_key.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "no \"oauth2_redis_ssl_certificate_key\" "
                               "is defined for certificate \"%V\"",
                               &rcf->ssl_certificate);
            return NGX_CONF_ERROR;
        }

        if (ngx_ssl_certificate(cf, rcf->ssl_ctx, &rcf->ssl_certificate,
                                &rcf->ssl_certificate_key, NULL)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

    } else if (rcf->ssl_certificate_key.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_redis_ssl_certificate_key\" without "
                           "\"oauth2_redis_ssl_certificate\"");
        return NGX_CONF_ERROR;
    }

    if (rcf->ssl_verify) {

        if (rcf->ssl_trusted_certificate.len) {
            if (ngx_ssl_trusted_certificate(cf, rcf->ssl_ctx,
                                            &rcf->ssl_trusted_certificate,
                                            rcf->ssl_verify_depth)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

        } else {
            /* the system's CAs, as for a managed Redis with a public CA */

            SSL_CTX_set_verify_depth(rcf->ssl_ctx->ctx,
                                     rcf->ssl_verify_depth);

            if (SSL_CTX_set_default_verify_paths(rcf->ssl_ctx->ctx) != 1) {
                ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                              "SSL_CTX_set_default_verify_paths() failed");
                return NGX_CONF_ERROR;
            }
        }
    }

    if (rcf->ssl_name.len) {
        /* NUL-terminated, for SSL_set_tlsext_host_name() */
        name = ngx_pnalloc(cf->pool, rcf->ssl_name.len + 1);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(name, rcf->ssl_name.data, rcf->ssl_name.len + 1);
        rcf->ssl_name.data = name;
    }
    }

    return NGX_CONF_OK;

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "TLS to Redis needs nginx built with "
                       "--with-http_ssl_module");
    return NGX_CONF_ERROR;

#endif
}


ngx_int_t
ngx_oauth2_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_oauth2_main_conf_t *omcf)
{
    ngx_uint_t           i;
    ngx_oauth2_redis_t  *rd;

    rd = ngx_pcalloc(cycle->pool, sizeof(ngx_oauth2_redis_t));
    if (rd == NULL) {
        return NGX_ERROR;
    }

    rd->omcf = omcf;
    rd->conf = &omcf->redis;
    rd->pool = cycle->pool;
    rd->log = cycle->log;

    ngx_queue_init(&rd->free_calls);

    rd->nconns = rd->conf->connections;
    rd->conns = ngx_palloc(cycle->pool,
                           rd->nconns * sizeof(ngx_oauth2_conn_t));
    if (rd->conns == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < rd->nconns; i++) {
        ngx_oauth2_conn_init(rd, &rd->conns[i], NGX_OAUTH2_CONN_DATA, i);
    }

    ngx_oauth2_redis = rd;

    return ngx_oauth2_topology_init(rd);
}


void
ngx_oauth2_redis_exit_worker(void)
{
    ngx_uint_t           i;
    ngx_oauth2_redis_t  *rd;

    rd = ngx_oauth2_redis;

    if (rd == NULL) {
        return;
    }

    rd->exiting = 1;

    ngx_oauth2_topology_exit(rd);

    for (i = 0; i < rd->nconns; i++) {
        ngx_oauth2_conn_exit(&rd->conns[i]);
    }

    ngx_oauth2_redis = NULL;
}


/* a call to fill and send, or NULL when this worker has no Redis */

ngx_oauth2_redis_call_t *
ngx_oauth2_redis_call_create(void)
{
    if (ngx_oauth2_redis == NULL) {
        return NULL;
    }

    return ngx_oauth2_redis_call_get(ngx_oauth2_redis);
}


ngx_oauth2_redis_call_t *
ngx_oauth2_redis_call_get(ngx_oauth2_redis_t *rd)
{
    ngx_queue_t              *q;
    ngx_oauth2_redis_call_t  *call;

    if (!ngx_queue_empty(&rd->free_calls)) {
        q = ngx_queue_head(&rd->free_calls);
        ngx_queue_remove(q);
        call = ngx_queue_data(q, ngx_oauth2_redis_call_t, queue);

    } else {
        call = ngx_palloc(rd->pool, sizeof(ngx_oauth2_redis_call_t));
        if (call == NULL) {
            return NULL;
        }
    }

    ngx_memzero(call, sizeof(ngx_oauth2_redis_call_t));

    call->redis = rd;
    call->log = rd->log;
    call->script = NGX_OAUTH2_SCRIPT_NONE;

    call->timer.handler = ngx_oauth2_redis_timeout;
    call->timer.data = call;
    call->timer.log = rd->log;

    return call;
}


/*
 * Sends a call on a connection that can take it: NGX_OK, and the handler
 * will be called; NGX_DECLINED when Redis is known to be unavailable (the
 * call is released, the handler is not called); NGX_ERROR.
 */

ngx_int_t
ngx_oauth2_redis_send(ngx_oauth2_redis_call_t *call)
{
    ngx_int_t           rc;
    ngx_oauth2_conn_t  *conn;

    conn = ngx_oauth2_redis_pick(call->redis);

    if (conn == NULL) {
        ngx_oauth2_redis_release(call);
        return NGX_DECLINED;
    }

    rc = ngx_oauth2_redis_push(call, conn);

    if (rc != NGX_OK) {
        ngx_oauth2_redis_release(call);
        return rc;
    }

    ngx_add_timer(&call->timer, call->redis->conf->timeout);

    return NGX_OK;
}


/* the set-up commands of a data connection: SCRIPT LOAD of each script */

ngx_int_t
ngx_oauth2_redis_setup_calls(ngx_oauth2_conn_t *conn)
{
    size_t                    lens[3];
    ngx_uint_t                i;
    const char               *argv[3];
    ngx_oauth2_redis_call_t  *call;

    argv[0] = "SCRIPT";
    lens[0] = 6;
    argv[1] = "LOAD";
    lens[1] = 4;

    for (i = 0; i < NGX_OAUTH2_NSCRIPTS; i++) {

        call = ngx_oauth2_redis_call_get(conn->redis);
        if (call == NULL) {
            return NGX_ERROR;
        }

        call->handler = ngx_oauth2_topology_setup_reply;
        call->data = conn;

        argv[2] = ngx_oauth2_scripts[i].text;
        lens[2] = ngx_oauth2_scripts[i].len;

        if (ngx_oauth2_conn_send(conn, call, 3, argv, lens) != NGX_OK) {
            ngx_oauth2_redis_release(call);
            return NGX_ERROR;
        }

        conn->setup++;
    }

    return NGX_OK;
}


/* EVALSHA <sha> <nkeys> <args...>, or EVAL <text> ... after NOSCRIPT */

static ngx_int_t
ngx_oauth2_redis_push(ngx_oauth2_redis_call_t *call, ngx_oauth2_conn_t *conn)
{
    u_char                nkeys[NGX_INT_T_LEN];
    size_t               *lens;
    ngx_uint_t            i, n;
    const char          **argv;
    ngx_oauth2_redis_t   *rd;
    ngx_oauth2_script_t  *script;

    /*
     * the worker's arrays, as long as the longest call so far (a lookup
     * carries every plan's limits): from the worker's pool, grown seldom
     */

    rd = call->redis;

    if (call->nargs + 3 > rd->nargv) {
        n = ngx_max(2 * rd->nargv, call->nargs + 3);

        argv = ngx_palloc(rd->pool, n * sizeof(const char *));
        lens = ngx_palloc(rd->pool, n * sizeof(size_t));

        if (argv == NULL || lens == NULL) {
            return NGX_ERROR;
        }

        rd->argv = argv;
        rd->lens = lens;
        rd->nargv = n;
    }

    argv = rd->argv;
    lens = rd->lens;
    n = 0;

    if (call->script != NGX_OAUTH2_SCRIPT_NONE) {
        script = &ngx_oauth2_scripts[call->script];

        if (call->evaled) {
            argv[0] = "EVAL";
            lens[0] = 4;
            argv[1] = script->text;
            lens[1] = script->len;

        } else {
            argv[0] = "EVALSHA";
            lens[0] = 7;
            argv[1] = (const char *) script->sha;
            lens[1] = NGX_OAUTH2_SHA1_HEX_LEN;
        }

        argv[2] = (const char *) nkeys;
        lens[2] = ngx_sprintf(nkeys, "%ui", call->nkeys) - nkeys;

        n = 3;
    }

    for (i = 0; i < call->nargs; i++) {
        argv[n] = (const char *) call->args[i].data;
        lens[n++] = call->args[i].len;
    }

    return ngx_oauth2_conn_send(conn, call, n, argv, lens);
}


/* the connection a call goes to, or NULL */

static ngx_oauth2_conn_t *
ngx_oauth2_redis_pick(ngx_oauth2_redis_t *rd)
{
    ngx_uint_t          i, n;
    ngx_oauth2_conn_t  *conn, *best;

    /*
     * round robin over the connections that are up; one still connecting
     * for the first time (or again at once after it was lost) takes calls
     * too, they leave once it is ready; one that failed takes none, so
     * that requests get their 503 at once instead of a wait
     */

    best = NULL;

    for (i = 0; i < rd->nconns; i++) {
        n = (rd->next + i) % rd->nconns;
        conn = &rd->conns[n];

        if (conn->state == NGX_OAUTH2_CONN_READY) {
            rd->next = n + 1;
            return conn;
        }

        /* its set-up is queued already: calls go after it */

        if (best == NULL && !conn->failed
            && (conn->state == NGX_OAUTH2_CONN_CONNECTING
                || conn->state == NGX_OAUTH2_CONN_SETUP))
        {
            best = conn;
        }
    }

    return best;
}


/*
 * The reply (or NULL) to a call: its handler, unless it was cancelled.
 * The reply belongs to the connection: the handler copies what it keeps.
 */

void
ngx_oauth2_redis_call_done(ngx_oauth2_redis_call_t *call, redisReply *reply)
{
    ngx_oauth2_conn_t           *conn;
    ngx_oauth2_redis_handler_pt  handler;

    call->conn = NULL;

    if (call->timer.timer_set) {
        ngx_del_timer(&call->timer);
    }

    handler = call->handler;

    if (handler && reply && reply->type == REDIS_REPLY_ERROR
        && reply->len >= 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0
        && call->script != NGX_OAUTH2_SCRIPT_NONE && !call->evaled)
    {
        /* the script cache was flushed: EVAL loads it again */

        ngx_log_error(NGX_LOG_NOTICE, call->redis->log, 0,
                      "oauth2: redis lost its scripts, loading them again");

        call->evaled = 1;
        conn = ngx_oauth2_redis_pick(call->redis);

        if (conn && ngx_oauth2_redis_push(call, conn) == NGX_OK) {
            ngx_add_timer(&call->timer, call->redis->conf->timeout);
            return;
        }
    }

    call->handler = NULL;

    if (handler) {
        handler(call, reply);
    }

    ngx_oauth2_redis_release(call);
}


/* the caller does not want the answer any more (its request is gone) */

void
ngx_oauth2_redis_cancel(ngx_oauth2_redis_call_t *call)
{
    call->handler = NULL;

    if (call->timer.timer_set) {
        ngx_del_timer(&call->timer);
    }

    if (call->conn == NULL) {
        /* not waiting on a connection */
        ngx_oauth2_redis_release(call);
    }

    /* else released when its reply comes, or its connection closes */
}


void
ngx_oauth2_redis_release(ngx_oauth2_redis_call_t *call)
{
    call->handler = NULL;
    call->data = NULL;
    call->args = NULL;

    ngx_queue_insert_head(&call->redis->free_calls, &call->queue);
}


/*
 * A call not answered in oauth2_redis_timeout: Redis is not answering.
 * The call gets NULL, and the connection is dropped and made again: every
 * other call on it gets NULL at once.  A connection still being made has
 * a timer of its own (connect_timeout=, then handshake_timeout=): the
 * call alone gives up then.
 */

static void
ngx_oauth2_redis_timeout(ngx_event_t *ev)
{
    u_char                       name[NGX_SOCKADDR_STRLEN + 16];
    ngx_oauth2_conn_t           *conn;
    ngx_oauth2_redis_call_t     *call;
    ngx_oauth2_redis_handler_pt  handler;

    call = ev->data;
    conn = call->conn;

    ngx_oauth2_metrics_redis_timeout();

    ngx_log_error(NGX_LOG_ERR, call->log, 0,
                  "oauth2: %s did not answer within %M ms "
                  "(oauth2_redis_timeout)",
                  conn ? (char *) ngx_oauth2_conn_name(conn, name,
                                                      sizeof(name))
                       : "redis",
                  call->redis->conf->timeout);

    if (conn && conn->state != NGX_OAUTH2_CONN_READY) {
        /*
         * its command stays queued, written once the connection is up;
         * the call is released when its reply comes or the connection
         * closes, as a cancelled one
         */

        handler = call->handler;
        call->handler = NULL;

        if (handler) {
            handler(call, NULL);
        }

        return;
    }

    if (conn) {
        ngx_log_error(NGX_LOG_ERR, call->redis->log, 0,
                      "oauth2: dropping the connection to %s: timed out",
                      name);

        /* answers this call, and every other one waiting, with NULL */
        ngx_oauth2_conn_close(conn, NULL, 1);
        return;
    }

    ngx_oauth2_redis_call_done(call, NULL);
}
