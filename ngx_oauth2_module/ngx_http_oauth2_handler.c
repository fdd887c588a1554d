
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
static ngx_int_t ngx_http_oauth2_script_args(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx);
static ngx_int_t ngx_http_oauth2_limit_args(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx, ngx_str_t *a);
static ngx_uint_t ngx_http_oauth2_jwt_needs_redis(
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx);
static ngx_oauth2_outcome_e ngx_http_oauth2_fallback(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx);
static void ngx_http_oauth2_timeout_handler(ngx_event_t *ev);
static void ngx_http_oauth2_cleanup(void *data);


ngx_int_t
ngx_http_oauth2_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_uint_t                    jwt;
    ngx_str_t                     token;
    ngx_http_oauth2_ctx_t        *ctx;
    ngx_http_oauth2_loc_conf_t   *olcf;
    ngx_http_oauth2_main_conf_t  *omcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_module);

    if (!olcf->enable) {
        return NGX_DECLINED;
    }

    /*
     * after an internal redirect (index, try_files, error_page) the token
     * was looked up and counted already: the new location's checks are
     * made on the same record, the rate limit is not counted twice
     */

    ctx = ngx_http_oauth2_get_ctx(r);

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

    ctx->cleanup = ngx_pool_cleanup_add(r->pool, 0);
    if (ctx->cleanup == NULL) {
        return NGX_ERROR;
    }

    ctx->cleanup->handler = ngx_http_oauth2_cleanup;
    ctx->cleanup->data = ctx;

    ctx->request = r;
    ngx_http_set_ctx(r, ctx, ngx_http_oauth2_module);

    ctx->outcome = ngx_oauth2_token_extract(r, olcf->max_token, &token);

    if (ctx->outcome != NGX_OAUTH2_OK) {
        ctx->done = 1;
        return ngx_http_oauth2_decide(r, olcf, ctx);
    }

    ngx_oauth2_token_hash(&token, ctx->hash);

    /* the clock every check of this request uses, the scripts' too */
    ctx->now = ngx_time();

    ngx_memcpy(ngx_cpymem(ctx->name, "token ", 6), ctx->hash, 6);
    ctx->record.name.data = ctx->name;
    ctx->record.name.len = sizeof("token 1a2b3c") - 1;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);

    jwt = (olcf->token_type == NGX_OAUTH2_TOKEN_JWT
           || (olcf->token_type == NGX_OAUTH2_TOKEN_AUTO
               && ngx_oauth2_jwt_is_compact(&token)));

    /*
     * the cache serves a record of the same kind of token only, and not a
     * JWT where its revocation must be checked on every request; a cached
     * JWT was verified: its claims are decoded again, and the location's
     * issuer and audience checked
     */

    if (omcf->cache
        && !(jwt && olcf->jwt_revocation)
        && ngx_oauth2_cache_get(omcf->cache, ctx->hash, r->pool,
                                &ctx->record)
           == NGX_OK
        && ctx->record.jwt == jwt
        && (!jwt || ngx_oauth2_jwt_claims(r, olcf, ctx, &token) == NGX_OK))
    {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "oauth2: token %*s from cache", (size_t) 6,
                       ctx->hash);

        if (ctx->record.jwt) {
            ngx_str_set(&ctx->record.name, "JWT");
        }

        ctx->rl_only = 1;
        ctx->outcome = ngx_oauth2_record_check(r, olcf, &ctx->record,
                                               ctx->now);

        if (ctx->outcome == NGX_OAUTH2_OK && olcf->rate_limit && omcf->plans) {
            ctx->rl.plan = ngx_oauth2_ratelimit_plan(r, omcf,
                                                     &ctx->record.plan);
        }

        if (ctx->rl.plan == NULL) {
            ctx->done = 1;
            return ngx_http_oauth2_decide(r, olcf, ctx);
        }

        /* the token is known, the rate limit still goes to Redis */

        ctx->script = NGX_OAUTH2_SCRIPT_RATELIMIT;

    } else if (jwt) {
        ngx_memzero(&ctx->record, sizeof(ngx_oauth2_record_t));
        ctx->claims = NULL;
        ctx->outcome = ngx_oauth2_jwt_verify(r, olcf, omcf, ctx, &token);

        if (ctx->outcome != NGX_OAUTH2_OK
            || !ngx_http_oauth2_jwt_needs_redis(olcf, omcf, ctx))
        {
            /* its consent is not known without Redis: not cached then */

            if (ctx->outcome == NGX_OAUTH2_OK && omcf->cache
                && ctx->record.consent_id.len == 0)
            {
                ngx_oauth2_cache_put(omcf->cache, ctx->hash, &ctx->record,
                                     r->connection->log);
            }

            ctx->done = 1;
            return ngx_http_oauth2_decide(r, olcf, ctx);
        }

        ctx->script = NGX_OAUTH2_SCRIPT_JWT;

    } else {
        ngx_memzero(&ctx->record, sizeof(ngx_oauth2_record_t));
        ctx->record.name.data = ctx->name;
        ctx->record.name.len = sizeof("token 1a2b3c") - 1;
        ctx->script = NGX_OAUTH2_SCRIPT_LOOKUP;
    }

    if (ngx_http_oauth2_script_args(r, olcf, omcf, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_oauth2_redis_call(omcf, ctx);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        /* the cause was logged by the connection, when it happened */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: redis %V is unavailable", &omcf->redis_addr);

        ctx->outcome = ctx->rl_only
                       ? ngx_http_oauth2_fallback(r, olcf, omcf, ctx)
                       : NGX_OAUTH2_STORE_UNAVAILABLE;
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
 * KEYS and ARGV of the script call: see the scripts in ngx_oauth2_redis.c
 */

static ngx_int_t
ngx_http_oauth2_script_args(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t  *a;

    static ngx_str_t  one = ngx_string("1");
    static ngx_str_t  zero = ngx_string("0");
    static ngx_str_t  empty = ngx_string("");

    if (ctx->script == NGX_OAUTH2_SCRIPT_RATELIMIT) {
        a = ngx_palloc(r->pool, 4 * sizeof(ngx_str_t));
        if (a == NULL) {
            return NGX_ERROR;
        }

        a[0] = omcf->prefix;
        a[1] = ctx->record.client_id;
        a[2] = ctx->rl.plan->name;
        a[3] = ctx->rl.plan->spec;

        ctx->args = a;
        ctx->nargs = 4;
        ctx->nkeys = 0;

        return NGX_OK;
    }

    if (ctx->script == NGX_OAUTH2_SCRIPT_JWT) {
        a = ngx_palloc(r->pool, 14 * sizeof(ngx_str_t));
        if (a == NULL) {
            return NGX_ERROR;
        }

        if (ngx_http_oauth2_limit_args(r, olcf, omcf, ctx, a) != NGX_OK) {
            return NGX_ERROR;
        }

        a[8] = ctx->record.client_id;
        a[9] = ctx->record.scope.len ? ctx->record.scope : empty;
        a[10] = ctx->record.plan.len ? ctx->record.plan : empty;
        a[11] = ctx->record.consent_id.len ? ctx->record.consent_id : empty;
        a[12] = ctx->jti.len ? ctx->jti : empty;
        a[13] = olcf->jwt_revocation ? one : zero;

        ctx->args = a;
        ctx->nargs = 14;
        ctx->nkeys = 0;

        return NGX_OK;
    }

    a = ngx_palloc(r->pool, 9 * sizeof(ngx_str_t));
    if (a == NULL) {
        return NGX_ERROR;
    }

    a[0].len = omcf->prefix.len + sizeof("token:") - 1
               + NGX_OAUTH2_TOKEN_HASH_LEN;
    a[0].data = ngx_pnalloc(r->pool, a[0].len);
    if (a[0].data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(a[0].data, omcf->prefix.data, omcf->prefix.len);
    p = ngx_cpymem(p, "token:", sizeof("token:") - 1);
    ngx_memcpy(p, ctx->hash, NGX_OAUTH2_TOKEN_HASH_LEN);

    if (ngx_http_oauth2_limit_args(r, olcf, omcf, ctx, &a[1]) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->args = a;
    ctx->nargs = 9;
    ctx->nkeys = 1;

    return NGX_OK;
}


/* ARGV[1..8] of the lookup and JWT scripts: see lua/gate.lua */

static ngx_int_t
ngx_http_oauth2_limit_args(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx, ngx_str_t *a)
{
    u_char  *p;

    static ngx_str_t  one = ngx_string("1");
    static ngx_str_t  zero = ngx_string("0");
    static ngx_str_t  empty = ngx_string("");

    a[0] = omcf->prefix;
    a[1] = (olcf->rate_limit && omcf->plans) ? one : zero;
    a[2] = omcf->plans_spec.len ? omcf->plans_spec : empty;
    a[3] = omcf->default_plan ? omcf->default_plan->name : empty;
    a[4] = olcf->consent ? one : zero;
    a[5] = olcf->scope_all_arg.len ? olcf->scope_all_arg : empty;
    a[6] = olcf->scope_any_arg.len ? olcf->scope_any_arg : empty;

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    a[7].data = p;
    a[7].len = ngx_sprintf(p, "%T", ctx->now) - p;

    return NGX_OK;
}


/* a verified JWT goes to Redis for its consent, revocation, rate limit */

static ngx_uint_t
ngx_http_oauth2_jwt_needs_redis(ngx_http_oauth2_loc_conf_t *olcf,
    ngx_http_oauth2_main_conf_t *omcf, ngx_http_oauth2_ctx_t *ctx)
{
    return (olcf->consent && ctx->record.consent_id.len)
           || olcf->jwt_revocation
           || (olcf->rate_limit && omcf->plans);
}


/* oauth2_rate_limit_fallback: Redis cannot count, the token is known */

static ngx_oauth2_outcome_e
ngx_http_oauth2_fallback(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx)
{
    ngx_uint_t  level;

    /* once a second per worker: an outage must not flood the log */

    level = NGX_LOG_DEBUG;

    if (omcf->fallback_logged != ngx_time()) {
        omcf->fallback_logged = ngx_time();
        level = NGX_LOG_WARN;
    }

    switch (olcf->rl_fallback) {

    case NGX_OAUTH2_RL_FALLBACK_DENY:
        ngx_log_error(level, r->connection->log, 0,
                      "oauth2: rate limit unavailable, "
                      "oauth2_rate_limit_fallback deny: 503");
        return NGX_OAUTH2_STORE_UNAVAILABLE;

    case NGX_OAUTH2_RL_FALLBACK_ALLOW:
        ngx_log_error(level, r->connection->log, 0,
                      "oauth2: rate limit unavailable, "
                      "oauth2_rate_limit_fallback allow: not limited");
        ctx->rl.state = NGX_OAUTH2_RL_NONE;
        return NGX_OAUTH2_OK;

    default: /* NGX_OAUTH2_RL_FALLBACK_LOCAL */
        ngx_log_error(level, r->connection->log, 0,
                      "oauth2: rate limit unavailable, "
                      "oauth2_rate_limit_fallback local: this node counts "
                      "alone");

        switch (ngx_oauth2_ratelimit_local(r, omcf, ctx)) {

        case NGX_OK:
            return NGX_OAUTH2_OK;

        case NGX_ERROR:
            return NGX_OAUTH2_INTERNAL_ERROR;

        default:
            ngx_log_error(level, r->connection->log, 0,
                          "oauth2: no room to count the rate limit locally, "
                          "not limited");
            ctx->rl.state = NGX_OAUTH2_RL_NONE;
            return NGX_OAUTH2_OK;
        }
    }
}


/*
 * Called by the Redis code with the reply's outcome (ctx->record, ctx->rl
 * filled on NGX_OAUTH2_OK), or by the timeout: resumes the phases.
 */

void
ngx_http_oauth2_lookup_done(ngx_http_oauth2_ctx_t *ctx,
    ngx_oauth2_outcome_e outcome)
{
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_oauth2_loc_conf_t   *olcf;
    ngx_http_oauth2_main_conf_t  *omcf;

    r = ctx->request;
    c = r->connection;

    ctx->done = 1;
    ctx->waiter = NULL;

    if (ctx->timeout.timer_set) {
        ngx_del_timer(&ctx->timeout);
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);

    if (ctx->rl_only) {
        /* the record came from the cache and passed its checks */

        if (outcome == NGX_OAUTH2_STORE_UNAVAILABLE) {
            olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_module);
            outcome = ngx_http_oauth2_fallback(r, olcf, omcf, ctx);
        }

    } else if (outcome == NGX_OAUTH2_OK && omcf->cache) {
        ngx_oauth2_cache_put(omcf->cache, ctx->hash, &ctx->record, c->log);
    }

    ctx->outcome = outcome;

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
        ctx->outcome = ngx_oauth2_record_check(r, olcf, &ctx->record,
                                               ctx->now);
    }

    if (ctx->outcome == NGX_OAUTH2_OK
        && ctx->rl.state == NGX_OAUTH2_RL_LIMITED)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: client \"%V\" is over plan \"%V\", "
                      "retry in %Ms", &ctx->record.client_id,
                      &ctx->rl.plan->name, ctx->rl.retry);
        ctx->outcome = NGX_OAUTH2_RATE_LIMITED;
    }

    if (ctx->outcome == NGX_OAUTH2_OK) {
        if (olcf->rl_headers && !ctx->rl_headers
            && ngx_oauth2_ratelimit_headers(r, ctx) != NGX_OK)
        {
            return NGX_ERROR;
        }

        ctx->rl_headers = 1;

        return NGX_OK;
    }

    if (ctx->outcome == NGX_OAUTH2_INTERNAL_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->outcome == NGX_OAUTH2_STORE_UNAVAILABLE) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: answering 503, the token store is "
                      "unavailable");

    } else {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: access denied: %V",
                      ngx_oauth2_outcome_name(ctx->outcome));
    }

    rc = ngx_oauth2_send_error(r, olcf, ctx);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
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
                  "(oauth2_redis_timeout)",
                  &omcf->redis_addr, omcf->redis_timeout);

    ngx_oauth2_redis_detach(ctx);
    ngx_oauth2_redis_abort(omcf, "timed out");

    ngx_http_oauth2_lookup_done(ctx, NGX_OAUTH2_STORE_UNAVAILABLE);
}


/*
 * oauth2_subrequests on: a subrequest (SSI include, auth_request, ...)
 * into a protected location passes only when the request it belongs to
 * was let through by the module, and the location's own checks (scopes,
 * consent, expiry) pass on that request's token.  Nothing is looked up
 * or counted again.  Runs in the preaccess phase: nginx skips the access
 * phase of subrequests.
 */

ngx_int_t
ngx_http_oauth2_subrequest_handler(ngx_http_request_t *r)
{
    ngx_http_oauth2_ctx_t       *mctx;
    ngx_oauth2_outcome_e         outcome;
    ngx_http_oauth2_loc_conf_t  *olcf;

    if (r == r->main) {
        return NGX_DECLINED;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_module);

    if (!olcf->enable || !olcf->subrequests) {
        return NGX_DECLINED;
    }

    mctx = ngx_http_oauth2_get_ctx(r->main);

    if (mctx == NULL || !mctx->done || mctx->outcome != NGX_OAUTH2_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: subrequest \"%V\" into a protected location "
                      "refused: its request was not let through by oauth2 "
                      "(oauth2_subrequests)", &r->uri);
        return NGX_HTTP_UNAUTHORIZED;
    }

    outcome = ngx_oauth2_record_check(r, olcf, &mctx->record, mctx->now);

    if (outcome != NGX_OAUTH2_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: subrequest \"%V\" refused: %V", &r->uri,
                      ngx_oauth2_outcome_name(outcome));

        return outcome == NGX_OAUTH2_INVALID_TOKEN ? NGX_HTTP_UNAUTHORIZED
                                                   : NGX_HTTP_FORBIDDEN;
    }

    /* the request's $oauth2_* variables, in the subrequest too */

    ngx_http_set_ctx(r, mctx, ngx_http_oauth2_module);

    return NGX_DECLINED;
}


/* the module's ctx, also after an internal redirect cleared r->ctx */

ngx_http_oauth2_ctx_t *
ngx_http_oauth2_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_oauth2_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_oauth2_module);

    if (ctx) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_oauth2_cleanup) {
            ctx = cln->data;

            if (ctx->request == r) {
                ngx_http_set_ctx(r, ctx, ngx_http_oauth2_module);
                return ctx;
            }
        }
    }

    return NULL;
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
