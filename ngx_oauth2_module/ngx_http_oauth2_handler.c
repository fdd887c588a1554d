
/*
 * ngx_oauth2_module: the access-phase handler.
 *
 * A request goes through it like this:
 *
 *   1. oauth2 off for the location: NGX_DECLINED, nothing else happens;
 *   2. the bearer token is taken from the Authorization header (400/401
 *      when it is absent or malformed);
 *   3. the token's SHA-256 is looked up in the shared-memory cache, if
 *      there is one, else in Redis: one EVALSHA returns the token record
 *      and the consent's status in one round trip; the handler returns
 *      NGX_AGAIN and is called again by ngx_http_oauth2_lookup_done()
 *      when the reply (or the timeout) comes;
 *   4. ngx_http_oauth2_decide(): expiry, scopes, consent, then NGX_OK or
 *      the JSON error.
 */


#include "ngx_http_oauth2_module.h"


static ngx_int_t ngx_http_oauth2_decide(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_ctx_t *ctx);
static ngx_oauth2_outcome_e ngx_http_oauth2_check(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_oauth2_record_t *rec);
static void ngx_http_oauth2_timeout_handler(ngx_event_t *ev);
static void ngx_http_oauth2_cleanup(void *data);


ngx_int_t
ngx_http_oauth2_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     token;
    ngx_pool_cleanup_t           *cln;
    ngx_http_oauth2_ctx_t        *ctx;
    ngx_http_oauth2_loc_conf_t   *olcf;
    ngx_http_oauth2_main_conf_t  *omcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_module);

    if (!olcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_oauth2_module);

    if (ctx) {
        if (!ctx->done) {
            return NGX_AGAIN;
        }

        return ngx_http_oauth2_decide(r, olcf, ctx);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_oauth2_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->request = r;
    ngx_http_set_ctx(r, ctx, ngx_http_oauth2_module);

    ctx->outcome = ngx_oauth2_token_extract(r, olcf->max_token, &token);

    if (ctx->outcome != NGX_OAUTH2_OK) {
        ctx->done = 1;
        return ngx_http_oauth2_decide(r, olcf, ctx);
    }

    ngx_oauth2_token_hash(&token, ctx->hash);

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);

    if (omcf->cache
        && ngx_oauth2_cache_get(omcf->cache, ctx->hash, r->pool,
                                &ctx->record)
           == NGX_OK)
    {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "oauth2: token %*s from cache", (size_t) 6,
                       ctx->hash);
        ctx->done = 1;
        return ngx_http_oauth2_decide(r, olcf, ctx);
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_oauth2_cleanup;
    cln->data = ctx;

    rc = ngx_oauth2_redis_lookup(omcf, ctx);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth2: redis %V is unavailable, answering 503",
                      &omcf->redis_addr);
        ctx->outcome = NGX_OAUTH2_STORE_UNAVAILABLE;
        ctx->done = 1;
        return ngx_http_oauth2_decide(r, olcf, ctx);
    }

    /* NGX_AGAIN: the reply comes to ngx_http_oauth2_lookup_done() */

    ctx->timeout.handler = ngx_http_oauth2_timeout_handler;
    ctx->timeout.data = ctx;
    ctx->timeout.log = r->connection->log;

    ngx_add_timer(&ctx->timeout, omcf->redis_timeout);

    r->main->count++;

    return NGX_AGAIN;
}


/*
 * Called by the Redis code with the reply's outcome (ctx->record filled on
 * NGX_OAUTH2_OK), or by the timeout: resumes the phases.
 */

void
ngx_http_oauth2_lookup_done(ngx_http_oauth2_ctx_t *ctx,
    ngx_oauth2_outcome_e outcome)
{
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_oauth2_main_conf_t  *omcf;

    r = ctx->request;
    c = r->connection;

    ctx->outcome = outcome;
    ctx->done = 1;
    ctx->waiter = NULL;

    if (ctx->timeout.timer_set) {
        ngx_del_timer(&ctx->timeout);
    }

    if (outcome == NGX_OAUTH2_OK) {
        omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);

        if (omcf->cache) {
            ngx_oauth2_cache_put(omcf->cache, ctx->hash, &ctx->record,
                                 c->log);
        }
    }

    ngx_http_core_run_phases(r);

    /* the reference taken in the access handler */
    ngx_http_finalize_request(r, NGX_DONE);

    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_oauth2_decide(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (ctx->outcome == NGX_OAUTH2_OK) {
        ctx->outcome = ngx_http_oauth2_check(r, olcf, &ctx->record);
    }

    if (ctx->outcome == NGX_OAUTH2_OK) {
        return NGX_OK;
    }

    if (ctx->outcome == NGX_OAUTH2_INTERNAL_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "oauth2: access denied: %V",
                  ngx_oauth2_outcome_name(ctx->outcome));

    rc = ngx_oauth2_send_error(r, olcf, ctx);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/* expiry, scopes and consent of a token the store knows */

static ngx_oauth2_outcome_e
ngx_http_oauth2_check(ngx_http_request_t *r, ngx_http_oauth2_loc_conf_t *olcf,
    ngx_oauth2_record_t *rec)
{
    ngx_str_t   *s;
    ngx_uint_t   i;

    if (rec->expires && rec->expires <= ngx_time()) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: token of client \"%V\" has expired",
                      &rec->client_id);
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    if (olcf->scope_all) {
        s = olcf->scope_all->elts;

        for (i = 0; i < olcf->scope_all->nelts; i++) {
            if (!ngx_oauth2_scope_has(&rec->scope, &s[i])) {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "oauth2: client \"%V\" lacks scope \"%V\"",
                              &rec->client_id, &s[i]);
                return NGX_OAUTH2_INSUFFICIENT_SCOPE;
            }
        }
    }

    if (olcf->scope_any) {
        s = olcf->scope_any->elts;

        for (i = 0; i < olcf->scope_any->nelts; i++) {
            if (ngx_oauth2_scope_has(&rec->scope, &s[i])) {
                break;
            }
        }

        if (i == olcf->scope_any->nelts) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: client \"%V\" has none of the scopes "
                          "of \"oauth2_scope_any\"", &rec->client_id);
            return NGX_OAUTH2_INSUFFICIENT_SCOPE;
        }
    }

    if (olcf->consent && !rec->consent_valid) {
        if (rec->consent_id.len == 0) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: token of client \"%V\" has no consent",
                          &rec->client_id);

        } else {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: consent \"%V\" of client \"%V\" is not "
                          "valid (status \"%V\")", &rec->consent_id,
                          &rec->client_id, &rec->consent_status);
        }

        return NGX_OAUTH2_CONSENT_INVALID;
    }

    return NGX_OAUTH2_OK;
}


static void
ngx_http_oauth2_timeout_handler(ngx_event_t *ev)
{
    ngx_http_request_t           *r;
    ngx_http_oauth2_ctx_t        *ctx;
    ngx_http_oauth2_main_conf_t  *omcf;

    ctx = ev->data;
    r = ctx->request;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "oauth2: redis %V did not answer within %M ms "
                  "(oauth2_redis_timeout), answering 503",
                  &omcf->redis_addr, omcf->redis_timeout);

    ngx_oauth2_redis_detach(ctx);
    ngx_oauth2_redis_abort(omcf, "timed out");

    ngx_http_oauth2_lookup_done(ctx, NGX_OAUTH2_STORE_UNAVAILABLE);
}


/* the request is going away: a late reply must not find it */

static void
ngx_http_oauth2_cleanup(void *data)
{
    ngx_http_oauth2_ctx_t  *ctx = data;

    ngx_oauth2_redis_detach(ctx);

    if (ctx->timeout.timer_set) {
        ngx_del_timer(&ctx->timeout);
    }
}
