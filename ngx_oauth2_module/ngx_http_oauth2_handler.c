
/*
 * ngx_oauth2_module: the access phase.
 *
 * A request to a location with "oauth2 on" goes through these steps, in
 * this order, each a function below:
 *
 *   1. the token, from the Authorization header (400 or 401 without one);
 *   2. the record, and where it comes from (ctx->source):
 *        cache  oauth2_cache holds it (a JWT's claims are decoded again,
 *               the location's issuer and audience checked),
 *        jwt    a JWT access token, verified here,
 *        redis  an opaque token: the lookup script reads it;
 *   3. nginx's own checks of a complete record: expiry, scopes, consent
 *      (ngx_oauth2_record.c), then the plan that applies;
 *   4. Redis, when it is needed, and what for (ctx->need):
 *        validate  the record itself (an opaque token's lookup, a JWT's
 *                  revocation or consent): no answer is a 503,
 *        count     the rate limit of a record already checked: no answer
 *                  is oauth2_rate_limit_fallback's to decide; with
 *                  oauth2_rate_limit_lease, a permit the node holds
 *                  (ngx_oauth2_lease.c) counts it without a call, or
 *                  the call takes a batch of permits;
 *      the handler returns NGX_AGAIN, the answer comes to
 *      ngx_http_oauth2_redis_done() through the call's handler, and the
 *      phases run again;
 *   5. the decision: NGX_OK, or the refusal's status, returned to nginx's
 *      access checker, so that satisfy, auth_delay and error_page apply
 *      as with auth_basic (the JSON body comes from the filters in
 *      ngx_oauth2_error.c).
 *
 * After an internal redirect the request's ctx is found again: steps 3
 * and 5 run for the new location; the token is not looked up or counted
 * again.
 */


#include "ngx_http_oauth2_module.h"


static ngx_http_oauth2_ctx_t *ngx_http_oauth2_create_ctx(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth2_start(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_ctx_t *ctx);
static void ngx_http_oauth2_find_record(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx, ngx_str_t *token);
static ngx_int_t ngx_http_oauth2_ask_redis(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx);
static ngx_int_t ngx_http_oauth2_script_args(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx, ngx_oauth2_redis_call_t *call);
static ngx_int_t ngx_http_oauth2_gate_args(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx, ngx_str_t *a);
static void ngx_http_oauth2_redis_done(ngx_oauth2_redis_call_t *call,
    struct redisReply *reply);
static void ngx_http_oauth2_redis_result(ngx_http_request_t *r,
    ngx_http_oauth2_ctx_t *ctx, ngx_oauth2_outcome_e outcome);
static ngx_oauth2_outcome_e ngx_http_oauth2_fallback(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx);
static ngx_int_t ngx_http_oauth2_decide(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_ctx_t *ctx);
static void ngx_http_oauth2_cleanup(void *data);


ngx_int_t
ngx_http_oauth2_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_oauth2_ctx_t       *ctx;
    ngx_http_oauth2_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_module);

    if (!olcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_oauth2_get_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_http_oauth2_create_ctx(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        rc = ngx_http_oauth2_start(r, olcf, ctx);

        if (rc != NGX_OK) {
            /* NGX_AGAIN: Redis answers later; NGX_ERROR */
            return rc;
        }
    }

    if (ctx->call) {
        return NGX_AGAIN;
    }

    return ngx_http_oauth2_decide(r, olcf, ctx);
}


static ngx_http_oauth2_ctx_t *
ngx_http_oauth2_create_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_oauth2_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_oauth2_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_oauth2_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->outcome = NGX_OAUTH2_PENDING;

    ngx_http_set_ctx(r, ctx, ngx_http_oauth2_module);

    return ctx;
}


/* steps 1 to 4: NGX_OK (decide now), NGX_AGAIN (Redis), NGX_ERROR */

static ngx_int_t
ngx_http_oauth2_start(ngx_http_request_t *r, ngx_http_oauth2_loc_conf_t *olcf,
    ngx_http_oauth2_ctx_t *ctx)
{
    ngx_str_t                     token;
    ngx_http_oauth2_main_conf_t  *omcf;

    static u_char  hex[] = "0123456789abcdef";

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);

    /* 1. the token */

    ctx->outcome = ngx_oauth2_token_extract(r, olcf->max_token, &token);

    if (ctx->outcome != NGX_OAUTH2_OK) {
        return NGX_OK;
    }

    if (ngx_oauth2_token_hash(&token, ctx->digest) != NGX_OK) {
        ctx->outcome = NGX_OAUTH2_INTERNAL_ERROR;
        return NGX_OK;
    }

    /* the clock of every check of this request, the scripts' too */

    ctx->now = ngx_time();

    /* the token's name in log lines: 6 hex digits of its SHA-256 */

    ngx_memcpy(ctx->name, "token ", 6);
    ctx->name[6] = hex[ctx->digest[0] >> 4];
    ctx->name[7] = hex[ctx->digest[0] & 0xf];
    ctx->name[8] = hex[ctx->digest[1] >> 4];
    ctx->name[9] = hex[ctx->digest[1] & 0xf];
    ctx->name[10] = hex[ctx->digest[2] >> 4];
    ctx->name[11] = hex[ctx->digest[2] & 0xf];

    /* 2. the record */

    ngx_http_oauth2_find_record(r, olcf, omcf, ctx, &token);

    if (ctx->outcome != NGX_OAUTH2_OK) {
        return NGX_OK;
    }

    /* 3. nginx's checks, once the record is complete; then the plan */

    if (ctx->need != NGX_OAUTH2_NEED_VALIDATE) {
        ctx->outcome = ngx_oauth2_record_check(r, olcf, &ctx->record,
                                               ctx->now);
        ctx->checked = olcf;

        if (ctx->outcome != NGX_OAUTH2_OK) {
            return NGX_OK;
        }

        if (olcf->rate_limit && omcf->plans) {
            ctx->rl.plan = ngx_oauth2_ratelimit_plan(r, omcf,
                                                     &ctx->record.plan);
            if (ctx->rl.plan) {
                ctx->need = NGX_OAUTH2_NEED_COUNT;
            }
        }
    }

    /* a verified JWT whose consent plays no part is known for good */

    if (ctx->source == NGX_OAUTH2_FROM_JWT
        && ctx->need != NGX_OAUTH2_NEED_VALIDATE
        && omcf->cache && ctx->record.consent_id.len == 0)
    {
        ngx_oauth2_cache_put(omcf->cache, ctx->digest, &ctx->record,
                             r->connection->log);
    }

    /* oauth2_rate_limit_lease: a permit this node holds, if any */

    if (ctx->need == NGX_OAUTH2_NEED_COUNT && olcf->lease_max
        && omcf->leases)
    {
        switch (ngx_oauth2_lease_spend(r, olcf, omcf, ctx)) {

        case NGX_OK:
            ctx->need = NGX_OAUTH2_NEED_NONE;
            break;

        case NGX_ERROR:
            ctx->outcome = NGX_OAUTH2_INTERNAL_ERROR;
            return NGX_OK;

        default: /* NGX_DECLINED: the request takes permits itself */
            break;
        }
    }

    /* 4. Redis */

    if (ctx->need == NGX_OAUTH2_NEED_NONE) {
        return NGX_OK;
    }

    return ngx_http_oauth2_ask_redis(r, olcf, omcf, ctx);
}


/* step 2: ctx->source, ctx->record (unless Redis must read it), need */

static void
ngx_http_oauth2_find_record(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx, ngx_str_t *token)
{
    ngx_uint_t           jwt;
    ngx_oauth2_record_t  rec;

    jwt = (olcf->token_type == NGX_OAUTH2_TOKEN_JWT
           || (olcf->token_type == NGX_OAUTH2_TOKEN_AUTO
               && ngx_oauth2_jwt_is_compact(token)));

    /*
     * the cache serves a record of the same kind of token only, and no
     * JWT where its revocation must be asked on every request
     */

    if (omcf->cache && !(jwt && olcf->jwt_revocation)
        && ngx_oauth2_cache_get(omcf->cache, ctx->digest, r->pool, &rec)
           == NGX_OK
        && rec.jwt == jwt)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "oauth2: %s from the cache", ctx->name);

        ctx->source = NGX_OAUTH2_FROM_CACHE;
        ctx->record = rec;

        if (jwt) {
            /* its claims, and the location's issuer and audience */

            ngx_str_set(&ctx->record.name, "JWT");

            if (ngx_oauth2_jwt_claims(r, olcf, ctx, token) != NGX_OK) {
                ctx->outcome = NGX_OAUTH2_INVALID_TOKEN;
            }

        } else {
            ctx->record.name.data = ctx->name;
            ctx->record.name.len = sizeof(ctx->name) - 1;
        }

        return;
    }

    if (jwt) {
        ctx->source = NGX_OAUTH2_FROM_JWT;
        ctx->outcome = ngx_oauth2_jwt_verify(r, olcf, omcf, ctx, token);

        /* its revocation and its consent are known in Redis only */

        if (ctx->outcome == NGX_OAUTH2_OK
            && (olcf->jwt_revocation
                || (olcf->consent && ctx->record.consent_id.len)))
        {
            ctx->need = NGX_OAUTH2_NEED_VALIDATE;
        }

        return;
    }

    ctx->source = NGX_OAUTH2_FROM_REDIS;
    ctx->need = NGX_OAUTH2_NEED_VALIDATE;
    ctx->record.name.data = ctx->name;
    ctx->record.name.len = sizeof(ctx->name) - 1;
}


/* step 4: NGX_AGAIN while Redis answers, NGX_OK when it cannot */

static ngx_int_t
ngx_http_oauth2_ask_redis(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx)
{
    ngx_int_t                 rc;
    ngx_oauth2_redis_call_t  *call;

    call = ngx_oauth2_redis_call_create();

    if (call == NULL) {
        ngx_http_oauth2_redis_result(r, ctx, NGX_OAUTH2_STORE_UNAVAILABLE);
        return NGX_OK;
    }

    call->handler = ngx_http_oauth2_redis_done;
    call->data = ctx;
    call->log = r->connection->log;

    if (ngx_http_oauth2_script_args(r, olcf, omcf, ctx, call) != NGX_OK) {
        ngx_oauth2_redis_cancel(call);
        return NGX_ERROR;
    }

    rc = ngx_oauth2_redis_send(call);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        /* the cause was logged by the connection, when it happened */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: redis %V is unavailable", &omcf->redis.addr);

        ngx_http_oauth2_redis_result(r, ctx, NGX_OAUTH2_STORE_UNAVAILABLE);
        return NGX_OK;
    }

    ctx->call = call;
    r->main->count++;

    /*
     * a client that goes away while Redis answers ends its request at
     * once (499): the pool cleanup cancels the call
     */

    r->read_event_handler = ngx_http_test_reading;

    if (r->connection->read->ready) {
        ngx_post_event(r->connection->read, &ngx_posted_events);
    }

    return NGX_AGAIN;
}


/*
 * The script a request needs and its KEYS and ARGV (see the .lua files):
 * an opaque token's lookup, a JWT's revocation and consent, or the rate
 * limit alone of a record nginx has checked.
 */

static ngx_int_t
ngx_http_oauth2_script_args(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx, ngx_oauth2_redis_call_t *call)
{
    u_char      *p;
    ngx_str_t   *a;
    ngx_uint_t   n;

    static ngx_str_t  one = ngx_string("1");
    static ngx_str_t  zero = ngx_string("0");
    static ngx_str_t  empty = ngx_string("");

    n = omcf->plans_args ? omcf->plans_args->nelts : 0;

    if (ctx->need == NGX_OAUTH2_NEED_COUNT && ctx->lease_want) {
        return ngx_oauth2_lease_args(r, omcf, ctx, call);
    }

    if (ctx->need == NGX_OAUTH2_NEED_COUNT) {
        a = ngx_palloc(r->pool, (3 + ctx->rl.plan->nargs) * sizeof(ngx_str_t));
        if (a == NULL) {
            return NGX_ERROR;
        }

        a[0] = omcf->prefix;
        a[1] = ctx->record.client_id;
        a[2] = ctx->rl.plan->name;
        ngx_memcpy(&a[3], ctx->rl.plan->args,
                   ctx->rl.plan->nargs * sizeof(ngx_str_t));

        call->script = NGX_OAUTH2_SCRIPT_RATELIMIT;
        call->args = a;
        call->nargs = 3 + ctx->rl.plan->nargs;
        call->nkeys = 0;

        return NGX_OK;
    }

    if (ctx->source == NGX_OAUTH2_FROM_JWT) {
        a = ngx_palloc(r->pool, (14 + n) * sizeof(ngx_str_t));
        if (a == NULL) {
            return NGX_ERROR;
        }

        if (ngx_http_oauth2_gate_args(r, olcf, omcf, ctx, a) != NGX_OK) {
            return NGX_ERROR;
        }

        a[8] = ctx->record.client_id;
        a[9] = ctx->record.scope.len ? ctx->record.scope : empty;
        a[10] = ctx->record.plan.len ? ctx->record.plan : empty;
        a[11] = ctx->record.consent_id.len ? ctx->record.consent_id : empty;
        a[12] = ctx->jti.len ? ctx->jti : empty;
        a[13] = olcf->jwt_revocation ? one : zero;

        if (n) {
            ngx_memcpy(&a[14], omcf->plans_args->elts, n * sizeof(ngx_str_t));
        }

        call->script = NGX_OAUTH2_SCRIPT_JWT;
        call->args = a;
        call->nargs = 14 + n;
        call->nkeys = 0;

        return NGX_OK;
    }

    a = ngx_palloc(r->pool, (9 + n) * sizeof(ngx_str_t));
    if (a == NULL) {
        return NGX_ERROR;
    }

    /* KEYS[1]: <prefix>token:<sha256 hex> */

    a[0].len = omcf->prefix.len + sizeof("token:") - 1
               + 2 * NGX_OAUTH2_DIGEST_LEN;
    a[0].data = ngx_pnalloc(r->pool, a[0].len);
    if (a[0].data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(a[0].data, omcf->prefix.data, omcf->prefix.len);
    p = ngx_cpymem(p, "token:", sizeof("token:") - 1);
    ngx_hex_dump(p, ctx->digest, NGX_OAUTH2_DIGEST_LEN);

    if (ngx_http_oauth2_gate_args(r, olcf, omcf, ctx, &a[1]) != NGX_OK) {
        return NGX_ERROR;
    }

    if (n) {
        ngx_memcpy(&a[9], omcf->plans_args->elts, n * sizeof(ngx_str_t));
    }

    call->script = NGX_OAUTH2_SCRIPT_LOOKUP;
    call->args = a;
    call->nargs = 9 + n;
    call->nkeys = 1;

    return NGX_OK;
}


/* ARGV[1..8] of the lookup and JWT scripts: see lua/gate.lua */

static ngx_int_t
ngx_http_oauth2_gate_args(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx, ngx_str_t *a)
{
    u_char  *p;

    static ngx_str_t  one = ngx_string("1");
    static ngx_str_t  zero = ngx_string("0");
    static ngx_str_t  empty = ngx_string("");

    a[0] = omcf->prefix;
    a[1] = (olcf->rate_limit && omcf->plans) ? one : zero;
    a[2] = omcf->default_plan ? omcf->default_plan->name : empty;
    a[3] = olcf->consent ? one : zero;
    a[4] = olcf->scope_all_arg.len ? olcf->scope_all_arg : empty;
    a[5] = olcf->scope_any_arg.len ? olcf->scope_any_arg : empty;
    a[7] = omcf->want_ttl ? one : zero;

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    a[6].data = p;
    a[6].len = ngx_sprintf(p, "%T", ctx->now) - p;

    return NGX_OK;
}


/* the call's handler: Redis answered (or NULL: it did not); phases again */

static void
ngx_http_oauth2_redis_done(ngx_oauth2_redis_call_t *call,
    struct redisReply *reply)
{
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_oauth2_outcome_e    outcome;
    ngx_http_oauth2_ctx_t  *ctx;

    ctx = call->data;
    r = ctx->request;
    c = r->connection;

    ctx->call = NULL;
    r->read_event_handler = ngx_http_block_reading;

    outcome = reply ? ngx_oauth2_record_reply(ctx, call->script, reply)
                    : NGX_OAUTH2_STORE_UNAVAILABLE;

    ngx_http_oauth2_redis_result(r, ctx, outcome);

    ngx_http_core_run_phases(r);

    /* the reference taken when the call was sent */
    ngx_http_finalize_request(r, NGX_DONE);

    ngx_http_run_posted_requests(c);
}


/*
 * What Redis's answer (or its silence) means, in one place: a record that
 * needed Redis to be valid is refused with 503 without it; a record nginx
 * checked, which needed Redis only to be counted, gets the fallback.
 */

static void
ngx_http_oauth2_redis_result(ngx_http_request_t *r,
    ngx_http_oauth2_ctx_t *ctx, ngx_oauth2_outcome_e outcome)
{
    ngx_http_oauth2_loc_conf_t   *olcf;
    ngx_http_oauth2_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);

    if (ctx->lease_want) {
        /* the permits taken: one for the request, the others kept */
        ngx_oauth2_lease_taken(r, omcf, ctx, outcome);
    }

    if (outcome == NGX_OAUTH2_STORE_UNAVAILABLE
        && ctx->need == NGX_OAUTH2_NEED_COUNT)
    {
        olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_module);
        outcome = ngx_http_oauth2_fallback(r, olcf, omcf, ctx);

    } else if (outcome == NGX_OAUTH2_OK
               && ctx->need == NGX_OAUTH2_NEED_VALIDATE && omcf->cache)
    {
        ngx_oauth2_cache_put(omcf->cache, ctx->digest, &ctx->record,
                             r->connection->log);
    }

    ctx->outcome = outcome;
}


/* oauth2_rate_limit_fallback: Redis cannot count, the record is known */

static ngx_oauth2_outcome_e
ngx_http_oauth2_fallback(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx)
{
    ngx_uint_t  level;

    ngx_oauth2_metrics_fallback(olcf->rl_fallback);

    /* once a second per worker: an outage must not flood the log */

    level = NGX_LOG_DEBUG;

    if (ngx_oauth2_worker.fallback_logged != ngx_time()) {
        ngx_oauth2_worker.fallback_logged = ngx_time();
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


/* step 5 (and 3, for a location whose checks were not made yet) */

static ngx_int_t
ngx_http_oauth2_decide(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_ctx_t *ctx)
{
    if (ctx->outcome == NGX_OAUTH2_OK && ctx->checked != olcf) {
        ctx->outcome = ngx_oauth2_record_check(r, olcf, &ctx->record,
                                               ctx->now);
        ctx->checked = olcf;
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

    ngx_oauth2_metrics_decision(r, olcf, ctx);

    if (ctx->outcome == NGX_OAUTH2_OK) {
        if (olcf->rl_headers && !ctx->rl_headers
            && ngx_oauth2_ratelimit_headers(r, ctx) != NGX_OK)
        {
            return NGX_ERROR;
        }

        ctx->rl_headers = 1;

        return NGX_OK;
    }

    if (olcf->dry_run) {
        /* every check made (and counted), the request goes on */

        if (!ctx->dry_logged) {
            ctx->dry_logged = 1;
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: dry run: the request would have been "
                          "refused: %V", ngx_oauth2_outcome_name(ctx->outcome));
        }

        return NGX_DECLINED;
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

    return ngx_http_oauth2_refuse(r, olcf, ctx);
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
    ngx_http_oauth2_ctx_t       *mctx, *ctx;
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

    if (mctx == NULL || mctx->call || mctx->outcome != NGX_OAUTH2_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: subrequest \"%V\" into a protected location "
                      "refused: its request was not let through by oauth2 "
                      "(oauth2_subrequests)", &r->uri);
        outcome = NGX_OAUTH2_MISSING_TOKEN;

    } else {
        outcome = ngx_oauth2_record_check(r, olcf, &mctx->record,
                                          mctx->now);

        if (outcome == NGX_OAUTH2_OK) {
            /* the request's $oauth2_* variables, in the subrequest too */
            ngx_http_set_ctx(r, mctx, ngx_http_oauth2_module);
            return NGX_DECLINED;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: subrequest \"%V\" refused: %V", &r->uri,
                      ngx_oauth2_outcome_name(outcome));
    }

    if (olcf->dry_run) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: dry run: the subrequest \"%V\" would have "
                      "been refused: %V", &r->uri,
                      ngx_oauth2_outcome_name(outcome));
        return NGX_DECLINED;
    }

    /* a ctx of its own, for the refusal's headers and body */

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_oauth2_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->request = r;
    ctx->outcome = outcome;

    ngx_http_set_ctx(r, ctx, ngx_http_oauth2_module);

    return ngx_http_oauth2_refuse(r, olcf, ctx);
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

    /* the node's take goes on without the request, where it can */

    if (ctx->lease_refill) {
        ngx_oauth2_lease_abandon(
            ngx_http_get_module_main_conf(ctx->request,
                                          ngx_http_oauth2_module), ctx);
    }

    if (ctx->call) {
        ngx_oauth2_redis_cancel(ctx->call);
        ctx->call = NULL;
    }
}
