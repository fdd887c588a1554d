
/*
 * ngx_oauth2_module: rate-limit leases (oauth2_rate_limit_lease), the one
 * definition of the lease rule.
 *
 * A node takes permits from a client's GCRA in Redis in a batch, with one
 * call of lua/lease.lua, and admits requests from the batch without
 * asking Redis.  Every permit is counted in Redis before it is spent, and
 * is spent within "time" of the call that took it, or not at all: the
 * permits left when the lease ends are given back to Redis (the TATs move
 * back).  See docs/rate-limiting.md, "Leases", for the bounds.
 *
 * The permits a node holds for a client and plan are in a shared-memory
 * zone of their own ("oauth2_rate_limit_lease", as large as the
 * oauth2_rate_limit_zone), so that every worker of the node spends them:
 *
 *   - two slots of permits, each with the time its lease ends (permits
 *     taken later may land in the slot that ends sooner, never the other
 *     way round); the slot that ends first is spent first;
 *   - the batch size: the requests of the client seen on this node in the
 *     last "time" (in the current one, when more), from 1 to max=; a
 *     client slower than one request per "time" takes one permit per
 *     request, as without leases;
 *   - whether a take is in flight: one at a time per client and node.
 *     When the permits held fall to half a batch, the worker that sees it
 *     takes the next batch in the background (no request waits for it);
 *     a request that finds none waits for a take of its own, as for the
 *     rate-limit script, for a batch or, while another take is in flight,
 *     for one permit.
 *
 * A background call outlives the request that started it: it carries a
 * job of its own (its arguments, the key), from the worker's free list.
 */


#include "ngx_oauth2_redis.h"


/* client_id (255), plan (64), 8 limits of "count period_usec" */
#define NGX_OAUTH2_LEASE_KEY_MAX  (255 + 1 + 64 + 1                           \
                                   + NGX_OAUTH2_MAX_LIMITS                    \
                                     * (2 * NGX_INT64_LEN + 2))

#define NGX_OAUTH2_LEASE_MAX      10000
#define NGX_OAUTH2_LEASE_TIME     60000          /* ms, at most */
#define NGX_OAUTH2_LEASE_SWEEP    1000           /* ms between sweeps */
#define NGX_OAUTH2_LEASE_SWEPT    256            /* entries per sweep */
#define NGX_OAUTH2_LEASE_BACK     16             /* give-backs per sweep */


/*
 * A take as Redis answered it: the TAT it wrote for each limit and the
 * permits it took.  A give-back of its permits names it: Redis moves a
 * TAT back only while it still holds what the take wrote (nothing was
 * counted, taken or given back since), and by the take's permits at
 * most, so that only permits of that take, at the top of the TAT, are
 * given back.
 */
typedef struct {
    int64_t                      tat[NGX_OAUTH2_MAX_LIMITS];
    ngx_uint_t                   k;
} ngx_oauth2_lease_take_t;


/* the permits of one take, never mixed with another's */
typedef struct {
    ngx_uint_t                   n;              /* permits */
    ngx_msec_t                   ends;           /* ngx_current_msec */
    ngx_msec_t                   sent;
    ngx_oauth2_lease_take_t      take;
} ngx_oauth2_lease_slot_t;


/* permits to give back, and the take they came from */
typedef struct {
    ngx_uint_t                   n;
    ngx_oauth2_lease_take_t      take;
} ngx_oauth2_lease_back_t;


typedef struct {
    ngx_oauth2_zone_node_t       zn;             /* key: client, plan, */
    ngx_oauth2_lease_slot_t      slot[2];        /* limits */
    ngx_msec_t                   inflight;       /* a take awaited until */
    ngx_msec_t                   window;         /* of the rate, started */
    ngx_uint_t                   seen;           /* requests in it */
    ngx_uint_t                   last;           /* in the one before */
    ngx_msec_t                   time;           /* of the last lease */

    /* the headers, as Redis answered the last take */
    ngx_uint_t                   limit;
    ngx_int_t                    remaining;
    ngx_msec_t                   reset;          /* ngx_current_msec */
} ngx_oauth2_lease_t;


/* a background call: a take or a give-back, and what it needs */
typedef struct {
    ngx_queue_t                  queue;          /* the free list */
    ngx_uint_t                   take;
    ngx_uint_t                   want;
    ngx_uint_t                   nlimits;
    ngx_msec_t                   sent;
    ngx_msec_t                   time;
    ngx_msec_t                   inflight;       /* the take's mark */
    ngx_str_t                    key;
    ngx_uint_t                   nargs;
    ngx_str_t                    args[5 + 1 + 3 * NGX_OAUTH2_MAX_LIMITS
                                      + 1];
    u_char                       count[NGX_INT_T_LEN];
    u_char                       tat[NGX_OAUTH2_MAX_LIMITS][NGX_INT64_LEN];
    u_char                       k[NGX_INT_T_LEN];
    u_char                       nbuf[NGX_INT_T_LEN];
    u_char                       data[NGX_OAUTH2_LEASE_KEY_MAX];
} ngx_oauth2_lease_job_t;


static ngx_int_t ngx_oauth2_lease_key(ngx_pool_t *pool,
    ngx_http_oauth2_ctx_t *ctx, ngx_str_t *key);
static ngx_oauth2_lease_t *ngx_oauth2_lease_get(ngx_oauth2_zone_t *zone,
    ngx_str_t *key, ngx_uint_t create, ngx_log_t *log);
static ngx_uint_t ngx_oauth2_lease_expire(ngx_oauth2_lease_t *ls,
    ngx_msec_t now, ngx_oauth2_lease_back_t *back);
static void ngx_oauth2_lease_put(ngx_oauth2_lease_t *ls, ngx_uint_t n,
    ngx_msec_t sent, ngx_msec_t ends, ngx_oauth2_lease_take_t *take,
    ngx_oauth2_lease_back_t *evicted);
static void ngx_oauth2_lease_give_back(ngx_http_oauth2_main_conf_t *omcf,
    ngx_str_t *key, ngx_oauth2_lease_back_t *back, ngx_uint_t nback,
    ngx_log_t *log);
static void ngx_oauth2_lease_answer(ngx_oauth2_lease_t *ls,
    ngx_oauth2_rl_t *rl, ngx_oauth2_plan_t *plan, ngx_msec_t now);
static void ngx_oauth2_lease_send(ngx_http_oauth2_main_conf_t *omcf,
    ngx_str_t *key, ngx_uint_t take, ngx_uint_t count, ngx_msec_t time,
    ngx_msec_t mark, ngx_oauth2_lease_take_t *from, ngx_log_t *log);
static ngx_oauth2_lease_job_t *ngx_oauth2_lease_job(
    ngx_http_oauth2_main_conf_t *omcf, ngx_str_t *key, ngx_uint_t take,
    ngx_uint_t count, ngx_msec_t time, ngx_oauth2_lease_take_t *from);
static void ngx_oauth2_lease_done(ngx_oauth2_redis_call_t *call,
    redisReply *reply);
static void ngx_oauth2_lease_sweep(ngx_event_t *ev);
static ngx_uint_t ngx_oauth2_lease_stale(ngx_oauth2_zone_node_t *zn);


/* the worker's free jobs and its sweep timer */
static ngx_queue_t   ngx_oauth2_lease_jobs;
static ngx_event_t   ngx_oauth2_lease_timer;

static ngx_str_t  ngx_oauth2_lease_take = ngx_string("take");
static ngx_str_t  ngx_oauth2_lease_return = ngx_string("return");


/* oauth2_rate_limit_lease off | on [max=N] [time=T] */

char *
ngx_http_oauth2_rate_limit_lease_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_loc_conf_t *olcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i;
    ngx_msec_t   t;

    if (olcf->lease_max != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_rate_limit_lease off\" takes no "
                               "parameters");
            return NGX_CONF_ERROR;
        }

        olcf->lease_max = 0;
        olcf->lease_time = 0;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "on") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in "
                           "\"oauth2_rate_limit_lease\": \"on\" or \"off\" "
                           "expected", &value[1]);
        return NGX_CONF_ERROR;
    }

    olcf->lease_max = 100;
    olcf->lease_time = 1000;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max=", 4) == 0) {
            n = ngx_atoi(value[i].data + 4, value[i].len - 4);

            if (n == NGX_ERROR || n < 1 || n > NGX_OAUTH2_LEASE_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" in "
                                   "\"oauth2_rate_limit_lease\": a number "
                                   "of permits from 1 to %d expected",
                                   &value[i], NGX_OAUTH2_LEASE_MAX);
                return NGX_CONF_ERROR;
            }

            olcf->lease_max = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "time=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            t = ngx_parse_time(&s, 0);

            if (t == (ngx_msec_t) NGX_ERROR || t == 0
                || t > NGX_OAUTH2_LEASE_TIME)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" in "
                                   "\"oauth2_rate_limit_lease\": a time "
                                   "from 1ms to 60s expected, e.g. "
                                   "time=500ms", &value[i]);
                return NGX_CONF_ERROR;
            }

            olcf->lease_time = t;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in "
                           "\"oauth2_rate_limit_lease\": max=N or time=T "
                           "expected", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the leases' zone, once a location with plans to count uses leases */

char *
ngx_oauth2_lease_init_conf(ngx_conf_t *cf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_loc_conf_t *olcf)
{
    static ngx_str_t  name = ngx_string("oauth2_rate_limit_lease");

    if (olcf->lease_max == 0 || omcf->plans == NULL) {
        return NGX_CONF_OK;
    }

    if (omcf->leases) {
        return NGX_CONF_OK;
    }

    omcf->leases = ngx_oauth2_zone_add(cf, &name, omcf->counters_size,
                                       "oauth2_rate_limit_lease",
                                       ngx_oauth2_lease_stale);
    if (omcf->leases == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* a worker's sweep: permits no request comes to spend are given back */

void
ngx_oauth2_lease_init_worker(ngx_cycle_t *cycle,
    ngx_http_oauth2_main_conf_t *omcf)
{
    ngx_queue_init(&ngx_oauth2_lease_jobs);

    if (omcf->leases == NULL) {
        return;
    }

    ngx_oauth2_lease_timer.handler = ngx_oauth2_lease_sweep;
    ngx_oauth2_lease_timer.data = omcf;
    ngx_oauth2_lease_timer.log = cycle->log;
    ngx_oauth2_lease_timer.cancelable = 1;

    ngx_add_timer(&ngx_oauth2_lease_timer, NGX_OAUTH2_LEASE_SWEEP);
}


/*
 * A request whose record is checked and whose plan applies, in a location
 * with leases: NGX_OK when it spent a permit the node held (ctx->rl set,
 * nothing to ask Redis); NGX_DECLINED when it must take permits itself
 * (ctx->lease_want, the lease script's call); NGX_ERROR.
 */

ngx_int_t
ngx_oauth2_lease_spend(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx)
{
    ngx_msec_t                now, mark;
    ngx_uint_t                batch, held, nback, want, i, u0, u1;
    ngx_oauth2_plan_t        *plan;
    ngx_oauth2_lease_t       *ls;
    ngx_oauth2_lease_back_t   back[2];

    if (ngx_oauth2_lease_key(r->pool, ctx, &ctx->lease_key) != NGX_OK) {
        return NGX_ERROR;
    }

    plan = ctx->rl.plan;
    now = ngx_current_msec;
    want = 0;
    mark = 0;

    ngx_oauth2_zone_lock(omcf->leases);

    ls = ngx_oauth2_lease_get(omcf->leases, &ctx->lease_key, 1,
                              r->connection->log);

    if (ls == NULL) {
        /* no room: this request counts in Redis alone */
        ngx_oauth2_zone_unlock(omcf->leases);
        ctx->lease_want = 1;
        ctx->lease_time = olcf->lease_time;
        return NGX_DECLINED;
    }

    ls->time = olcf->lease_time;

    /* the client's rate on this node: requests per lease time */

    /*
     * signed: another worker's cached clock may be a little ahead of this
     * one's, and its window start a little after this "now"
     */

    if ((ngx_msec_int_t) (now - ls->window)
        >= (ngx_msec_int_t) olcf->lease_time)
    {
        ls->last = ((ngx_msec_int_t) (now - ls->window)
                    < (ngx_msec_int_t) (2 * olcf->lease_time))
                   ? ls->seen : 0;
        ls->seen = 0;
        ls->window = now;
    }

    ls->seen++;

    batch = ngx_max(ls->last, ls->seen);
    batch = ngx_min(batch, olcf->lease_max);

    nback = ngx_oauth2_lease_expire(ls, now, back);

    if (ls->inflight && (ngx_msec_int_t) (ls->inflight - now) <= 0) {
        ls->inflight = 0;
    }

    /*
     * the permits this location may spend: taken less than its own time=
     * ago (locations that share a plan share the node's permits, and one
     * with a shorter time= does not spend what a longer one took long ago)
     */

    u0 = ls->slot[0].n
         && (ngx_msec_int_t) (now - ls->slot[0].sent)
            < (ngx_msec_int_t) olcf->lease_time;
    u1 = ls->slot[1].n
         && (ngx_msec_int_t) (now - ls->slot[1].sent)
            < (ngx_msec_int_t) olcf->lease_time;

    /* of those, the slot whose lease ends first */

    i = (!u0
         || (u1
             && (ngx_msec_int_t) (ls->slot[1].ends - ls->slot[0].ends) < 0))
        ? 1 : 0;

    if (u0 || u1) {
        ls->slot[i].n--;
        held = (u0 ? ls->slot[0].n : 0) + (u1 ? ls->slot[1].n : 0);

        if (batch > 1 && held <= batch / 2 && ls->inflight == 0) {
            ls->inflight = now + omcf->redis.timeout + 1000;
            mark = ls->inflight;
            want = batch - held;
        }

        ngx_oauth2_lease_answer(ls, &ctx->rl, plan, now);

        ngx_oauth2_zone_unlock(omcf->leases);

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "oauth2: lease: a permit spent, %ui held, "
                       "taking %ui, giving back %ui", held, want,
                       nback ? back[0].n : 0);

        ngx_oauth2_lease_give_back(omcf, &ctx->lease_key, back, nback,
                                   r->connection->log);

        if (want) {
            ngx_oauth2_lease_send(omcf, &ctx->lease_key, 1, want,
                                  olcf->lease_time, mark, NULL,
                                  r->connection->log);
        }

        return NGX_OK;
    }

    /* none held: this request takes a batch, or one while one is taken */

    if (ls->inflight == 0) {
        ls->inflight = now + omcf->redis.timeout + 1000;
        ctx->lease_inflight = ls->inflight;
        ctx->lease_refill = 1;
        want = batch;

    } else {
        want = 1;
    }

    ngx_oauth2_zone_unlock(omcf->leases);

    ngx_oauth2_lease_give_back(omcf, &ctx->lease_key, back, nback,
                               r->connection->log);

    ctx->lease_want = want;
    ctx->lease_time = olcf->lease_time;

    return NGX_DECLINED;
}


/* the lease script's KEYS and ARGV for the request's own take */

ngx_int_t
ngx_oauth2_lease_args(ngx_http_request_t *r,
    ngx_http_oauth2_main_conf_t *omcf, ngx_http_oauth2_ctx_t *ctx,
    ngx_oauth2_redis_call_t *call)
{
    u_char             *p;
    ngx_str_t          *a;
    ngx_oauth2_plan_t  *plan;

    plan = ctx->rl.plan;

    a = ngx_palloc(r->pool, (5 + plan->nargs) * sizeof(ngx_str_t));
    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);

    if (a == NULL || p == NULL) {
        return NGX_ERROR;
    }

    a[0] = omcf->prefix;
    a[1] = ctx->record.client_id;
    a[2] = plan->name;
    a[3] = ngx_oauth2_lease_take;
    a[4].data = p;
    a[4].len = ngx_sprintf(p, "%ui", ctx->lease_want) - p;
    ngx_memcpy(&a[5], plan->args, plan->nargs * sizeof(ngx_str_t));

    call->script = NGX_OAUTH2_SCRIPT_LEASE;
    call->args = a;
    call->nargs = 5 + plan->nargs;
    call->nkeys = 0;

    ctx->lease_sent = ngx_current_msec;

    return NGX_OK;
}


/*
 * The answer to the request's own take (outcome NGX_OAUTH2_OK: ctx->rl
 * and ctx->lease_granted hold it): the request spends one permit, the
 * node keeps the others.
 */

void
ngx_oauth2_lease_taken(ngx_http_request_t *r,
    ngx_http_oauth2_main_conf_t *omcf, ngx_http_oauth2_ctx_t *ctx,
    ngx_oauth2_outcome_e outcome)
{
    ngx_msec_t                now;
    ngx_uint_t                left, nback;
    ngx_oauth2_lease_t       *ls;
    ngx_oauth2_lease_back_t   back[4];
    ngx_oauth2_lease_take_t   take;

    now = ngx_current_msec;
    nback = 0;

    /* never more than asked for: a node holds max= at most */

    if (ctx->lease_granted > ctx->lease_want) {
        ctx->lease_granted = ctx->lease_want;
    }

    left = (outcome == NGX_OAUTH2_OK && ctx->lease_granted > 1)
           ? ctx->lease_granted - 1 : 0;

    ngx_memcpy(take.tat, ctx->lease_tat, sizeof(take.tat));
    take.k = ctx->lease_granted;

    ngx_oauth2_zone_lock(omcf->leases);

    ls = ngx_oauth2_lease_get(omcf->leases, &ctx->lease_key, 0,
                              r->connection->log);

    if (ls) {
        if (ctx->lease_refill && ls->inflight == ctx->lease_inflight) {
            ls->inflight = 0;
        }

        nback = ngx_oauth2_lease_expire(ls, now, back);

        if (outcome == NGX_OAUTH2_OK) {
            ngx_oauth2_lease_put(ls, left, ctx->lease_sent,
                                 ctx->lease_sent + ctx->lease_time, &take,
                                 &back[nback]);
            if (back[nback].n) {
                nback++;
            }

            left = 0;

            ls->limit = ctx->rl.limit;
            ls->remaining = ctx->rl.remaining;
            ls->reset = now + ctx->rl.reset * 1000;

            if (ctx->rl.state == NGX_OAUTH2_RL_ALLOWED) {
                ngx_oauth2_lease_answer(ls, &ctx->rl, ctx->rl.plan, now);
            }
        }
    }

    ngx_oauth2_zone_unlock(omcf->leases);

    ctx->lease_refill = 0;

    /* the entry went away meanwhile: the permits go back at once */

    if (left) {
        back[nback].n = left;
        back[nback].take = take;
        nback++;
    }

    ngx_oauth2_lease_give_back(omcf, &ctx->lease_key, back, nback,
                               r->connection->log);
}


/*
 * The request that took a batch for the node goes away before the answer.
 * Its call goes on as a background take: the answer's permits go to the
 * node, as a refill's do, and no permit counted in Redis is lost.  When
 * that cannot be (no memory), the call is cancelled by the caller and the
 * permits are lost: another request may take at once, and the next take
 * starts again from one permit, so that clients that keep going away cost
 * a permit or so each, not a batch each.
 */

void
ngx_oauth2_lease_abandon(ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx)
{
    ngx_oauth2_lease_t       *ls;
    ngx_oauth2_lease_job_t   *job;
    ngx_oauth2_redis_call_t  *call;

    if (omcf == NULL || omcf->leases == NULL || ctx->lease_key.len == 0) {
        return;
    }

    call = ctx->call;

    if (call && call->script == NGX_OAUTH2_SCRIPT_LEASE && call->handler) {

        job = ngx_oauth2_lease_job(omcf, &ctx->lease_key, 1, ctx->lease_want,
                                   ctx->lease_time, NULL);

        if (job) {
            /* permits spent within "time" of when the call was sent */
            job->sent = ctx->lease_sent;
            job->inflight = ctx->lease_inflight;

            call->handler = ngx_oauth2_lease_done;
            call->data = job;
            call->args = job->args;     /* the request's pool goes away */
            call->nargs = job->nargs;
            call->log = call->redis->log;

            ctx->call = NULL;
            ctx->lease_refill = 0;

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log,
                           0, "oauth2: lease: the take of %ui goes on for "
                           "the node", ctx->lease_want);
            return;
        }
    }

    ngx_oauth2_zone_lock(omcf->leases);

    ls = ngx_oauth2_lease_get(omcf->leases, &ctx->lease_key, 0,
                              ctx->request->connection->log);

    if (ls) {
        if (ls->inflight == ctx->lease_inflight) {
            ls->inflight = 0;
        }

        ls->seen = 0;
        ls->last = 0;
    }

    ngx_oauth2_zone_unlock(omcf->leases);

    ctx->lease_refill = 0;
}


/* client_id, plan and its limits: a reload that changes them starts anew */

static ngx_int_t
ngx_oauth2_lease_key(ngx_pool_t *pool, ngx_http_oauth2_ctx_t *ctx,
    ngx_str_t *key)
{
    u_char             *p;
    ngx_oauth2_plan_t  *plan;

    plan = ctx->rl.plan;

    key->len = ctx->record.client_id.len + 1 + plan->name.len + 1
               + plan->spec.len;

    key->data = ngx_pnalloc(pool, key->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(key->data, ctx->record.client_id.data,
                   ctx->record.client_id.len);
    *p++ = '\0';
    p = ngx_cpymem(p, plan->name.data, plan->name.len);
    *p++ = '\0';
    ngx_memcpy(p, plan->spec.data, plan->spec.len);

    return NGX_OK;
}


/* the zone locked */

static ngx_oauth2_lease_t *
ngx_oauth2_lease_get(ngx_oauth2_zone_t *zone, ngx_str_t *key,
    ngx_uint_t create, ngx_log_t *log)
{
    ngx_rbtree_key_t     hash;
    ngx_oauth2_lease_t  *ls;

    hash = ngx_crc32_short(key->data, key->len);

    ls = ngx_oauth2_zone_lookup(zone, hash, key->data, key->len);

    if (ls || !create) {
        return ls;
    }

    ls = ngx_oauth2_zone_alloc(zone, sizeof(ngx_oauth2_lease_t), hash,
                               key->data, key->len, log);
    if (ls == NULL) {
        return NULL;
    }

    ngx_memzero((u_char *) ls + sizeof(ngx_oauth2_zone_node_t),
                sizeof(ngx_oauth2_lease_t) - sizeof(ngx_oauth2_zone_node_t));

    ls->window = ngx_current_msec;

    return ls;
}


/* the permits whose lease has ended: no longer spent, to be given back */

static ngx_uint_t
ngx_oauth2_lease_expire(ngx_oauth2_lease_t *ls, ngx_msec_t now,
    ngx_oauth2_lease_back_t *back)
{
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; i < 2; i++) {
        if (ls->slot[i].n && (ngx_msec_int_t) (ls->slot[i].ends - now) <= 0) {
            back[n].n = ls->slot[i].n;
            back[n].take = ls->slot[i].take;
            n++;
            ls->slot[i].n = 0;
        }
    }

    return n;
}


/*
 * Each take's permits go back on their own, naming their take, the
 * newest first (a higher TAT: written later): when it was not spent at
 * all, Redis's TAT is then back to what the take before it wrote, and
 * that take's give-back finds it unchanged too.
 */

static void
ngx_oauth2_lease_give_back(ngx_http_oauth2_main_conf_t *omcf,
    ngx_str_t *key, ngx_oauth2_lease_back_t *back, ngx_uint_t nback,
    ngx_log_t *log)
{
    ngx_uint_t               i, j;
    ngx_oauth2_lease_back_t  t;

    for (i = 1; i < nback; i++) {
        for (j = i; j > 0 && back[j].take.tat[0] > back[j - 1].take.tat[0];
             j--)
        {
            t = back[j];
            back[j] = back[j - 1];
            back[j - 1] = t;
        }
    }

    for (i = 0; i < nback; i++) {
        if (back[i].n) {
            ngx_oauth2_lease_send(omcf, key, 0, back[i].n, 0, 0,
                                  &back[i].take, log);
        }
    }
}


/*
 * n permits of a take, whose lease ends at "ends": in an empty slot, else
 * in the slot of the permits that end sooner, which are given back
 * (*evicted): the permits of two takes are never mixed, so that a
 * give-back names the one take its permits came from
 */

static void
ngx_oauth2_lease_put(ngx_oauth2_lease_t *ls, ngx_uint_t n, ngx_msec_t sent,
    ngx_msec_t ends, ngx_oauth2_lease_take_t *take,
    ngx_oauth2_lease_back_t *evicted)
{
    ngx_oauth2_lease_slot_t  *s;

    evicted->n = 0;

    if (n == 0) {
        return;
    }

    if (ls->slot[0].n == 0 || ls->slot[1].n == 0) {
        s = (ls->slot[0].n == 0) ? &ls->slot[0] : &ls->slot[1];

    } else {
        s = ((ngx_msec_int_t) (ls->slot[0].ends - ls->slot[1].ends) < 0)
            ? &ls->slot[0] : &ls->slot[1];

        evicted->n = s->n;
        evicted->take = s->take;
    }

    s->n = n;
    s->ends = ends;
    s->sent = sent;
    s->take = *take;
}


/*
 * The headers of a request admitted from the lease: what Redis answered
 * the last take, plus the permits this node holds unspent, never more
 * than the limit's count (permits held may be older than the TAT
 * remembers)
 */

static void
ngx_oauth2_lease_answer(ngx_oauth2_lease_t *ls, ngx_oauth2_rl_t *rl,
    ngx_oauth2_plan_t *plan, ngx_msec_t now)
{
    ngx_uint_t           held;
    ngx_oauth2_limit_t  *limit;

    rl->state = NGX_OAUTH2_RL_ALLOWED;
    rl->limit = (ls->limit < plan->limits->nelts) ? ls->limit : 0;
    limit = plan->limits->elts;

    /* unsigned: Redis's figure is not negative, and may be anything */

    held = (ngx_uint_t) ls->remaining + ls->slot[0].n + ls->slot[1].n;

    if (held > limit[rl->limit].count
        || held < (ngx_uint_t) ls->remaining)
    {
        held = limit[rl->limit].count;
    }

    rl->remaining = (ngx_int_t) held;

    rl->reset = ((ngx_msec_int_t) (ls->reset - now) > 0)
                ? (ls->reset - now + 999) / 1000 : 0;
    rl->retry = 0;
}


/*
 * A take or a give-back in the background; no request waits for it.  The
 * arguments come from the key (client_id \0 plan \0 "count period_usec
 * ..."), so that a give-back after a reload still names the limits the
 * permits were taken from.
 */

static void
ngx_oauth2_lease_send(ngx_http_oauth2_main_conf_t *omcf, ngx_str_t *key,
    ngx_uint_t take, ngx_uint_t count, ngx_msec_t time, ngx_msec_t mark,
    ngx_oauth2_lease_take_t *from, ngx_log_t *log)
{
    ngx_oauth2_lease_t       *ls;
    ngx_oauth2_lease_job_t   *job;
    ngx_oauth2_redis_call_t  *call;

    call = ngx_oauth2_redis_call_create();

    if (call == NULL) {
        goto failed;
    }

    job = ngx_oauth2_lease_job(omcf, key, take, count, time, from);

    if (job == NULL) {
        ngx_oauth2_redis_cancel(call);
        goto failed;
    }

    job->inflight = mark;

    /* call->log stays the Redis layer's: the call outlives any request */

    call->handler = ngx_oauth2_lease_done;
    call->data = job;
    call->script = NGX_OAUTH2_SCRIPT_LEASE;
    call->args = job->args;
    call->nargs = job->nargs;
    call->nkeys = 0;

    if (ngx_oauth2_redis_send(call) == NGX_OK) {
        return;
    }

    /* not sent, the call released */

    ngx_queue_insert_head(&ngx_oauth2_lease_jobs, &job->queue);

failed:

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "oauth2: lease: %s of %ui not sent",
                   take ? "take" : "give-back", count);

    if (!take) {
        /* the permits lapse: their TATs pass by themselves */
        return;
    }

    /* no take in flight after all, unless a newer one started since */

    ngx_oauth2_zone_lock(omcf->leases);

    ls = ngx_oauth2_lease_get(omcf->leases, key, 0, log);

    if (ls && ls->inflight == mark) {
        ls->inflight = 0;
    }

    ngx_oauth2_zone_unlock(omcf->leases);
}


/*
 * A job from the worker's free list, with the arguments of its call made
 * from the key (and, for a give-back, from the take it gives back): NULL
 * when there is no memory, or the key is not one the node made.
 */

static ngx_oauth2_lease_job_t *
ngx_oauth2_lease_job(ngx_http_oauth2_main_conf_t *omcf, ngx_str_t *key,
    ngx_uint_t take, ngx_uint_t count, ngx_msec_t time,
    ngx_oauth2_lease_take_t *from)
{
    u_char                  *p, *end;
    ngx_str_t               *a;
    ngx_uint_t               n, l;
    ngx_queue_t             *q;
    ngx_oauth2_lease_job_t  *job;

    if (key->len > NGX_OAUTH2_LEASE_KEY_MAX) {
        return NULL;
    }

    if (!ngx_queue_empty(&ngx_oauth2_lease_jobs)) {
        q = ngx_queue_head(&ngx_oauth2_lease_jobs);
        ngx_queue_remove(q);
        job = ngx_queue_data(q, ngx_oauth2_lease_job_t, queue);

    } else {
        job = ngx_palloc(ngx_cycle->pool, sizeof(ngx_oauth2_lease_job_t));
        if (job == NULL) {
            return NULL;
        }
    }

    job->take = take;
    job->want = count;
    job->sent = ngx_current_msec;
    job->time = time;
    job->key.data = job->data;
    job->key.len = key->len;
    ngx_memcpy(job->data, key->data, key->len);

    a = job->args;
    a[0] = omcf->prefix;
    a[3] = take ? ngx_oauth2_lease_take : ngx_oauth2_lease_return;
    a[4].data = job->count;
    a[4].len = ngx_sprintf(job->count, "%ui", count) - job->count;

    /* client_id, plan, then each number of the limits */

    p = job->data;
    end = job->data + key->len;

    for (n = 1; n <= 2; n++) {
        a[n].data = p;
        p = ngx_strlchr(p, end, '\0');
        if (p == NULL) {
            goto bad;
        }
        a[n].len = p - a[n].data;
        p++;
    }

    n = 6;

    while (p < end && n < 6 + 2 * NGX_OAUTH2_MAX_LIMITS) {
        a[n].data = p;
        while (p < end && *p != ' ') {
            p++;
        }
        a[n].len = p - a[n].data;
        n++;
        p++;
    }

    if ((n - 6) % 2 || n == 6) {
        goto bad;
    }

    job->nlimits = (n - 6) / 2;
    a[5].data = job->nbuf;
    a[5].len = ngx_sprintf(job->nbuf, "%ui", job->nlimits) - job->nbuf;

    /* a give-back: the TATs and the permits of the take they came from */

    if (!take) {
        for (l = 0; l < job->nlimits; l++) {
            a[n].data = job->tat[l];
            a[n].len = ngx_sprintf(job->tat[l], "%L", from->tat[l])
                       - job->tat[l];
            n++;
        }

        a[n].data = job->k;
        a[n].len = ngx_sprintf(job->k, "%ui", from->k) - job->k;
        n++;
    }

    job->nargs = n;

    return job;

bad:

    ngx_queue_insert_head(&ngx_oauth2_lease_jobs, &job->queue);

    return NULL;
}


/* the answer to a background call */

static void
ngx_oauth2_lease_done(ngx_oauth2_redis_call_t *call, redisReply *reply)
{
    ngx_oauth2_lease_job_t *job = call->data;

    ngx_msec_t                    now;
    ngx_uint_t                    granted, nback;
    ngx_oauth2_rl_t               rl;
    ngx_oauth2_lease_t           *ls;
    ngx_oauth2_lease_back_t       back[3];
    ngx_oauth2_lease_take_t       take;
    ngx_http_oauth2_main_conf_t  *omcf;

    omcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_oauth2_module);

    if (!job->take || omcf == NULL || omcf->leases == NULL) {
        goto done;
    }

    granted = 0;
    ngx_memzero(&take, sizeof(ngx_oauth2_lease_take_t));

    ngx_memzero(&rl, sizeof(ngx_oauth2_rl_t));

    /* no answer (timed out, connection lost): logged by the Redis layer */

    if (reply
        && ngx_oauth2_reply_lease(reply, &rl, job->nlimits, &granted,
                                  take.tat)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, call->redis->log, 0,
                      "oauth2: lease: unexpected answer to a take "
                      "(redis type %d)", reply->type);
        granted = 0;
        reply = NULL;
    }

    granted = ngx_min(granted, job->want);
    take.k = granted;

    now = ngx_current_msec;
    nback = 0;

    ngx_oauth2_zone_lock(omcf->leases);

    ls = ngx_oauth2_lease_get(omcf->leases, &job->key, 0, call->redis->log);

    if (ls == NULL) {
        back[0].n = granted;
        back[0].take = take;
        nback = 1;

    } else {
        /* this take's in-flight mark, not a newer take's */
        if (ls->inflight == job->inflight) {
            ls->inflight = 0;
        }

        nback = ngx_oauth2_lease_expire(ls, now, back);
        ngx_oauth2_lease_put(ls, granted, job->sent, job->sent + job->time,
                             &take, &back[nback]);
        if (back[nback].n) {
            nback++;
        }

        if (reply) {
            ls->limit = rl.limit;
            ls->remaining = rl.remaining;
            ls->reset = now + rl.reset * 1000;
        }
    }

    ngx_oauth2_zone_unlock(omcf->leases);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, call->redis->log, 0,
                   "oauth2: lease: %ui permits taken, %ui give-backs",
                   granted, nback);

    ngx_oauth2_lease_give_back(omcf, &job->key, back, nback,
                               call->redis->log);

done:

    ngx_queue_insert_head(&ngx_oauth2_lease_jobs, &job->queue);
}


/*
 * Every second, the permits of leases that have ended are given back,
 * for the clients no request came from since: of the
 * NGX_OAUTH2_LEASE_SWEPT least recently used entries of the zone, the
 * first NGX_OAUTH2_LEASE_BACK that hold some (the others at the next
 * sweep), sent once the zone is unlocked.
 */

static void
ngx_oauth2_lease_sweep(ngx_event_t *ev)
{
    ngx_http_oauth2_main_conf_t *omcf = ev->data;

    u_char                   data[NGX_OAUTH2_LEASE_BACK]
                                 [NGX_OAUTH2_LEASE_KEY_MAX];
    ngx_str_t                key[NGX_OAUTH2_LEASE_BACK];
    ngx_uint_t               nb[NGX_OAUTH2_LEASE_BACK];
    ngx_oauth2_lease_back_t  back[NGX_OAUTH2_LEASE_BACK][2];
    ngx_msec_t               now;
    ngx_uint_t               i, n, nback;
    ngx_queue_t             *q, *sentinel;
    ngx_oauth2_lease_t      *ls;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    now = ngx_current_msec;
    nback = 0;

    ngx_oauth2_zone_lock(omcf->leases);

    sentinel = ngx_queue_sentinel(&omcf->leases->sh->queue);
    q = ngx_queue_last(&omcf->leases->sh->queue);

    for (n = 0;
         n < NGX_OAUTH2_LEASE_SWEPT && nback < NGX_OAUTH2_LEASE_BACK
         && q != sentinel;
         n++)
    {
        ls = (ngx_oauth2_lease_t *) ngx_queue_data(q, ngx_oauth2_zone_node_t,
                                                   queue);
        q = ngx_queue_prev(q);

        if (ls->zn.len > NGX_OAUTH2_LEASE_KEY_MAX) {
            continue;
        }

        /* idle clients make room, so that the sweep reaches the others */

        if (ngx_oauth2_lease_stale(&ls->zn)) {
            ngx_oauth2_zone_free(omcf->leases, ls);
            continue;
        }

        nb[nback] = ngx_oauth2_lease_expire(ls, now, back[nback]);

        if (nb[nback]) {
            key[nback].data = data[nback];
            key[nback].len = ls->zn.len;
            ngx_memcpy(data[nback], ls->zn.data, ls->zn.len);
            nback++;
        }
    }

    ngx_oauth2_zone_unlock(omcf->leases);

    for (i = 0; i < nback; i++) {
        ngx_oauth2_lease_give_back(omcf, &key[i], back[i], nb[i], ev->log);
    }

    ngx_add_timer(ev, NGX_OAUTH2_LEASE_SWEEP);
}


/* an entry with nothing held nor awaited, idle for two lease times */

static ngx_uint_t
ngx_oauth2_lease_stale(ngx_oauth2_zone_node_t *zn)
{
    ngx_oauth2_lease_t  *ls = (ngx_oauth2_lease_t *) zn;

    return ls->slot[0].n == 0 && ls->slot[1].n == 0 && ls->inflight == 0
           && (ngx_msec_int_t) (ngx_current_msec - ls->window)
              > (ngx_msec_int_t) (2 * ls->time);
}
