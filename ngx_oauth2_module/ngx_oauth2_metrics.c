
/*
 * ngx_oauth2_module: metrics (oauth2_metrics, oauth2_metrics_label).
 *
 * The counters live in a shared-memory zone of their own,
 * "oauth2_metrics", made when a location has oauth2_metrics: every worker
 * adds to the same set with ngx_atomic_fetch_add() (no lock on the
 * request path), and a reload finds the zone again, counters and all.
 * Without such a location there is no zone, and each counting function
 * below returns at once.
 *
 * The counting sites are one call each, where the module decides: the
 * decision of a request (ngx_http_oauth2_decide(), once per request), the
 * rate-limit fallback, the cache lookup, a JWT's signature check, and in
 * the Redis layer a command sent, its reply, a timeout, a connection
 * ready or closed.
 *
 * Names known at configuration time, the oauth2_metrics_label values and
 * the plans, each get a slot of a fixed array.  The zone keeps the slots'
 * names: a reload finds a name's counters again, and gives a new name a
 * free slot, or, once the slots are all taken, the slot of a name the
 * configuration no longer has (its counters start from 0 again).
 *
 * The location answers GET and HEAD with Prometheus's text format 0.0.4,
 * or with JSON (oauth2_metrics json): the same samples, written by one
 * walk through the counters (ngx_oauth2_metrics_write()).
 */


#include "ngx_oauth2_redis.h"


#define NGX_OAUTH2_METRICS_NAMES     64      /* of a configuration */
#define NGX_OAUTH2_METRICS_SLOTS     128     /* in the zone; 0: none */
#define NGX_OAUTH2_METRICS_NAME_LEN  64
#define NGX_OAUTH2_METRICS_WORKERS   256
#define NGX_OAUTH2_METRICS_BUCKETS   13      /* and +Inf */
#define NGX_OAUTH2_METRICS_ALGS      9
#define NGX_OAUTH2_METRICS_VERSION   1

/* the values of the outcome label, in this order */
#define NGX_OAUTH2_M_ALLOWED         0
#define NGX_OAUTH2_M_INVALID_REQUEST 1
#define NGX_OAUTH2_M_INVALID_TOKEN   2
#define NGX_OAUTH2_M_SCOPE           3
#define NGX_OAUTH2_M_CONSENT         4
#define NGX_OAUTH2_M_RATE_LIMITED    5
#define NGX_OAUTH2_M_UNAVAILABLE     6
#define NGX_OAUTH2_M_INTERNAL_ERROR  7
#define NGX_OAUTH2_M_OUTCOMES        8

/* why a token was not validated: the values of the reason label */
#define NGX_OAUTH2_M_MISSING         0
#define NGX_OAUTH2_M_MALFORMED       1
#define NGX_OAUTH2_M_JWT_INVALID     2
#define NGX_OAUTH2_M_UNKNOWN         3
#define NGX_OAUTH2_M_REVOKED         4
#define NGX_OAUTH2_M_NO_STORE        5
#define NGX_OAUTH2_M_REASONS         6


typedef struct {
    u_char                       len;
    u_char                       data[NGX_OAUTH2_METRICS_NAME_LEN];
} ngx_oauth2_metrics_name_t;


/* the zone: every number is one ngx_atomic_t, all workers add to it */

typedef struct {
    ngx_uint_t                   version;

    ngx_oauth2_metrics_name_t    labels[NGX_OAUTH2_METRICS_SLOTS];
    ngx_oauth2_metrics_name_t    plans[NGX_OAUTH2_METRICS_SLOTS];

    ngx_atomic_t                 requests[NGX_OAUTH2_METRICS_SLOTS]
                                         [NGX_OAUTH2_M_OUTCOMES];
    ngx_atomic_t                 rate_limited[NGX_OAUTH2_METRICS_SLOTS];
    ngx_atomic_t                 fallbacks[3];      /* local, allow, deny */
    ngx_atomic_t                 sources[3];        /* cache, jwt, redis */
    ngx_atomic_t                 failures[NGX_OAUTH2_M_REASONS];
    ngx_atomic_t                 cache[2];          /* miss, hit */
    ngx_atomic_t                 jwt[NGX_OAUTH2_METRICS_ALGS][2];

    ngx_atomic_t                 redis_commands;
    ngx_atomic_t                 redis_errors[2];   /* reply, connection */
    ngx_atomic_t                 redis_timeouts;
    ngx_atomic_t                 redis_reconnects;
    ngx_atomic_t                 redis_buckets[NGX_OAUTH2_METRICS_BUCKETS + 1];
    ngx_atomic_t                 redis_usec;
    ngx_atomic_t                 redis_up[NGX_OAUTH2_METRICS_WORKERS];
} ngx_oauth2_metrics_sh_t;


struct ngx_oauth2_metrics_s {
    ngx_shm_zone_t              *shm_zone;
    ngx_oauth2_metrics_sh_t     *sh;
    ngx_http_oauth2_main_conf_t *omcf;

    /* the zone's slot of each label (1 + its index) and plan (its index) */
    ngx_uint_t                   label_slot[NGX_OAUTH2_METRICS_NAMES + 1];
    ngx_uint_t                   plan_slot[NGX_OAUTH2_METRICS_NAMES];
};


/* a label of a sample */
typedef struct {
    char                        *name;
    ngx_str_t                    value;
} ngx_oauth2_metrics_label_t;


/* the response being written: Prometheus's text, or JSON */
typedef struct {
    ngx_http_request_t          *request;
    ngx_chain_t                 *out;
    ngx_chain_t                **last;
    ngx_buf_t                   *buf;
    off_t                        len;
    ngx_uint_t                   json;
    ngx_uint_t                   array;          /* JSON: the key's value */
    ngx_uint_t                   first;          /* JSON: no element yet */
    u_char                       key[96];        /* JSON: the key open */
    size_t                       key_len;
    ngx_int_t                    rc;
} ngx_oauth2_metrics_out_t;


static ngx_int_t ngx_oauth2_metrics_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_oauth2_metrics_slots(ngx_oauth2_metrics_sh_t *sh,
    ngx_uint_t plans, ngx_str_t *names, ngx_uint_t n, ngx_uint_t *slots);
static void ngx_oauth2_metrics_publish_up(void);
static uint64_t ngx_oauth2_metrics_usec(void);
static ngx_int_t ngx_http_oauth2_metrics_handler(ngx_http_request_t *r);
static void ngx_oauth2_metrics_write(ngx_oauth2_metrics_out_t *out,
    ngx_http_oauth2_main_conf_t *omcf, ngx_oauth2_metrics_t *m);
static void ngx_oauth2_metrics_zone_samples(ngx_oauth2_metrics_out_t *out,
    char *prefix, char *help, ngx_oauth2_zone_t *zone);
static void ngx_oauth2_metrics_family(ngx_oauth2_metrics_out_t *out,
    char *name, char *type, char *help);
static void ngx_oauth2_metrics_sample(ngx_oauth2_metrics_out_t *out,
    char *name, ngx_oauth2_metrics_label_t *labels, ngx_uint_t n,
    ngx_atomic_uint_t value);
static void ngx_oauth2_metrics_value(ngx_oauth2_metrics_out_t *out,
    char *name, ngx_oauth2_metrics_label_t *labels, ngx_uint_t n,
    u_char *value, size_t len);
static u_char *ngx_oauth2_metrics_room(ngx_oauth2_metrics_out_t *out,
    size_t size);


/* this worker's view: the cycle's zone, its ready data connections */
static ngx_oauth2_metrics_t  *ngx_oauth2_metrics;
static ngx_atomic_uint_t      ngx_oauth2_metrics_up;


static ngx_str_t  ngx_oauth2_metrics_outcomes[] = {
    ngx_string("allowed"),
    ngx_string("invalid_request"),
    ngx_string("invalid_token"),
    ngx_string("insufficient_scope"),
    ngx_string("consent_invalid"),
    ngx_string("rate_limited"),
    ngx_string("store_unavailable"),
    ngx_string("internal_error")
};

static ngx_str_t  ngx_oauth2_metrics_reasons[] = {
    ngx_string("missing"),
    ngx_string("malformed"),
    ngx_string("jwt_invalid"),
    ngx_string("unknown"),
    ngx_string("revoked"),
    ngx_string("store_unavailable")
};

static ngx_str_t  ngx_oauth2_metrics_modes[] = {
    ngx_string("local"),
    ngx_string("allow"),
    ngx_string("deny")
};

static ngx_str_t  ngx_oauth2_metrics_sources[] = {
    ngx_string("cache"),
    ngx_string("jwt"),
    ngx_string("redis")
};

static ngx_str_t  ngx_oauth2_metrics_algs[] = {
    ngx_string("HS256"), ngx_string("HS384"), ngx_string("HS512"),
    ngx_string("RS256"), ngx_string("RS384"), ngx_string("RS512"),
    ngx_string("ES256"), ngx_string("ES384"), ngx_string("ES512")
};

/* the upper bounds of the Redis latency buckets, usec and as labels */

static ngx_atomic_uint_t  ngx_oauth2_metrics_bounds[] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
    500000, 1000000
};

static ngx_str_t  ngx_oauth2_metrics_le[] = {
    ngx_string("0.0001"), ngx_string("0.00025"), ngx_string("0.0005"),
    ngx_string("0.001"), ngx_string("0.0025"), ngx_string("0.005"),
    ngx_string("0.01"), ngx_string("0.025"), ngx_string("0.05"),
    ngx_string("0.1"), ngx_string("0.25"), ngx_string("0.5"),
    ngx_string("1"), ngx_string("+Inf")
};


/* oauth2_metrics [json] */

char *
ngx_http_oauth2_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_loc_conf_t *olcf = conf;

    size_t                        size;
    ngx_str_t                    *value;
    ngx_oauth2_metrics_t         *m;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_oauth2_main_conf_t  *omcf;

    static ngx_str_t  name = ngx_string("oauth2_metrics");

    if (olcf->metrics) {
        return "is duplicate";
    }

    value = cf->args->elts;
    olcf->metrics = NGX_OAUTH2_METRICS_TEXT;

    if (cf->args->nelts == 2) {
        if (value[1].len != 4
            || ngx_strncmp(value[1].data, "json", 4) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"oauth2_metrics\": \"json\" or nothing "
                               "expected", &value[1]);
            return NGX_CONF_ERROR;
        }

        olcf->metrics = NGX_OAUTH2_METRICS_JSON;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_oauth2_metrics_handler;

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_oauth2_module);

    if (omcf->metrics) {
        return NGX_CONF_OK;
    }

    m = ngx_pcalloc(cf->pool, sizeof(ngx_oauth2_metrics_t));
    if (m == NULL) {
        return NGX_CONF_ERROR;
    }

    m->omcf = omcf;

    /* the same size on every reload of the same module: the zone stays */

    size = ngx_align(sizeof(ngx_oauth2_metrics_sh_t), ngx_pagesize)
           + 8 * ngx_pagesize;

    m->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                        &ngx_http_oauth2_module);
    if (m->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (m->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_metrics\" needs the shared memory "
                           "zone name \"oauth2_metrics\", which another "
                           "directive uses");
        return NGX_CONF_ERROR;
    }

    m->shm_zone->init = ngx_oauth2_metrics_zone_init;
    m->shm_zone->data = m;

    omcf->metrics = m;

    return NGX_CONF_OK;
}


/*
 * oauth2_metrics_label NAME: the value of the location label of
 * oauth2_requests_total for the requests decided here
 */

char *
ngx_http_oauth2_metrics_label_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_loc_conf_t *olcf = conf;

    u_char                       *p, *end;
    ngx_str_t                    *value, *label;
    ngx_uint_t                    i;
    ngx_http_oauth2_main_conf_t  *omcf;

    if (olcf->metrics_label != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* a Prometheus label value and a JSON string as it is: no escaping */

    p = value[1].data;
    end = p + value[1].len;

    while (p < end) {
        if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\') {
            break;
        }

        if (*p < 0x80) {
            p++;
            continue;
        }

        if (ngx_utf8_decode(&p, end - p) > 0x10ffff) {
            break;
        }
    }

    if (value[1].len == 0 || value[1].len > NGX_OAUTH2_METRICS_NAME_LEN
        || p != end)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"oauth2_metrics_label\" \"%V\": 1 to "
                           "%d bytes of UTF-8 expected, without quotes, "
                           "backslashes or control characters",
                           &value[1], NGX_OAUTH2_METRICS_NAME_LEN);
        return NGX_CONF_ERROR;
    }

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_oauth2_module);

    if (omcf->metrics_labels == NULL) {
        omcf->metrics_labels = ngx_array_create(cf->pool, 4,
                                                sizeof(ngx_str_t));
        if (omcf->metrics_labels == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    label = omcf->metrics_labels->elts;

    for (i = 0; i < omcf->metrics_labels->nelts; i++) {
        if (label[i].len == value[1].len
            && ngx_strncmp(label[i].data, value[1].data, value[1].len) == 0)
        {
            olcf->metrics_label = i + 1;
            return NGX_CONF_OK;
        }
    }

    if (omcf->metrics_labels->nelts == NGX_OAUTH2_METRICS_NAMES) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many \"oauth2_metrics_label\" values: %d "
                           "different ones at most", NGX_OAUTH2_METRICS_NAMES);
        return NGX_CONF_ERROR;
    }

    label = ngx_array_push(omcf->metrics_labels);
    if (label == NULL) {
        return NGX_CONF_ERROR;
    }

    *label = value[1];
    olcf->metrics_label = omcf->metrics_labels->nelts;

    return NGX_CONF_OK;
}


/* the http block is read: each plan must have a slot */

char *
ngx_oauth2_metrics_init_conf(ngx_conf_t *cf,
    ngx_http_oauth2_main_conf_t *omcf)
{
    if (omcf->metrics && omcf->plans
        && omcf->plans->nelts > NGX_OAUTH2_METRICS_NAMES)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_metrics\" counts %d plans at most, "
                           "and %ui \"oauth2_plan\" are configured",
                           NGX_OAUTH2_METRICS_NAMES, omcf->plans->nelts);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_oauth2_metrics_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_oauth2_metrics_t  *om = data;

    ngx_str_t                     names[NGX_OAUTH2_METRICS_NAMES];
    ngx_uint_t                    i, n;
    ngx_slab_pool_t              *shpool;
    ngx_oauth2_plan_t            *plan;
    ngx_oauth2_metrics_t         *m;
    ngx_http_oauth2_main_conf_t  *omcf;

    m = shm_zone->data;
    omcf = m->omcf;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (om) {
        /* a reload: the counters stay */
        m->sh = om->sh;

    } else if (shm_zone->shm.exists) {
        m->sh = shpool->data;

    } else {
        m->sh = ngx_slab_alloc(shpool, sizeof(ngx_oauth2_metrics_sh_t));
        if (m->sh == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(m->sh, sizeof(ngx_oauth2_metrics_sh_t));
        shpool->data = m->sh;
    }

    if (m->sh->version != NGX_OAUTH2_METRICS_VERSION) {
        ngx_memzero(m->sh, sizeof(ngx_oauth2_metrics_sh_t));
        m->sh->version = NGX_OAUTH2_METRICS_VERSION;
    }

    /* the names of this configuration, to their slots */

    if (omcf->metrics_labels) {
        ngx_oauth2_metrics_slots(m->sh, 0, omcf->metrics_labels->elts,
                                 omcf->metrics_labels->nelts,
                                 &m->label_slot[1]);
    }

    if (omcf->plans) {
        plan = omcf->plans->elts;
        n = omcf->plans->nelts;

        for (i = 0; i < n; i++) {
            names[i] = plan[i].name;
        }

        ngx_oauth2_metrics_slots(m->sh, 1, names, n, m->plan_slot);
    }

    return NGX_OK;
}


/*
 * The slot of each name: the one that has it already, else a free one,
 * else one whose name this configuration does not have (its counters
 * start again).  Runs in the master, before the workers start.
 */

static void
ngx_oauth2_metrics_slots(ngx_oauth2_metrics_sh_t *sh, ngx_uint_t plans,
    ngx_str_t *names, ngx_uint_t n, ngx_uint_t *slots)
{
    u_char                      taken[NGX_OAUTH2_METRICS_SLOTS];
    ngx_uint_t                  i, k;
    ngx_oauth2_metrics_name_t  *kept;

    kept = plans ? sh->plans : sh->labels;

    ngx_memzero(taken, sizeof(taken));
    taken[0] = 1;

    for (i = 0; i < n; i++) {
        slots[i] = 0;

        for (k = 1; k < NGX_OAUTH2_METRICS_SLOTS; k++) {
            if (kept[k].len && kept[k].len == names[i].len
                && ngx_memcmp(kept[k].data, names[i].data, names[i].len)
                   == 0)
            {
                slots[i] = k;
                taken[k] = 1;
                break;
            }
        }
    }

    for (i = 0; i < n; i++) {
        if (slots[i]) {
            continue;
        }

        for (k = 1; k < NGX_OAUTH2_METRICS_SLOTS; k++) {
            if (!taken[k] && kept[k].len == 0) {
                break;
            }
        }

        if (k == NGX_OAUTH2_METRICS_SLOTS) {
            /* at most 64 names are taken: there is one */

            for (k = 1; taken[k]; k++) { /* void */ }

            if (plans) {
                sh->rate_limited[k] = 0;

            } else {
                ngx_memzero((void *) sh->requests[k],
                            sizeof(sh->requests[k]));
            }
        }

        taken[k] = 1;
        kept[k].len = (u_char) names[i].len;
        ngx_memcpy(kept[k].data, names[i].data, names[i].len);
        slots[i] = k;
    }
}


void
ngx_oauth2_metrics_init_worker(ngx_http_oauth2_main_conf_t *omcf)
{
    ngx_oauth2_metrics = omcf->metrics;
    ngx_oauth2_metrics_up = 0;

    ngx_oauth2_metrics_publish_up();
}


/*
 * A request's decision, once per request (an internal redirect decides
 * again: the first decision counts).  The token's source and the reason
 * a token was not validated follow from the ctx, as the handler leaves
 * it:
 *
 *   no token, or not one of RFC 6750      missing, malformed
 *   source jwt, refused, Redis not asked   jwt_invalid (header,
 *                                           signature, claims)
 *   source cache, refused                  jwt_invalid (the location's
 *                                           issuer or audience)
 *   source jwt, refused by Redis           revoked
 *   source redis, refused                  unknown (not in Redis,
 *                                           expired there, or an invalid
 *                                           record)
 *   503 while Redis was needed to validate store_unavailable
 */

void
ngx_oauth2_metrics_decision(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_ctx_t *ctx)
{
    ngx_uint_t                    o, reason, slot;
    ngx_oauth2_plan_t            *plan;
    ngx_oauth2_metrics_t         *m;
    ngx_oauth2_metrics_sh_t      *sh;
    ngx_http_oauth2_main_conf_t  *omcf;

    m = ngx_oauth2_metrics;

    if (m == NULL || ctx->counted) {
        return;
    }

    ctx->counted = 1;
    sh = m->sh;
    reason = NGX_OAUTH2_M_REASONS;

    switch (ctx->outcome) {

    case NGX_OAUTH2_OK:
        o = NGX_OAUTH2_M_ALLOWED;
        break;

    case NGX_OAUTH2_MISSING_TOKEN:
        o = NGX_OAUTH2_M_INVALID_TOKEN;
        reason = NGX_OAUTH2_M_MISSING;
        break;

    case NGX_OAUTH2_INVALID_REQUEST:
        o = NGX_OAUTH2_M_INVALID_REQUEST;
        reason = NGX_OAUTH2_M_MALFORMED;
        break;

    case NGX_OAUTH2_INVALID_TOKEN:
        o = NGX_OAUTH2_M_INVALID_TOKEN;

        switch (ctx->source) {
        case NGX_OAUTH2_FROM_NONE:
            reason = NGX_OAUTH2_M_MALFORMED;
            break;
        case NGX_OAUTH2_FROM_REDIS:
            reason = NGX_OAUTH2_M_UNKNOWN;
            break;
        case NGX_OAUTH2_FROM_JWT:
            reason = (ctx->need == NGX_OAUTH2_NEED_VALIDATE)
                     ? NGX_OAUTH2_M_REVOKED : NGX_OAUTH2_M_JWT_INVALID;
            break;
        default: /* NGX_OAUTH2_FROM_CACHE */
            reason = NGX_OAUTH2_M_JWT_INVALID;
            break;
        }

        break;

    case NGX_OAUTH2_INSUFFICIENT_SCOPE:
        o = NGX_OAUTH2_M_SCOPE;
        break;

    case NGX_OAUTH2_CONSENT_INVALID:
        o = NGX_OAUTH2_M_CONSENT;
        break;

    case NGX_OAUTH2_RATE_LIMITED:
        o = NGX_OAUTH2_M_RATE_LIMITED;
        break;

    case NGX_OAUTH2_STORE_UNAVAILABLE:
        o = NGX_OAUTH2_M_UNAVAILABLE;

        if (ctx->need == NGX_OAUTH2_NEED_VALIDATE) {
            reason = NGX_OAUTH2_M_NO_STORE;
        }

        break;

    default: /* NGX_OAUTH2_INTERNAL_ERROR */
        o = NGX_OAUTH2_M_INTERNAL_ERROR;
        break;
    }

    slot = m->label_slot[olcf->metrics_label];

    (void) ngx_atomic_fetch_add(&sh->requests[slot][o], 1);

    if (ctx->source != NGX_OAUTH2_FROM_NONE) {
        (void) ngx_atomic_fetch_add(&sh->sources[ctx->source - 1], 1);
    }

    if (reason != NGX_OAUTH2_M_REASONS) {
        (void) ngx_atomic_fetch_add(&sh->failures[reason], 1);
    }

    if (o == NGX_OAUTH2_M_RATE_LIMITED && ctx->rl.plan) {
        omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);
        plan = omcf->plans->elts;
        slot = m->plan_slot[ctx->rl.plan - plan];

        (void) ngx_atomic_fetch_add(&sh->rate_limited[slot], 1);
    }
}


/* oauth2_rate_limit_fallback taken: NGX_OAUTH2_RL_FALLBACK_* */

void
ngx_oauth2_metrics_fallback(ngx_uint_t mode)
{
    ngx_oauth2_metrics_sh_t  *sh;

    if (ngx_oauth2_metrics == NULL || mode > 2) {
        return;
    }

    sh = ngx_oauth2_metrics->sh;

    (void) ngx_atomic_fetch_add(&sh->fallbacks[mode], 1);
}


/* a lookup in oauth2_cache: a record found (hit), or not */

void
ngx_oauth2_metrics_cache(ngx_uint_t hit)
{
    ngx_oauth2_metrics_sh_t  *sh;

    if (ngx_oauth2_metrics == NULL) {
        return;
    }

    sh = ngx_oauth2_metrics->sh;

    (void) ngx_atomic_fetch_add(&sh->cache[hit ? 1 : 0], 1);
}


/* a JWT's signature was checked with the key of "alg": rc NGX_OK, valid */

void
ngx_oauth2_metrics_jwt(ngx_str_t *alg, ngx_int_t rc)
{
    ngx_uint_t                a;
    ngx_oauth2_metrics_sh_t  *sh;

    if (ngx_oauth2_metrics == NULL || rc == NGX_ERROR || alg->len != 5) {
        return;
    }

    sh = ngx_oauth2_metrics->sh;

    /* HS256 ... ES512: the key's, as oauth2_jwt_key checked it */

    a = (alg->data[0] == 'H') ? 0 : (alg->data[0] == 'R') ? 3 : 6;
    a += (alg->data[2] == '2') ? 0 : (alg->data[2] == '3') ? 1 : 2;

    (void) ngx_atomic_fetch_add(&sh->jwt[a][rc == NGX_OK ? 1 : 0], 1);
}


/* a command queued on a data connection: counted, and its time taken */

void
ngx_oauth2_metrics_redis_send(ngx_oauth2_conn_t *conn,
    ngx_oauth2_redis_call_t *call)
{
    if (ngx_oauth2_metrics == NULL || conn->kind != NGX_OAUTH2_CONN_DATA) {
        return;
    }

    (void) ngx_atomic_fetch_add(&ngx_oauth2_metrics->sh->redis_commands, 1);

    call->sent = ngx_oauth2_metrics_usec();
}


/* its reply: the latency, from queued to read, and an error reply */

void
ngx_oauth2_metrics_redis_reply(ngx_oauth2_conn_t *conn,
    ngx_oauth2_redis_call_t *call, redisReply *reply)
{
    uint64_t                  usec;
    ngx_uint_t                i;
    ngx_oauth2_metrics_sh_t  *sh;

    if (ngx_oauth2_metrics == NULL || conn->kind != NGX_OAUTH2_CONN_DATA
        || call->sent == 0)
    {
        return;
    }

    sh = ngx_oauth2_metrics->sh;

    if (reply->type == REDIS_REPLY_ERROR) {
        (void) ngx_atomic_fetch_add(&sh->redis_errors[0], 1);
    }

    usec = ngx_oauth2_metrics_usec() - call->sent;

    for (i = 0; i < NGX_OAUTH2_METRICS_BUCKETS; i++) {
        if (usec <= ngx_oauth2_metrics_bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&sh->redis_buckets[i], 1);
    (void) ngx_atomic_fetch_add(&sh->redis_usec, (ngx_atomic_int_t) usec);
}


void
ngx_oauth2_metrics_redis_timeout(void)
{
    ngx_oauth2_metrics_sh_t  *sh;

    if (ngx_oauth2_metrics == NULL) {
        return;
    }

    sh = ngx_oauth2_metrics->sh;

    (void) ngx_atomic_fetch_add(&sh->redis_timeouts, 1);
}


/* a data connection is ready (again: after it was lost or failed) */

void
ngx_oauth2_metrics_redis_ready(ngx_oauth2_conn_t *conn)
{
    if (ngx_oauth2_metrics == NULL || conn->kind != NGX_OAUTH2_CONN_DATA
        || conn->state == NGX_OAUTH2_CONN_READY)
    {
        return;
    }

    if (conn->was_ready || conn->failed) {
        (void) ngx_atomic_fetch_add(&ngx_oauth2_metrics->sh->redis_reconnects,
                                    1);
    }

    ngx_oauth2_metrics_up++;
    ngx_oauth2_metrics_publish_up();
}


/* a data connection is closed, or could not be made ("failed") */

void
ngx_oauth2_metrics_redis_close(ngx_oauth2_conn_t *conn, ngx_uint_t failed)
{
    if (ngx_oauth2_metrics == NULL || conn->kind != NGX_OAUTH2_CONN_DATA) {
        return;
    }

    if (failed && !conn->redis->exiting) {
        (void) ngx_atomic_fetch_add(&ngx_oauth2_metrics->sh->redis_errors[1],
                                    1);
    }

    if (conn->state == NGX_OAUTH2_CONN_READY && ngx_oauth2_metrics_up) {
        ngx_oauth2_metrics_up--;
        ngx_oauth2_metrics_publish_up();
    }
}


/*
 * This worker's ready data connections, in its slot (ngx_worker): set,
 * not added to, so that a new worker of the same number starts from its
 * own count; a worker on its way out (a reload) leaves the slot alone.
 */

static void
ngx_oauth2_metrics_publish_up(void)
{
    if (ngx_oauth2_metrics == NULL || ngx_worker >= NGX_OAUTH2_METRICS_WORKERS
        || ngx_exiting || ngx_quit || ngx_terminate)
    {
        return;
    }

    ngx_oauth2_metrics->sh->redis_up[ngx_worker] = ngx_oauth2_metrics_up;
}


/* microseconds of a clock that does not jump; the call does not block */

static uint64_t
ngx_oauth2_metrics_usec(void)
{
#if (NGX_HAVE_CLOCK_MONOTONIC)
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + 1;
#else
    struct timeval   tv;

    ngx_gettimeofday(&tv);

    return (uint64_t) tv.tv_sec * 1000000 + tv.tv_usec + 1;
#endif
}


/* the location of oauth2_metrics: GET and HEAD */

static ngx_int_t
ngx_http_oauth2_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_chain_t                  *cl;
    ngx_oauth2_metrics_out_t      out;
    ngx_http_oauth2_loc_conf_t   *olcf;
    ngx_http_oauth2_main_conf_t  *omcf;

    static ngx_str_t  allow = ngx_string("GET, HEAD");

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_oauth2_add_header(r, "Allow", &allow, NULL) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_module);
    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);

    ngx_memzero(&out, sizeof(ngx_oauth2_metrics_out_t));

    out.request = r;
    out.last = &out.out;
    out.json = (olcf->metrics == NGX_OAUTH2_METRICS_JSON);
    out.rc = NGX_OK;

    ngx_oauth2_metrics_write(&out, omcf, omcf->metrics);

    if (out.rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (cl = out.out; cl; cl = cl->next) {
        out.len += cl->buf->last - cl->buf->pos;
    }

    if (out.json) {
        ngx_str_set(&r->headers_out.content_type, "application/json");

    } else {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = out.len;

    out.buf->last_buf = (r == r->main) ? 1 : 0;
    out.buf->last_in_chain = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, out.out);
}


/* every sample, in the same order for both formats */

static void
ngx_oauth2_metrics_write(ngx_oauth2_metrics_out_t *out,
    ngx_http_oauth2_main_conf_t *omcf, ngx_oauth2_metrics_t *m)
{
    u_char                       num[NGX_INT_T_LEN];
    u_char                       sum[NGX_ATOMIC_T_LEN + 8];
    size_t                       len;
    ngx_str_t                   *label;
    ngx_uint_t                   i, k, n, slot, workers;
    ngx_core_conf_t             *ccf;
    ngx_atomic_uint_t            count, usec;
    ngx_oauth2_plan_t           *plan;
    ngx_oauth2_metrics_sh_t     *sh;
    ngx_oauth2_metrics_label_t   lb[2];

    sh = m->sh;

    /* decisions */

    ngx_oauth2_metrics_family(out, "oauth2_requests_total", "counter",
        "Requests the access check decided, once each, by outcome "
        "(missing_token counts as invalid_token) and by the "
        "oauth2_metrics_label of the location.");

    n = omcf->metrics_labels ? omcf->metrics_labels->nelts : 0;
    label = omcf->metrics_labels ? omcf->metrics_labels->elts : NULL;

    for (k = 0; k <= n; k++) {
        slot = m->label_slot[k];

        for (i = 0; i < NGX_OAUTH2_M_OUTCOMES; i++) {
            lb[0].name = "outcome";
            lb[0].value = ngx_oauth2_metrics_outcomes[i];
            lb[1].name = "location";

            if (k) {
                lb[1].value = label[k - 1];
            }

            ngx_oauth2_metrics_sample(out, "oauth2_requests_total", lb,
                                      k ? 2 : 1, sh->requests[slot][i]);
        }
    }

    /* rate limits */

    ngx_oauth2_metrics_family(out, "oauth2_rate_limited_total", "counter",
        "Requests refused with 429, by the plan whose limit they were "
        "over.");

    n = omcf->plans ? omcf->plans->nelts : 0;
    plan = omcf->plans ? omcf->plans->elts : NULL;

    for (i = 0; i < n; i++) {
        lb[0].name = "plan";
        lb[0].value = plan[i].name;

        ngx_oauth2_metrics_sample(out, "oauth2_rate_limited_total", lb, 1,
                                  sh->rate_limited[m->plan_slot[i]]);
    }

    ngx_oauth2_metrics_family(out, "oauth2_rate_limit_fallbacks_total",
        "counter",
        "Requests whose rate limit Redis could not count, by the "
        "oauth2_rate_limit_fallback mode that decided instead.");

    for (i = 0; i < 3; i++) {
        lb[0].name = "mode";
        lb[0].value = ngx_oauth2_metrics_modes[i];

        ngx_oauth2_metrics_sample(out, "oauth2_rate_limit_fallbacks_total",
                                  lb, 1, sh->fallbacks[i]);
    }

    /* tokens */

    ngx_oauth2_metrics_family(out, "oauth2_token_source_total", "counter",
        "Tokens checked, by where their record came from: the cache, "
        "a JWT verified in nginx, a Redis lookup.");

    for (i = 0; i < 3; i++) {
        lb[0].name = "source";
        lb[0].value = ngx_oauth2_metrics_sources[i];

        ngx_oauth2_metrics_sample(out, "oauth2_token_source_total", lb, 1,
                                  sh->sources[i]);
    }

    ngx_oauth2_metrics_family(out, "oauth2_token_failures_total", "counter",
        "Requests whose token was not validated, by reason.");

    for (i = 0; i < NGX_OAUTH2_M_REASONS; i++) {
        lb[0].name = "reason";
        lb[0].value = ngx_oauth2_metrics_reasons[i];

        ngx_oauth2_metrics_sample(out, "oauth2_token_failures_total", lb, 1,
                                  sh->failures[i]);
    }

    ngx_oauth2_metrics_family(out, "oauth2_jwt_verifications_total",
        "counter",
        "JWT signatures checked, by the key's algorithm and result (an "
        "algorithm is shown once a signature of it was checked).");

    for (i = 0; i < NGX_OAUTH2_METRICS_ALGS; i++) {
        if (sh->jwt[i][0] == 0 && sh->jwt[i][1] == 0) {
            continue;
        }

        lb[0].name = "alg";
        lb[0].value = ngx_oauth2_metrics_algs[i];
        lb[1].name = "result";

        ngx_str_set(&lb[1].value, "valid");
        ngx_oauth2_metrics_sample(out, "oauth2_jwt_verifications_total", lb,
                                  2, sh->jwt[i][1]);

        ngx_str_set(&lb[1].value, "invalid");
        ngx_oauth2_metrics_sample(out, "oauth2_jwt_verifications_total", lb,
                                  2, sh->jwt[i][0]);
    }

    /* the zones */

    if (omcf->cache) {
        ngx_oauth2_metrics_family(out, "oauth2_cache_lookups_total",
            "counter", "Lookups of tokens in oauth2_cache, by result.");

        lb[0].name = "result";
        ngx_str_set(&lb[0].value, "hit");
        ngx_oauth2_metrics_sample(out, "oauth2_cache_lookups_total", lb, 1,
                                  sh->cache[1]);

        ngx_str_set(&lb[0].value, "miss");
        ngx_oauth2_metrics_sample(out, "oauth2_cache_lookups_total", lb, 1,
                                  sh->cache[0]);

        ngx_oauth2_metrics_zone_samples(out, "oauth2_cache",
                                        "token records in oauth2_cache",
                                        ngx_oauth2_cache_zone(omcf->cache));
    }

    if (omcf->counters) {
        ngx_oauth2_metrics_zone_samples(out, "oauth2_rate_limit_zone",
                                        "local rate-limit counters in "
                                        "oauth2_rate_limit_zone",
                                        omcf->counters);
    }

    /* Redis */

    ngx_oauth2_metrics_family(out, "oauth2_redis_commands_total", "counter",
        "Commands sent to Redis on the data connections (the calls of "
        "requests and each connection's set-up).");
    ngx_oauth2_metrics_sample(out, "oauth2_redis_commands_total", NULL, 0,
                              sh->redis_commands);

    ngx_oauth2_metrics_family(out, "oauth2_redis_errors_total", "counter",
        "Error replies of Redis (type reply), and data connections that "
        "failed or were lost (type connection).");

    lb[0].name = "type";
    ngx_str_set(&lb[0].value, "reply");
    ngx_oauth2_metrics_sample(out, "oauth2_redis_errors_total", lb, 1,
                              sh->redis_errors[0]);

    ngx_str_set(&lb[0].value, "connection");
    ngx_oauth2_metrics_sample(out, "oauth2_redis_errors_total", lb, 1,
                              sh->redis_errors[1]);

    ngx_oauth2_metrics_family(out, "oauth2_redis_timeouts_total", "counter",
        "Calls Redis did not answer within oauth2_redis_timeout.");
    ngx_oauth2_metrics_sample(out, "oauth2_redis_timeouts_total", NULL, 0,
                              sh->redis_timeouts);

    ngx_oauth2_metrics_family(out, "oauth2_redis_reconnects_total",
        "counter",
        "Data connections made again after they were lost or failed.");
    ngx_oauth2_metrics_sample(out, "oauth2_redis_reconnects_total", NULL, 0,
                              sh->redis_reconnects);

    ngx_oauth2_metrics_family(out, "oauth2_redis_connections_up", "gauge",
        "Data connections to Redis ready in each worker, of "
        "oauth2_redis_connections.");

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);

    workers = (ngx_process == NGX_PROCESS_SINGLE) ? 1
                                                  : ccf->worker_processes;
    workers = ngx_min(workers, NGX_OAUTH2_METRICS_WORKERS);

    for (i = 0; i < workers; i++) {
        lb[0].name = "worker";
        lb[0].value.data = num;
        lb[0].value.len = ngx_sprintf(num, "%ui", i) - num;

        ngx_oauth2_metrics_sample(out, "oauth2_redis_connections_up", lb, 1,
                                  sh->redis_up[i]);
    }

    ngx_oauth2_metrics_family(out, "oauth2_redis_connections_per_worker",
        "gauge", "oauth2_redis_connections: the data connections each "
        "worker keeps (0: no location uses Redis).");
    ngx_oauth2_metrics_sample(out, "oauth2_redis_connections_per_worker",
                              NULL, 0,
                              omcf->used ? omcf->redis.connections : 0);

    ngx_oauth2_metrics_family(out, "oauth2_redis_duration_seconds",
        "histogram",
        "Time from a command queued to its reply read, clock_gettime "
        "resolution (commands never answered are not in it).");

    count = 0;

    for (i = 0; i <= NGX_OAUTH2_METRICS_BUCKETS; i++) {
        count += sh->redis_buckets[i];

        lb[0].name = "le";
        lb[0].value = ngx_oauth2_metrics_le[i];

        ngx_oauth2_metrics_sample(out, "oauth2_redis_duration_seconds_bucket",
                                  lb, 1, count);
    }

    usec = sh->redis_usec;
    len = ngx_sprintf(sum, "%uA.%06uA", usec / 1000000, usec % 1000000)
          - sum;

    ngx_oauth2_metrics_value(out, "oauth2_redis_duration_seconds_sum", NULL,
                             0, sum, len);
    ngx_oauth2_metrics_sample(out, "oauth2_redis_duration_seconds_count",
                              NULL, 0, count);

    if (out->json) {
        ngx_oauth2_metrics_value(out, NULL, NULL, 0, NULL, 0);
    }
}


/* entries, evictions and no-room events of a zone of ngx_oauth2_zone.c */

static void
ngx_oauth2_metrics_zone_samples(ngx_oauth2_metrics_out_t *out, char *prefix,
    char *help, ngx_oauth2_zone_t *zone)
{
    u_char             name[64], text[128];
    ngx_atomic_uint_t  entries, evicted, nomem;

    ngx_oauth2_zone_lock(zone);

    entries = zone->sh->entries;
    evicted = zone->sh->evicted;
    nomem = zone->sh->nomem;

    ngx_oauth2_zone_unlock(zone);

    ngx_sprintf(name, "%s_entries%Z", prefix);
    ngx_sprintf(text, "Entries: %s.%Z", help);
    ngx_oauth2_metrics_family(out, (char *) name, "gauge", (char *) text);
    ngx_oauth2_metrics_sample(out, (char *) name, NULL, 0, entries);

    ngx_sprintf(name, "%s_evictions_total%Z", prefix);
    ngx_sprintf(text, "Least recently used entries dropped to make room: "
                "%s.%Z", help);
    ngx_oauth2_metrics_family(out, (char *) name, "counter", (char *) text);
    ngx_oauth2_metrics_sample(out, (char *) name, NULL, 0, evicted);

    ngx_sprintf(name, "%s_no_room_total%Z", prefix);
    ngx_sprintf(text, "Entries not stored, no room even after evictions: "
                "%s.%Z", help);
    ngx_oauth2_metrics_family(out, (char *) name, "counter", (char *) text);
    ngx_oauth2_metrics_sample(out, (char *) name, NULL, 0, nomem);
}


static void
ngx_oauth2_metrics_family(ngx_oauth2_metrics_out_t *out, char *name,
    char *type, char *help)
{
    u_char  *p;

    if (out->json) {
        return;
    }

    p = ngx_oauth2_metrics_room(out, 512);
    if (p == NULL) {
        return;
    }

    out->buf->last = ngx_snprintf(p, 512, "# HELP %s %s\n# TYPE %s %s\n",
                                  name, help, name, type);
}


static void
ngx_oauth2_metrics_sample(ngx_oauth2_metrics_out_t *out, char *name,
    ngx_oauth2_metrics_label_t *labels, ngx_uint_t n, ngx_atomic_uint_t value)
{
    u_char  num[NGX_ATOMIC_T_LEN];

    ngx_oauth2_metrics_value(out, name, labels, n, num,
                             ngx_sprintf(num, "%uA", value) - num);
}


/*
 * One sample.  Text: name{label="value",...} value.  JSON: the samples of
 * one name are a key, its value a number, or with labels an array of
 * objects: {"label":"value",...,"value":number}.  Label values need no
 * escaping: the outcomes, reasons, algorithms and workers are ours, plans
 * are letters, digits, "_" and "-", and oauth2_metrics_label refuses
 * quotes, backslashes and control characters.  name NULL ends the JSON.
 */

static void
ngx_oauth2_metrics_value(ngx_oauth2_metrics_out_t *out, char *name,
    ngx_oauth2_metrics_label_t *labels, ngx_uint_t n, u_char *value,
    size_t len)
{
    u_char      *p;
    size_t       nlen;
    ngx_uint_t   i;

    p = ngx_oauth2_metrics_room(out, 1024);
    if (p == NULL) {
        return;
    }

    if (!out->json) {
        p = ngx_sprintf(p, "%s", name);

        for (i = 0; i < n; i++) {
            p = ngx_sprintf(p, "%c%s=\"%V\"", i ? ',' : '{', labels[i].name,
                            &labels[i].value);
        }

        out->buf->last = ngx_sprintf(p, "%s %*s\n", n ? "}" : "", len,
                                     value);
        return;
    }

    nlen = name ? ngx_strlen(name) : 0;

    if (name == NULL || nlen != out->key_len
        || ngx_strncmp(name, out->key, nlen) != 0)
    {
        /* another key: the last one closed */

        if (out->key_len == 0) {
            *p++ = '{';

        } else if (out->array) {
            *p++ = ']';
        }

        if (name == NULL) {
            out->buf->last = ngx_sprintf(p, "\n}\n");
            return;
        }

        p = ngx_sprintf(p, "%s\n\"%s\":%s", out->key_len ? "," : "", name,
                        n ? "[" : "");

        nlen = ngx_min(nlen, sizeof(out->key));
        ngx_memcpy(out->key, name, nlen);
        out->key_len = nlen;
        out->array = (n != 0);
        out->first = 1;
    }

    if (n == 0) {
        out->buf->last = ngx_sprintf(p, "%*s", len, value);
        return;
    }

    p = ngx_sprintf(p, "%s{", out->first ? "" : ",");
    out->first = 0;

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "\"%s\":\"%V\",", labels[i].name,
                        &labels[i].value);
    }

    out->buf->last = ngx_sprintf(p, "\"value\":%*s}", len, value);
}


/* room for "size" bytes at the end of the response, or NULL */

static u_char *
ngx_oauth2_metrics_room(ngx_oauth2_metrics_out_t *out, size_t size)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (out->rc != NGX_OK) {
        return NULL;
    }

    b = out->buf;

    if (b && (size_t) (b->end - b->last) >= size) {
        return b->last;
    }

    b = ngx_create_temp_buf(out->request->pool, 16384);
    cl = ngx_alloc_chain_link(out->request->pool);

    if (b == NULL || cl == NULL) {
        out->rc = NGX_ERROR;
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;
    *out->last = cl;
    out->last = &cl->next;
    out->buf = b;

    return b->last;
}
