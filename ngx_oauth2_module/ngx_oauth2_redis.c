
/*
 * ngx_oauth2_module: the worker's Redis connection.
 *
 * hiredis's async API on nginx's event loop: the hiredis socket is wrapped
 * in an ngx_connection_t whose read and write events call
 * redisAsyncHandleRead() and redisAsyncHandleWrite(); hiredis asks for the
 * events through its ev hooks.  One connection per worker, connected at
 * worker start and again, in the background with a backoff, after any
 * failure.  Nothing here blocks: connect is non-blocking, every request's
 * call has a timer of its own (ngx_http_oauth2_handler.c).
 *
 * A request waits through a waiter: hiredis's privdata.  A request that
 * goes away (or times out) clears waiter->ctx, so that the late reply
 * only puts the waiter back on the free list.
 */


#include "ngx_http_oauth2_module.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>


#define NGX_OAUTH2_REDIS_DOWN        0
#define NGX_OAUTH2_REDIS_CONNECTING  1
#define NGX_OAUTH2_REDIS_READY       2

#define NGX_OAUTH2_BACKOFF_MIN       50
#define NGX_OAUTH2_BACKOFF_MAX       1000

#define NGX_OAUTH2_SHA1_HEX_LEN      40

typedef struct {
    char                          *text;
    size_t                         len;
    u_char                        *sha;          /* hex SHA-1 of text */
} ngx_oauth2_script_t;


struct ngx_oauth2_redis_s {
    ngx_http_oauth2_main_conf_t   *omcf;
    redisAsyncContext             *ac;
    ngx_connection_t              *conn;
    ngx_event_t                    reconnect;
    ngx_event_t                    connect_timer;
    ngx_msec_t                     backoff;
    ngx_uint_t                     state;
    ngx_queue_t                    free_waiters;
    ngx_pool_t                    *pool;
    ngx_log_t                     *log;
    unsigned                       known_down:1;
    unsigned                       exiting:1;
};


struct ngx_oauth2_waiter_s {
    ngx_http_oauth2_ctx_t         *ctx;
    ngx_oauth2_redis_t            *redis;
    ngx_queue_t                    queue;
};


#include "ngx_oauth2_scripts.h"

#define NGX_OAUTH2_NSCRIPTS                                                   \
    (sizeof(ngx_oauth2_scripts) / sizeof(ngx_oauth2_scripts[0]))

static char    ngx_oauth2_script_load[] = "SCRIPT LOAD";


static void ngx_oauth2_redis_connect(ngx_oauth2_redis_t *rd);
static void ngx_oauth2_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_oauth2_redis_connect_timeout(ngx_event_t *ev);
static void ngx_oauth2_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_oauth2_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_oauth2_redis_setup_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static ngx_int_t ngx_oauth2_redis_send(ngx_oauth2_redis_t *rd,
    ngx_oauth2_waiter_t *w, ngx_uint_t eval);
static void ngx_oauth2_redis_lookup_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_oauth2_redis_read_handler(ngx_event_t *ev);
static void ngx_oauth2_redis_write_handler(ngx_event_t *ev);
static void ngx_oauth2_redis_add_read(void *privdata);
static void ngx_oauth2_redis_del_read(void *privdata);
static void ngx_oauth2_redis_add_write(void *privdata);
static void ngx_oauth2_redis_del_write(void *privdata);
static void ngx_oauth2_redis_cleanup(void *privdata);


ngx_int_t
ngx_oauth2_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_oauth2_main_conf_t *omcf)
{
    ngx_oauth2_redis_t  *rd;

    rd = ngx_pcalloc(cycle->pool, sizeof(ngx_oauth2_redis_t));
    if (rd == NULL) {
        return NGX_ERROR;
    }

    rd->omcf = omcf;
    rd->pool = cycle->pool;
    rd->log = cycle->log;
    rd->state = NGX_OAUTH2_REDIS_DOWN;

    ngx_queue_init(&rd->free_waiters);

    rd->reconnect.handler = ngx_oauth2_redis_reconnect_handler;
    rd->reconnect.data = rd;
    rd->reconnect.log = cycle->log;
    rd->reconnect.cancelable = 1;

    rd->connect_timer.handler = ngx_oauth2_redis_connect_timeout;
    rd->connect_timer.data = rd;
    rd->connect_timer.log = cycle->log;
    rd->connect_timer.cancelable = 1;

    omcf->redis = rd;

    ngx_oauth2_redis_connect(rd);

    return NGX_OK;
}


void
ngx_oauth2_redis_exit_worker(ngx_http_oauth2_main_conf_t *omcf)
{
    ngx_oauth2_redis_t  *rd;

    rd = omcf->redis;
    rd->exiting = 1;

    if (rd->reconnect.timer_set) {
        ngx_del_timer(&rd->reconnect);
    }

    if (rd->connect_timer.timer_set) {
        ngx_del_timer(&rd->connect_timer);
    }

    if (rd->ac) {
        rd->state = NGX_OAUTH2_REDIS_DOWN;
        redisAsyncFree(rd->ac);
    }
}


static void
ngx_oauth2_redis_connect(ngx_oauth2_redis_t *rd)
{
    int                           n;
    const char                   *argv[3];
    size_t                        lens[3];
    ngx_connection_t             *c;
    redisAsyncContext            *ac;
    ngx_http_oauth2_main_conf_t  *omcf;

    omcf = rd->omcf;

    if (omcf->redis_port) {
        ac = redisAsyncConnect((char *) omcf->redis_host.data,
                               (int) omcf->redis_port);

    } else {
        ac = redisAsyncConnectUnix((char *) omcf->redis_host.data);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "oauth2: cannot connect to redis %V: out of memory",
                      &omcf->redis_addr);
        rd->known_down = 1;
        ngx_oauth2_redis_cleanup(rd);
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "oauth2: cannot connect to redis %V: %s",
                      &omcf->redis_addr, ac->errstr);
        rd->known_down = 1;
        redisAsyncFree(ac);
        ngx_oauth2_redis_cleanup(rd);
        return;
    }

    c = ngx_get_connection(ac->c.fd, rd->log);
    if (c == NULL) {
        rd->known_down = 1;
        redisAsyncFree(ac);
        ngx_oauth2_redis_cleanup(rd);
        return;
    }

    c->data = rd;
    c->read->handler = ngx_oauth2_redis_read_handler;
    c->write->handler = ngx_oauth2_redis_write_handler;
    c->read->log = rd->log;
    c->write->log = rd->log;

    rd->ac = ac;
    rd->conn = c;
    rd->state = NGX_OAUTH2_REDIS_CONNECTING;

    ac->data = rd;
    ac->ev.data = rd;
    ac->ev.addRead = ngx_oauth2_redis_add_read;
    ac->ev.delRead = ngx_oauth2_redis_del_read;
    ac->ev.addWrite = ngx_oauth2_redis_add_write;
    ac->ev.delWrite = ngx_oauth2_redis_del_write;
    ac->ev.cleanup = ngx_oauth2_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_oauth2_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_oauth2_redis_on_disconnect);

    /*
     * AUTH, SELECT and SCRIPT LOAD are queued at once: hiredis sends them
     * when the connection is up, before anything a request sends
     */

    if (omcf->redis_password.len) {
        n = 0;
        argv[n] = "AUTH";
        lens[n++] = 4;

        if (omcf->redis_user.len) {
            argv[n] = (char *) omcf->redis_user.data;
            lens[n++] = omcf->redis_user.len;
        }

        argv[n] = (char *) omcf->redis_password.data;
        lens[n++] = omcf->redis_password.len;

        redisAsyncCommandArgv(ac, ngx_oauth2_redis_setup_reply,
                              "oauth2_redis_password", n, argv, lens);
    }

    if (omcf->redis_db) {
        redisAsyncCommand(ac, ngx_oauth2_redis_setup_reply,
                          "oauth2_redis_db", "SELECT %d",
                          (int) omcf->redis_db);
    }

    argv[0] = "SCRIPT";
    lens[0] = 6;
    argv[1] = "LOAD";
    lens[1] = 4;

    /* the reply to the last one says Redis is ready */

    for (n = 0; n < (int) NGX_OAUTH2_NSCRIPTS; n++) {
        argv[2] = ngx_oauth2_scripts[n].text;
        lens[2] = ngx_oauth2_scripts[n].len;

        redisAsyncCommandArgv(ac, ngx_oauth2_redis_setup_reply,
                              n == (int) NGX_OAUTH2_NSCRIPTS - 1
                              ? ngx_oauth2_script_load : "SCRIPT LOAD",
                              3, argv, lens);
    }

    ngx_add_timer(&rd->connect_timer, omcf->redis_timeout);
}


static void
ngx_oauth2_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_oauth2_redis_t  *rd = ev->data;

    if (rd->exiting || rd->ac) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "oauth2: reconnecting to redis");

    ngx_oauth2_redis_connect(rd);
}


static void
ngx_oauth2_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_oauth2_redis_t  *rd = ev->data;

    if (rd->state != NGX_OAUTH2_REDIS_CONNECTING) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "oauth2: connecting to redis %V timed out",
                  &rd->omcf->redis_addr);

    rd->known_down = 1;
    rd->state = NGX_OAUTH2_REDIS_DOWN;
    redisAsyncFree(rd->ac);
}


/*
 * Drops the connection (a request timed out: Redis is not answering);
 * every request still waiting on it gets the 503 at once.
 */

void
ngx_oauth2_redis_abort(ngx_http_oauth2_main_conf_t *omcf, const char *reason)
{
    ngx_oauth2_redis_t  *rd;

    rd = omcf->redis;

    if (rd == NULL || rd->ac == NULL
        || rd->state == NGX_OAUTH2_REDIS_DOWN)
    {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "oauth2: dropping the connection to redis %V: %s",
                  &omcf->redis_addr, reason);

    rd->known_down = 1;
    rd->state = NGX_OAUTH2_REDIS_DOWN;
    redisAsyncFree(rd->ac);
}


static void
ngx_oauth2_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_oauth2_redis_t  *rd = ac->data;

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "oauth2: cannot connect to redis %V: %s",
                      &rd->omcf->redis_addr, ac->errstr);
        rd->known_down = 1;
        rd->state = NGX_OAUTH2_REDIS_DOWN;
        return;
    }

    /*
     * connected, but not ready: Redis has to answer the set-up commands
     * first (a stalled Redis accepts connections, and answers nothing)
     */

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "oauth2: redis connection established");
}


static void
ngx_oauth2_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_oauth2_redis_t  *rd = ac->data;

    if (status != REDIS_OK && !rd->exiting) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "oauth2: connection to redis %V lost: %s",
                      &rd->omcf->redis_addr,
                      ac->errstr[0] ? ac->errstr : "closed");
    }

    rd->state = NGX_OAUTH2_REDIS_DOWN;
}


static void
ngx_oauth2_redis_setup_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply          *rr = reply;
    ngx_oauth2_redis_t  *rd = ac->data;

    if (rr == NULL) {
        return;
    }

    if (rr->type != REDIS_REPLY_ERROR) {

        if (privdata != ngx_oauth2_script_load
            || rd->state != NGX_OAUTH2_REDIS_CONNECTING)
        {
            return;
        }

        /* the last of the set-up commands: Redis answers, we are ready */

        if (rd->connect_timer.timer_set) {
            ngx_del_timer(&rd->connect_timer);
        }

        if (rd->known_down) {
            ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                          "oauth2: connected to redis %V again",
                          &rd->omcf->redis_addr);
        }

        rd->state = NGX_OAUTH2_REDIS_READY;
        rd->known_down = 0;
        rd->backoff = 0;

        return;
    }

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "oauth2: redis %V refused %s: %*s",
                  &rd->omcf->redis_addr, (char *) privdata,
                  (size_t) rr->len, rr->str);

    if (rd->state != NGX_OAUTH2_REDIS_DOWN) {
        rd->known_down = 1;
        rd->state = NGX_OAUTH2_REDIS_DOWN;
        redisAsyncFree(ac);
    }
}


ngx_int_t
ngx_oauth2_redis_call(ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx)
{
    ngx_int_t             rc;
    ngx_queue_t          *q;
    ngx_oauth2_redis_t   *rd;
    ngx_oauth2_waiter_t  *w;

    rd = omcf->redis;

    /* while Redis is known to be down, answer at once: no connect wait */

    if (rd == NULL || rd->ac == NULL || rd->known_down
        || rd->state == NGX_OAUTH2_REDIS_DOWN)
    {
        return NGX_DECLINED;
    }

    if (!ngx_queue_empty(&rd->free_waiters)) {
        q = ngx_queue_head(&rd->free_waiters);
        ngx_queue_remove(q);
        w = ngx_queue_data(q, ngx_oauth2_waiter_t, queue);

    } else {
        w = ngx_palloc(rd->pool, sizeof(ngx_oauth2_waiter_t));
        if (w == NULL) {
            return NGX_ERROR;
        }

        w->redis = rd;
    }

    w->ctx = ctx;

    rc = ngx_oauth2_redis_send(rd, w, 0);

    if (rc != NGX_OK) {
        w->ctx = NULL;
        ngx_queue_insert_head(&rd->free_waiters, &w->queue);
        return rc;
    }

    ctx->waiter = w;

    return NGX_AGAIN;
}


/* EVALSHA <sha> <nkeys> <args...>, or EVAL <script> ... after NOSCRIPT */

static ngx_int_t
ngx_oauth2_redis_send(ngx_oauth2_redis_t *rd, ngx_oauth2_waiter_t *w,
    ngx_uint_t eval)
{
    size_t                 *lens;
    ngx_uint_t              i;
    const char            **argv;
    ngx_oauth2_script_t    *script;
    ngx_http_oauth2_ctx_t  *ctx;

    ctx = w->ctx;
    script = &ngx_oauth2_scripts[ctx->script];

    argv = ngx_palloc(ctx->request->pool,
                      (ctx->nargs + 3) * (sizeof(char *) + sizeof(size_t)));
    if (argv == NULL) {
        return NGX_ERROR;
    }

    lens = (size_t *) &argv[ctx->nargs + 3];

    if (eval) {
        argv[0] = "EVAL";
        lens[0] = 4;
        argv[1] = script->text;
        lens[1] = script->len;

    } else {
        argv[0] = "EVALSHA";
        lens[0] = 7;
        argv[1] = (char *) script->sha;
        lens[1] = NGX_OAUTH2_SHA1_HEX_LEN;
    }

    argv[2] = ctx->nkeys ? "1" : "0";
    lens[2] = 1;

    for (i = 0; i < ctx->nargs; i++) {
        argv[i + 3] = (char *) ctx->args[i].data;
        lens[i + 3] = ctx->args[i].len;
    }

    if (redisAsyncCommandArgv(rd->ac, ngx_oauth2_redis_lookup_reply, w,
                              (int) ctx->nargs + 3, argv, lens)
        != REDIS_OK)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static void
ngx_oauth2_redis_lookup_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_oauth2_waiter_t *w = privdata;

    redisReply             *rr = reply;
    ngx_oauth2_redis_t     *rd;
    ngx_http_oauth2_ctx_t  *ctx;
    ngx_oauth2_outcome_e    outcome;

    ctx = w->ctx;
    rd = w->redis;

    if (ctx == NULL) {
        /* the request has gone or timed out */
        ngx_queue_insert_head(&rd->free_waiters, &w->queue);
        return;
    }

    if (rr && rr->type == REDIS_REPLY_ERROR
        && ngx_strncmp(rr->str, "NOSCRIPT", 8) == 0
        && rd->state == NGX_OAUTH2_REDIS_READY)
    {
        /* the script cache was flushed: EVAL loads it again */

        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "oauth2: redis lost its scripts, loading them again");

        if (ngx_oauth2_redis_send(rd, w, 1) == NGX_OK) {
            return;
        }
    }

    w->ctx = NULL;
    ctx->waiter = NULL;
    ngx_queue_insert_head(&rd->free_waiters, &w->queue);

    if (rr == NULL) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "oauth2: redis %V closed the connection before "
                      "answering%s%s", &rd->omcf->redis_addr,
                      ac->errstr[0] ? ": " : "", ac->errstr);
        outcome = NGX_OAUTH2_STORE_UNAVAILABLE;

    } else {
        outcome = ngx_oauth2_redis_parse(ctx, rr);
    }

    ngx_http_oauth2_lookup_done(ctx, outcome);
}


static ngx_int_t
ngx_oauth2_redis_copy(ngx_pool_t *pool, redisReply *rr, ngx_str_t *s)
{
    if (rr->type == REDIS_REPLY_NIL) {
        ngx_str_null(s);
        return NGX_OK;
    }

    if (rr->type != REDIS_REPLY_STRING) {
        return NGX_ERROR;
    }

    s->len = rr->len;
    s->data = ngx_pnalloc(pool, rr->len);

    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, rr->str, rr->len);

    return NGX_OK;
}


/*
 * {state, limit index, remaining, reset s, retry s, unusable keys} of the
 * GCRA script
 */

static ngx_int_t
ngx_oauth2_redis_parse_rl(ngx_http_oauth2_ctx_t *ctx, redisReply *rr)
{
    ngx_uint_t        i;
    redisReply      **e;
    ngx_oauth2_rl_t  *rl;

    rl = &ctx->rl;

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 6) {
        return NGX_ERROR;
    }

    e = rr->element;

    for (i = 0; i < 6; i++) {
        if (e[i]->type != REDIS_REPLY_INTEGER || e[i]->integer < 0) {
            return NGX_ERROR;
        }
    }

    if (e[0]->integer != NGX_OAUTH2_RL_ALLOWED
        && e[0]->integer != NGX_OAUTH2_RL_LIMITED)
    {
        return NGX_ERROR;
    }

    rl->state = (ngx_uint_t) e[0]->integer;
    rl->limit = (ngx_uint_t) e[1]->integer;
    rl->remaining = (ngx_int_t) e[2]->integer;
    rl->reset = (ngx_msec_t) e[3]->integer;
    rl->retry = (ngx_msec_t) e[4]->integer;

    if (rl->plan && rl->limit >= rl->plan->limits->nelts) {
        return NGX_ERROR;
    }

    if (e[5]->integer) {
        ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                      "oauth2: %L rate-limit key(s) of client \"%V\", "
                      "plan \"%V\" held no usable counter and were "
                      "counted as new", (int64_t) e[5]->integer,
                      &ctx->record.client_id,
                      rl->plan ? &rl->plan->name : &ctx->record.plan);
    }

    return NGX_OK;
}


/* {revoked, consent status, rate limit} of the JWT script */

static ngx_oauth2_outcome_e
ngx_oauth2_redis_parse_jwt(ngx_http_oauth2_ctx_t *ctx, redisReply *rr)
{
    ngx_log_t                    *log;
    redisReply                  **e;
    ngx_oauth2_record_t          *rec;
    ngx_http_oauth2_main_conf_t  *omcf;

    log = ctx->request->connection->log;
    rec = &ctx->record;

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 3
        || rr->element[0]->type != REDIS_REPLY_INTEGER)
    {
        goto unexpected;
    }

    e = rr->element;

    if (e[0]->integer == 1) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "oauth2: JWT \"%V\" of client \"%V\" is revoked",
                      &ctx->jti, &rec->client_id);
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    if (ngx_oauth2_redis_copy(ctx->request->pool, e[1],
                              &rec->consent_status)
        != NGX_OK)
    {
        goto unexpected;
    }

    ngx_oauth2_record_consent(rec);

    omcf = ngx_http_get_module_main_conf(ctx->request,
                                         ngx_http_oauth2_module);

    if (e[2]->type == REDIS_REPLY_NIL && rec->plan.len && omcf->plans) {
        /* a plan name that is not configured is still logged */
        (void) ngx_oauth2_ratelimit_plan(ctx->request, omcf, &rec->plan);
    }

    if (e[2]->type != REDIS_REPLY_NIL) {
        ctx->rl.plan = ngx_oauth2_ratelimit_plan(ctx->request, omcf,
                                                 &rec->plan);

        if (ctx->rl.plan == NULL
            || ngx_oauth2_redis_parse_rl(ctx, e[2]) != NGX_OK)
        {
            goto unexpected;
        }
    }

    return NGX_OAUTH2_OK;

unexpected:

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "oauth2: unexpected reply from redis for JWT \"%V\"",
                  &ctx->jti);

    return NGX_OAUTH2_STORE_UNAVAILABLE;
}


ngx_oauth2_outcome_e
ngx_oauth2_redis_parse(ngx_http_oauth2_ctx_t *ctx, redisReply *rr)
{
    u_char                        buf[NGX_OAUTH2_ESCAPE_LEN];
    time_t                        now, exp;
    long long                     ttl;
    ngx_str_t                     exp_str, esc;
    ngx_log_t                    *log;
    ngx_pool_t                   *pool;
    redisReply                  **e;
    ngx_oauth2_record_t          *rec;
    ngx_http_oauth2_main_conf_t  *omcf;

    log = ctx->request->connection->log;
    pool = ctx->request->pool;
    rec = &ctx->record;

    if (rr->type == REDIS_REPLY_ERROR) {
        exp_str.data = (u_char *) rr->str;
        exp_str.len = rr->len;
        esc.data = buf;
        esc.len = ngx_oauth2_escape(buf, &exp_str);

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth2: redis answered an error for token %*s: %V",
                      6, ctx->hash, &esc);
        return NGX_OAUTH2_STORE_UNAVAILABLE;
    }

    if (ctx->script == NGX_OAUTH2_SCRIPT_RATELIMIT) {
        if (ngx_oauth2_redis_parse_rl(ctx, rr) != NGX_OK) {
            goto unexpected;
        }

        return NGX_OAUTH2_OK;
    }

    if (ctx->script == NGX_OAUTH2_SCRIPT_JWT) {
        return ngx_oauth2_redis_parse_jwt(ctx, rr);
    }

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements == 0
        || rr->element[0]->type != REDIS_REPLY_INTEGER)
    {
        goto unexpected;
    }

    e = rr->element;

    if (e[0]->integer == 0) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "oauth2: token %*s is unknown or has expired",
                      6, ctx->hash);
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    if (rr->elements != 10 || e[1]->type != REDIS_REPLY_INTEGER) {
        goto unexpected;
    }

    if (ngx_oauth2_redis_copy(pool, e[2], &rec->client_id) != NGX_OK
        || ngx_oauth2_redis_copy(pool, e[3], &rec->scope) != NGX_OK
        || ngx_oauth2_redis_copy(pool, e[4], &rec->plan) != NGX_OK
        || ngx_oauth2_redis_copy(pool, e[5], &rec->consent_id) != NGX_OK
        || ngx_oauth2_redis_copy(pool, e[6], &rec->sub) != NGX_OK
        || ngx_oauth2_redis_copy(pool, e[7], &exp_str) != NGX_OK
        || ngx_oauth2_redis_copy(pool, e[8], &rec->consent_status)
           != NGX_OK)
    {
        goto unexpected;
    }

    if (ngx_oauth2_record_gate(rec, log) != NGX_OK) {
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    if (ngx_oauth2_record_exp(&exp_str, &rec->expires) != NGX_OK) {
        esc.data = buf;
        esc.len = ngx_oauth2_escape(buf, &exp_str);

        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "oauth2: record of %V has a non-numeric exp \"%V\", "
                      "token refused (1 to 15 digits expected)",
                      &rec->name, &esc);
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    now = ctx->now;

    if (e[1]->integer > 0) {
        /* the key's TTL in ms, rounded up to whole seconds, without overflow */
        ttl = e[1]->integer / 1000 + (e[1]->integer % 1000 != 0);
        exp = (ttl < (long long) (NGX_MAX_TIME_T_VALUE - now))
              ? now + (time_t) ttl : NGX_MAX_TIME_T_VALUE;

        if (rec->expires == 0 || exp < rec->expires) {
            rec->expires = exp;
        }
    }

    /* the rate limit, when the script applied one */

    omcf = ngx_http_get_module_main_conf(ctx->request,
                                         ngx_http_oauth2_module);

    if (e[9]->type == REDIS_REPLY_NIL && rec->plan.len && omcf->plans) {
        /* a plan name that is not configured is still logged */
        (void) ngx_oauth2_ratelimit_plan(ctx->request, omcf, &rec->plan);
    }

    if (e[9]->type != REDIS_REPLY_NIL) {
        ctx->rl.plan = ngx_oauth2_ratelimit_plan(ctx->request, omcf,
                                                 &rec->plan);

        if (ctx->rl.plan == NULL
            || ngx_oauth2_redis_parse_rl(ctx, e[9]) != NGX_OK)
        {
            goto unexpected;
        }
    }

    return NGX_OAUTH2_OK;

unexpected:

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "oauth2: unexpected reply from redis for token %*s",
                  6, ctx->hash);

    return NGX_OAUTH2_STORE_UNAVAILABLE;
}


void
ngx_oauth2_redis_detach(ngx_http_oauth2_ctx_t *ctx)
{
    if (ctx->waiter) {
        ctx->waiter->ctx = NULL;
        ctx->waiter = NULL;
    }
}


/* events: nginx's event loop drives hiredis */

static void
ngx_oauth2_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t    *c = ev->data;
    ngx_oauth2_redis_t  *rd = c->data;

    redisAsyncHandleRead(rd->ac);
}


static void
ngx_oauth2_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t    *c = ev->data;
    ngx_oauth2_redis_t  *rd = c->data;

    redisAsyncHandleWrite(rd->ac);
}


/*
 * level-triggered: hiredis reads once per call, what it leaves in the
 * socket must wake us again
 */

static void
ngx_oauth2_redis_add_read(void *privdata)
{
    ngx_oauth2_redis_t  *rd = privdata;

    if (rd->conn && !rd->conn->read->active) {
        if (ngx_add_event(rd->conn->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, rd->log, 0,
                          "oauth2: cannot watch the redis connection");
        }
    }
}


static void
ngx_oauth2_redis_del_read(void *privdata)
{
    ngx_oauth2_redis_t  *rd = privdata;

    if (rd->conn && rd->conn->read->active) {
        ngx_del_event(rd->conn->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_oauth2_redis_add_write(void *privdata)
{
    ngx_oauth2_redis_t  *rd = privdata;

    if (rd->conn && !rd->conn->write->active) {
        if (ngx_add_event(rd->conn->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, rd->log, 0,
                          "oauth2: cannot watch the redis connection");
        }
    }
}


static void
ngx_oauth2_redis_del_write(void *privdata)
{
    ngx_oauth2_redis_t  *rd = privdata;

    if (rd->conn && rd->conn->write->active) {
        ngx_del_event(rd->conn->write, NGX_WRITE_EVENT, 0);
    }
}


/*
 * hiredis is freeing the context (and closes the socket itself): release
 * the ngx_connection_t and plan the next connection
 */

static void
ngx_oauth2_redis_cleanup(void *privdata)
{
    ngx_oauth2_redis_t  *rd = privdata;

    ngx_connection_t  *c;

    c = rd->conn;

    if (c) {
        if (c->read->active) {
            ngx_del_event(c->read, NGX_READ_EVENT, 0);
        }

        if (c->write->active) {
            ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
    }

    rd->conn = NULL;
    rd->ac = NULL;
    rd->state = NGX_OAUTH2_REDIS_DOWN;

    if (rd->connect_timer.timer_set) {
        ngx_del_timer(&rd->connect_timer);
    }

    if (rd->exiting || rd->reconnect.timer_set) {
        return;
    }

    /*
     * a connection that was up is tried again at once; one that failed
     * is retried with a backoff, while requests get their 503 at once
     */

    if (!rd->known_down) {
        ngx_add_timer(&rd->reconnect, 1);
        return;
    }

    rd->backoff = rd->backoff ? ngx_min(rd->backoff * 2,
                                        NGX_OAUTH2_BACKOFF_MAX)
                              : NGX_OAUTH2_BACKOFF_MIN;

    ngx_add_timer(&rd->reconnect, rd->backoff);
}
