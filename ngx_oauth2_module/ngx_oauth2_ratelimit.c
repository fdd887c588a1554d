
/*
 * ngx_oauth2_module: per-plan rate limits.
 *
 * The limits are counted in Redis by a GCRA (generic cell rate algorithm,
 * lua/gcra.lua) on Redis server time, inside the same script call as the
 * token lookup.  This file holds the configuration of the plans, the
 * choice of a token's plan, the response headers, and the local count
 * used while Redis cannot be reached (ngx_oauth2_counters.c, with the
 * algorithm's C definition, ngx_oauth2_gcra.c).
 */


#include "ngx_http_oauth2_module.h"


static ngx_int_t ngx_oauth2_parse_limit(ngx_str_t *s,
    ngx_oauth2_limit_t *limit);
static ngx_int_t ngx_oauth2_plan_args(ngx_conf_t *cf, ngx_array_t *args,
    ngx_oauth2_plan_t *plan);


/* oauth2_plan NAME LIMIT [LIMIT ...]; LIMIT: 100r/s, 6000r/m, r/h, r/d */

char *
ngx_http_oauth2_plan_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_main_conf_t *omcf = conf;

    u_char              *p;
    ngx_str_t           *value;
    ngx_uint_t           i;
    ngx_oauth2_plan_t   *plan;
    ngx_oauth2_limit_t  *limit;

    value = cf->args->elts;

    if (!ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_PLAN, &value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid plan name \"%V\" in \"oauth2_plan\": "
                           "letters, digits, \"_\" and \"-\" only, "
                           "64 at most", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (omcf->plans == NULL) {
        omcf->plans = ngx_array_create(cf->pool, 4,
                                       sizeof(ngx_oauth2_plan_t));
        if (omcf->plans == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    plan = omcf->plans->elts;

    for (i = 0; i < omcf->plans->nelts; i++) {
        if (plan[i].name.len == value[1].len
            && ngx_strncmp(plan[i].name.data, value[1].data,
                           value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate \"oauth2_plan\" \"%V\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (cf->args->nelts - 2 > NGX_OAUTH2_MAX_LIMITS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_plan\" \"%V\" has more than %d limits",
                           &value[1], NGX_OAUTH2_MAX_LIMITS);
        return NGX_CONF_ERROR;
    }

    plan = ngx_array_push(omcf->plans);
    if (plan == NULL) {
        return NGX_CONF_ERROR;
    }

    plan->name = value[1];
    plan->limits = ngx_array_create(cf->pool, cf->args->nelts - 2,
                                    sizeof(ngx_oauth2_limit_t));
    if (plan->limits == NULL) {
        return NGX_CONF_ERROR;
    }

    plan->spec.data = ngx_pnalloc(cf->pool,
                                  (cf->args->nelts - 2)
                                  * (2 * NGX_INT64_LEN + 2));
    if (plan->spec.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = plan->spec.data;

    for (i = 2; i < cf->args->nelts; i++) {

        limit = ngx_array_push(plan->limits);
        if (limit == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ngx_oauth2_parse_limit(&value[i], limit) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid limit \"%V\" in \"oauth2_plan\" "
                               "\"%V\": N r/s, r/m, r/h or r/d expected, "
                               "e.g. 100r/m, and 1000000r/s at most",
                               &value[i], &value[1]);
            return NGX_CONF_ERROR;
        }

        /* for the script: count and period in microseconds */

        if (p != plan->spec.data) {
            *p++ = ' ';
        }

        p = ngx_sprintf(p, "%ui %uL", limit->count,
                        (uint64_t) limit->period * 1000);
    }

    plan->spec.len = p - plan->spec.data;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_oauth2_parse_limit(ngx_str_t *s, ngx_oauth2_limit_t *limit)
{
    u_char     *p, *end;
    ngx_int_t   n;

    p = s->data;
    end = p + s->len;

    while (p < end && *p >= '0' && *p <= '9') {
        p++;
    }

    if (p == s->data || end - p != 3 || p[0] != 'r' || p[1] != '/') {
        return NGX_ERROR;
    }

    n = ngx_atoi(s->data, p - s->data);

    if (n == NGX_ERROR || n == 0 || n > 1000000000) {
        return NGX_ERROR;
    }

    limit->count = n;

    switch (p[2]) {
    case 's':
        limit->period = 1000;
        break;
    case 'm':
        limit->period = 60 * 1000;
        break;
    case 'h':
        limit->period = 3600 * 1000;
        break;
    case 'd':
        limit->period = 86400 * 1000;
        break;
    default:
        return NGX_ERROR;
    }

    /* one request per microsecond at most: the counters' resolution */

    if ((uint64_t) limit->count > (uint64_t) limit->period * 1000) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a plan's arguments for the scripts: name, number of limits, limits */

static ngx_int_t
ngx_oauth2_plan_args(ngx_conf_t *cf, ngx_array_t *args,
    ngx_oauth2_plan_t *plan)
{
    u_char              *p;
    ngx_str_t           *a;
    ngx_uint_t           i, first;
    ngx_oauth2_limit_t  *limit;

    limit = plan->limits->elts;

    a = ngx_array_push_n(args, 2 + 2 * plan->limits->nelts);
    if (a == NULL) {
        return NGX_ERROR;
    }

    first = args->nelts - 2 - 2 * plan->limits->nelts;

    p = ngx_pnalloc(cf->pool, (1 + 2 * plan->limits->nelts) * NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    a[0] = plan->name;

    a[1].data = p;
    a[1].len = ngx_sprintf(p, "%ui", plan->limits->nelts) - p;
    p += a[1].len;

    for (i = 0; i < plan->limits->nelts; i++) {
        a[2 + 2 * i].data = p;
        a[2 + 2 * i].len = ngx_sprintf(p, "%ui", limit[i].count) - p;
        p += a[2 + 2 * i].len;

        a[3 + 2 * i].data = p;
        a[3 + 2 * i].len = ngx_sprintf(p, "%uL",
                                       (uint64_t) limit[i].period * 1000)
                           - p;
        p += a[3 + 2 * i].len;
    }

    /* the same, from the number of limits on, for the rate-limit script */

    plan->first = first + 1;
    plan->nargs = 1 + 2 * plan->limits->nelts;

    return NGX_OK;
}


/* the default plan, and every plan in one string for the lookup script */

char *
ngx_oauth2_ratelimit_init_main(ngx_conf_t *cf,
    ngx_http_oauth2_main_conf_t *omcf)
{
    ngx_uint_t          i;
    ngx_oauth2_plan_t  *plan;

    if (omcf->plans == NULL) {
        if (omcf->default_plan_name.len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_default_plan\" \"%V\" is not "
                               "an \"oauth2_plan\"",
                               &omcf->default_plan_name);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    plan = omcf->plans->elts;

    for (i = 0; i < omcf->plans->nelts; i++) {
        if (plan[i].name.len == omcf->default_plan_name.len
            && ngx_strncmp(plan[i].name.data, omcf->default_plan_name.data,
                           plan[i].name.len) == 0)
        {
            omcf->default_plan = &plan[i];
        }
    }

    if (omcf->default_plan_name.len && omcf->default_plan == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_default_plan\" \"%V\" is not "
                           "an \"oauth2_plan\"", &omcf->default_plan_name);
        return NGX_CONF_ERROR;
    }

    /*
     * every plan, as the scripts take them in ARGV: its name, its number
     * of limits, count and period_usec of each: "gold" "2" "6000"
     * "60000000" "200" "1000000" "silver" "1" "100" "60000000"
     */

    omcf->plans_args = ngx_array_create(cf->pool, 16, sizeof(ngx_str_t));
    if (omcf->plans_args == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < omcf->plans->nelts; i++) {
        if (ngx_oauth2_plan_args(cf, omcf->plans_args, &plan[i])
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    /* the array has stopped moving */

    for (i = 0; i < omcf->plans->nelts; i++) {
        plan[i].args = (ngx_str_t *) omcf->plans_args->elts + plan[i].first;
    }

    return NGX_CONF_OK;
}


/*
 * The plan a token's record names, or the default plan; a name that is
 * not configured is logged once per name and worker.
 */

ngx_oauth2_plan_t *
ngx_oauth2_ratelimit_plan(ngx_http_request_t *r,
    ngx_http_oauth2_main_conf_t *omcf, ngx_str_t *name)
{
    ngx_str_t          *w;
    ngx_uint_t          i;
    ngx_oauth2_plan_t  *plan;

    if (omcf->plans == NULL) {
        return NULL;
    }

    if (name->len == 0) {
        return omcf->default_plan;
    }

    plan = omcf->plans->elts;

    for (i = 0; i < omcf->plans->nelts; i++) {
        if (plan[i].name.len == name->len
            && ngx_strncmp(plan[i].name.data, name->data, name->len) == 0)
        {
            return &plan[i];
        }
    }

    if (ngx_oauth2_worker.warned_plans == NULL) {
        ngx_oauth2_worker.warned_plans = ngx_array_create(ngx_cycle->pool, 4,
                                              sizeof(ngx_str_t));
        if (ngx_oauth2_worker.warned_plans == NULL) {
            return omcf->default_plan;
        }
    }

    w = ngx_oauth2_worker.warned_plans->elts;

    for (i = 0; i < ngx_oauth2_worker.warned_plans->nelts; i++) {
        if (w[i].len == name->len
            && ngx_strncmp(w[i].data, name->data, name->len) == 0)
        {
            return omcf->default_plan;
        }
    }

    if (ngx_oauth2_worker.warned_plans->nelts == 64) {
        return omcf->default_plan;
    }

    w = ngx_array_push(ngx_oauth2_worker.warned_plans);
    if (w == NULL) {
        return omcf->default_plan;
    }

    w->data = ngx_pstrdup(ngx_cycle->pool, name);
    w->len = w->data ? name->len : 0;

    if (ngx_oauth2_worker.warned_plans->nelts == 64) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "oauth2: 64 unknown plan names seen, the next ones "
                      "are not logged");
    }

    if (omcf->default_plan) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "oauth2: plan \"%V\" is not configured, the default "
                      "plan \"%V\" applies (logged once per worker)",
                      name, &omcf->default_plan->name);

    } else {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "oauth2: plan \"%V\" is not configured and there is "
                      "no \"oauth2_default_plan\": not rate limited "
                      "(logged once per worker)", name);
    }

    return omcf->default_plan;
}


/* oauth2_rate_limit_fallback local: this node alone, in shared memory */

ngx_int_t
ngx_oauth2_ratelimit_local(ngx_http_request_t *r,
    ngx_http_oauth2_main_conf_t *omcf, ngx_http_oauth2_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t   key;

    if (omcf->counters == NULL || ctx->rl.plan == NULL) {
        return NGX_DECLINED;
    }

    /* the limits are in the key: a reload that changes them starts anew */

    key.len = ctx->record.client_id.len + 1 + ctx->rl.plan->name.len + 1
              + ctx->rl.plan->spec.len;
    key.data = ngx_pnalloc(r->pool, key.len);
    if (key.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(key.data, ctx->record.client_id.data,
                   ctx->record.client_id.len);
    *p++ = '\0';
    p = ngx_cpymem(p, ctx->rl.plan->name.data, ctx->rl.plan->name.len);
    *p++ = '\0';
    ngx_memcpy(p, ctx->rl.plan->spec.data, ctx->rl.plan->spec.len);

    return ngx_oauth2_counters_gcra(omcf->counters, &key, ctx->rl.plan,
                                    &ctx->rl);
}


static ngx_int_t
ngx_oauth2_push_header(ngx_http_request_t *r, char *name, u_char *start,
    u_char *end)
{
    ngx_str_t  value;

    value.data = start;
    value.len = end - start;

    return ngx_oauth2_add_header(r, name, &value, NULL);
}


/* a decimal number: what ngx_sprintf() would write, at a tenth of its cost */

static u_char *
ngx_oauth2_decimal(u_char *p, uint64_t n)
{
    u_char  *b, buf[NGX_INT64_LEN];

    b = buf + NGX_INT64_LEN;

    do {
        *--b = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, b, buf + NGX_INT64_LEN - b);
}


/*
 * RateLimit-Policy: "gold";q=6000;w=60        (draft-ietf-httpapi-
 * RateLimit: "gold";r=17;t=42                  ratelimit-headers-09)
 * X-RateLimit-Limit, -Remaining, -Reset: of the tightest limit, the same
 * numbers (the same bytes)
 */

ngx_int_t
ngx_oauth2_ratelimit_headers(ngx_http_request_t *r,
    ngx_http_oauth2_ctx_t *ctx)
{
    u_char              *p, *policy, *policy_end, *q, *q_end, *current,
                        *rem, *rem_end, *t;
    ngx_oauth2_rl_t     *rl;
    ngx_oauth2_limit_t  *limit;

    rl = &ctx->rl;

    if (rl->plan == NULL || rl->state == NGX_OAUTH2_RL_NONE
        || rl->limit >= rl->plan->limits->nelts)
    {
        return NGX_OK;
    }

    limit = rl->plan->limits->elts;
    limit = &limit[rl->limit];

    p = ngx_pnalloc(r->pool, 2 * (rl->plan->name.len + 2 * NGX_INT64_LEN
                                  + sizeof("\"\";q=;w=-") - 1));
    if (p == NULL) {
        return NGX_ERROR;
    }

    /* the two strings first, then the headers, in this order */

    policy = p;
    *p++ = '"';
    p = ngx_cpymem(p, rl->plan->name.data, rl->plan->name.len);
    p = ngx_cpymem(p, "\";q=", sizeof("\";q=") - 1);
    q = p;
    p = ngx_oauth2_decimal(p, limit->count);
    q_end = p;
    p = ngx_cpymem(p, ";w=", sizeof(";w=") - 1);
    p = ngx_oauth2_decimal(p, limit->period / 1000);
    policy_end = p;

    current = p;
    *p++ = '"';
    p = ngx_cpymem(p, rl->plan->name.data, rl->plan->name.len);
    p = ngx_cpymem(p, "\";r=", sizeof("\";r=") - 1);
    rem = p;

    if (rl->remaining < 0) {
        *p++ = '-';
        p = ngx_oauth2_decimal(p, (uint64_t) 0 - (uint64_t) rl->remaining);

    } else {
        p = ngx_oauth2_decimal(p, (uint64_t) rl->remaining);
    }

    rem_end = p;
    p = ngx_cpymem(p, ";t=", sizeof(";t=") - 1);
    t = p;
    p = ngx_oauth2_decimal(p, rl->reset);

    if (ngx_oauth2_push_header(r, "RateLimit-Policy", policy, policy_end)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_oauth2_push_header(r, "RateLimit", current, p) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_oauth2_push_header(r, "X-RateLimit-Limit", q, q_end) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_oauth2_push_header(r, "X-RateLimit-Remaining", rem, rem_end)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_oauth2_push_header(r, "X-RateLimit-Reset", t, p);
}
