
/*
 * ngx_oauth2_module: the one gate between what comes from outside (a
 * Redis record, the claims of a JWT) and what the module decides on or
 * hands on (variables, headers, log lines).
 *
 * The grammar of each field, the expiry, the scopes and the consent are
 * defined here, once.  lua/gate.lua repeats the same rules in Redis, so
 * that a script counts only requests that nginx lets through;
 * t/012-gate.t runs one table of vectors through both.
 */


#include "ngx_http_oauth2_module.h"

#include <hiredis/hiredis.h>


static ngx_int_t ngx_oauth2_record_field(ngx_oauth2_record_t *rec,
    ngx_str_t *value, ngx_uint_t grammar, ngx_log_t *log, const char *name);
static ngx_int_t ngx_oauth2_reply_limit(ngx_http_oauth2_ctx_t *ctx,
    redisReply **e, size_t n);


/*
 * client_id, consent_id, sub, jti: 1 to 255 visible ASCII characters
 * (%x21-7E): no space, no control character, nothing that could end a
 * header line; '"' and '\' are visible characters and pass (a log line
 * quotes such a field as it is)
 */
#define NGX_OAUTH2_IDENT_MAX   255

/* scope: RFC 6749 3.3 scope-tokens and spaces, 4096 bytes at most */
#define NGX_OAUTH2_SCOPE_MAX   4096

/* plan: the name of an oauth2_plan: letters, digits, "_", "-" */
#define NGX_OAUTH2_PLAN_MAX    64

/* exp of a Redis record: 1 to 15 decimal digits, exact in a double */
#define NGX_OAUTH2_EXP_DIGITS  15


ngx_uint_t
ngx_oauth2_field_valid(ngx_uint_t grammar, ngx_str_t *s)
{
    u_char  *p, *end;
    size_t   max;

    switch (grammar) {
    case NGX_OAUTH2_FIELD_SCOPE:
        max = NGX_OAUTH2_SCOPE_MAX;
        break;
    case NGX_OAUTH2_FIELD_PLAN:
        max = NGX_OAUTH2_PLAN_MAX;
        break;
    default:
        max = NGX_OAUTH2_IDENT_MAX;
        break;
    }

    if (s->len > max || (s->len == 0 && grammar != NGX_OAUTH2_FIELD_SCOPE)) {
        return 0;
    }

    if (s->len == 0) {
        /* an empty scope: s->data may be NULL, which takes no offset */
        return 1;
    }

    end = s->data + s->len;

    for (p = s->data; p < end; p++) {

        switch (grammar) {

        case NGX_OAUTH2_FIELD_SCOPE:
            /* scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), and SP */
            if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\') {
                return 0;
            }
            break;

        case NGX_OAUTH2_FIELD_SCOPE_TOKEN:
            if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\') {
                return 0;
            }
            break;

        case NGX_OAUTH2_FIELD_PLAN:
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                  || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            {
                return 0;
            }
            break;

        default: /* NGX_OAUTH2_FIELD_IDENT */
            if (*p < 0x21 || *p > 0x7e) {
                return 0;
            }
            break;
        }
    }

    return 1;
}


/*
 * A record's fields before anything is decided on them; rec->name names
 * the token in log lines.  NGX_DECLINED: the record is refused, the
 * token is invalid.
 */

ngx_int_t
ngx_oauth2_record_gate(ngx_oauth2_record_t *rec, ngx_log_t *log)
{
    if (rec->client_id.len == 0) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "oauth2: %s%V has no client_id, token refused",
                      rec->jwt ? "" : "record of ", &rec->name);
        return NGX_DECLINED;
    }

    if (ngx_oauth2_record_field(rec, &rec->client_id, NGX_OAUTH2_FIELD_IDENT,
                                log, "client_id") != NGX_OK
        || ngx_oauth2_record_field(rec, &rec->scope, NGX_OAUTH2_FIELD_SCOPE,
                                   log, "scope") != NGX_OK
        || ngx_oauth2_record_field(rec, &rec->plan, NGX_OAUTH2_FIELD_PLAN,
                                   log, "plan") != NGX_OK
        || ngx_oauth2_record_field(rec, &rec->consent_id,
                                   NGX_OAUTH2_FIELD_IDENT, log, "consent_id")
           != NGX_OK
        || ngx_oauth2_record_field(rec, &rec->sub, NGX_OAUTH2_FIELD_IDENT,
                                   log, "sub") != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ngx_oauth2_record_consent(rec);

    return NGX_OK;
}


/* an empty consent id is no consent: nothing to look up, never valid */

void
ngx_oauth2_record_consent(ngx_oauth2_record_t *rec)
{
    rec->consent_valid = (rec->consent_id.len
                          && rec->consent_status.len == 5
                          && ngx_strncmp(rec->consent_status.data,
                                         "valid", 5) == 0);

    /*
     * any other status is only logged, escaped, and no more than its
     * first NGX_OAUTH2_ESCAPE_MAX bytes: it is not cached at any length
     */

    if (rec->consent_status.len > NGX_OAUTH2_ESCAPE_MAX + 1) {
        rec->consent_status.len = NGX_OAUTH2_ESCAPE_MAX + 1;
    }
}


/* an optional field: empty or absent is fine, else its grammar */

static ngx_int_t
ngx_oauth2_record_field(ngx_oauth2_record_t *rec, ngx_str_t *value,
    ngx_uint_t grammar, ngx_log_t *log, const char *name)
{
    ngx_str_t  esc;
    u_char     buf[NGX_OAUTH2_ESCAPE_LEN];

    if (value->len == 0 || ngx_oauth2_field_valid(grammar, value)) {
        return NGX_OK;
    }

    esc.data = buf;
    esc.len = ngx_oauth2_escape(buf, value);

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "oauth2: %s%V has a %s of %uz bytes that is not allowed "
                  "(\"%V\"), token refused", rec->jwt ? "" : "record of ",
                  &rec->name, name, value->len, &esc);

    return NGX_DECLINED;
}


/*
 * The exp field of a Redis record: absent or empty (no expiry but the
 * key's TTL), or 1 to 15 decimal digits.  Anything else, a sign, a
 * space, 16 digits or more, refuses the token.
 */

ngx_int_t
ngx_oauth2_record_exp(ngx_str_t *value, time_t *exp)
{
    if (value->len == 0) {
        *exp = 0;
        return NGX_OK;
    }

    if (value->len > NGX_OAUTH2_EXP_DIGITS) {
        return NGX_DECLINED;
    }

    *exp = ngx_atotm(value->data, value->len);

    if (*exp == NGX_ERROR) {
        return NGX_DECLINED;
    }

    if (*exp == 0) {
        /* 0 stands for "no exp" in a record: the epoch is as past as 1 */
        *exp = 1;
    }

    return NGX_OK;
}


/*
 * Expiry, scopes and consent of a record that passed the gate, for the
 * location, at "now" (the clock the Redis script was given, when a
 * script took part, so that both decide alike).
 */

ngx_oauth2_outcome_e
ngx_oauth2_record_check(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_oauth2_record_t *rec, time_t now)
{
    u_char       buf[NGX_OAUTH2_ESCAPE_LEN];
    ngx_str_t   *s, esc;
    ngx_uint_t   i;

    if (rec->expires && rec->expires <= now) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: %V of client \"%V\" has expired",
                      &rec->name, &rec->client_id);
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
            esc.data = buf;
            esc.len = ngx_oauth2_escape(buf, &rec->consent_status);

            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: consent \"%V\" of client \"%V\" is not "
                          "valid (status \"%V\")", &rec->consent_id,
                          &rec->client_id, &esc);
        }

        return NGX_OAUTH2_CONSENT_INVALID;
    }

    return NGX_OAUTH2_OK;
}


/* is "scope" one of the space-delimited scopes in "granted" */

ngx_int_t
ngx_oauth2_scope_has(ngx_str_t *granted, ngx_str_t *scope)
{
    u_char  *p, *end, *start;

    if (granted->len == 0) {
        return 0;
    }

    p = granted->data;
    end = p + granted->len;

    while (p < end) {

        while (p < end && *p == ' ') {
            p++;
        }

        start = p;

        while (p < end && *p != ' ') {
            p++;
        }

        if ((size_t) (p - start) == scope->len
            && ngx_memcmp(start, scope->data, scope->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * A value from outside, made safe for a log line, a header or a
 * variable: control characters, DEL, bytes above 0x7f, '"' and '\' are
 * written as \xHH, as nginx's access log does.
 */

#define ngx_oauth2_escaped(c)                                                 \
    ((c) < 0x20 || (c) > 0x7e || (c) == '"' || (c) == '\\')


static u_char *
ngx_oauth2_escape_bytes(u_char *dst, u_char *src, size_t len)
{
    u_char  *end;

    static u_char  hex[] = "0123456789ABCDEF";

    if (len == 0) {
        /* src may be NULL */
        return dst;
    }

    for (end = src + len; src < end; src++) {
        if (ngx_oauth2_escaped(*src)) {
            *dst++ = '\\';
            *dst++ = 'x';
            *dst++ = hex[*src >> 4];
            *dst++ = hex[*src & 0xf];

        } else {
            *dst++ = *src;
        }
    }

    return dst;
}


/*
 * For a log line: at most NGX_OAUTH2_ESCAPE_MAX bytes of the value, "..."
 * when there is more, into dst of NGX_OAUTH2_ESCAPE_LEN bytes.  Returns
 * the length written.
 */

size_t
ngx_oauth2_escape(u_char *dst, ngx_str_t *src)
{
    u_char  *p;

    p = ngx_oauth2_escape_bytes(dst, src->data,
                                ngx_min(src->len, NGX_OAUTH2_ESCAPE_MAX));

    if (src->len > NGX_OAUTH2_ESCAPE_MAX) {
        p = ngx_cpymem(p, "...", 3);
    }

    return p - dst;
}


/* the whole value, into the pool when it needs escaping: for variables */

ngx_int_t
ngx_oauth2_escape_pool(ngx_pool_t *pool, ngx_str_t *src, ngx_str_t *dst)
{
    u_char  *p, *s, *end;
    size_t   n;

    if (src->len == 0) {
        *dst = *src;
        return NGX_OK;
    }

    end = src->data + src->len;
    n = 0;

    for (s = src->data; s < end; s++) {
        n += ngx_oauth2_escaped(*s);
    }

    if (n == 0) {
        *dst = *src;
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, src->len + 3 * n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    /* src and dst may be the same */

    dst->len = ngx_oauth2_escape_bytes(p, src->data, src->len) - p;
    dst->data = p;

    return NGX_OK;
}


/*
 * What the scripts' replies mean: a reply becomes a record (through the
 * gate above) and a rate-limit decision.  Called with the reply of the
 * lookup, rate-limit or JWT script; util/fuzz feeds it raw RESP too.
 */

static ngx_int_t
ngx_oauth2_reply_str(ngx_pool_t *pool, redisReply *rr, ngx_str_t *s)
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
 * {state, limit index, remaining, reset s, retry s, unusable keys}, the
 * first six integers of the GCRA and lease scripts' replies; nlimits: of
 * the plan, or 0 when it is not known
 */

static ngx_int_t
ngx_oauth2_reply_gcra(redisReply **e, ngx_oauth2_rl_t *rl, ngx_uint_t nlimits)
{
    ngx_uint_t  i;

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

    if (nlimits && rl->limit >= nlimits) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The lease script's answer to a take: the GCRA's six integers, then the
 * permits taken, which are some exactly when the state is "allowed", then
 * the TAT the take wrote for each of the plan's nlimits limits, which a
 * give-back of these permits sends back
 */

ngx_int_t
ngx_oauth2_reply_lease(redisReply *rr, ngx_oauth2_rl_t *rl,
    ngx_uint_t nlimits, ngx_uint_t *granted, int64_t *tat)
{
    ngx_uint_t  i;

    if (rr->type != REDIS_REPLY_ARRAY || nlimits == 0
        || nlimits > NGX_OAUTH2_MAX_LIMITS || rr->elements != 7 + nlimits)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < nlimits; i++) {
        if (rr->element[7 + i]->type != REDIS_REPLY_INTEGER
            || rr->element[7 + i]->integer < 0)
        {
            return NGX_ERROR;
        }

        tat[i] = (int64_t) rr->element[7 + i]->integer;
    }

    if (ngx_oauth2_reply_gcra(rr->element, rl, nlimits) != NGX_OK
        || rr->element[6]->type != REDIS_REPLY_INTEGER
        || rr->element[6]->integer < 0
        || rr->element[6]->integer > 1000000
        || ((rr->element[6]->integer > 0)
            != (rl->state == NGX_OAUTH2_RL_ALLOWED)))
    {
        return NGX_ERROR;
    }

    *granted = (ngx_uint_t) rr->element[6]->integer;

    return NGX_OK;
}


/*
 * {state, limit index, remaining, reset s, retry s, unusable keys} of the
 * GCRA script
 */

static ngx_int_t
ngx_oauth2_reply_rl(ngx_http_oauth2_ctx_t *ctx, redisReply **e, size_t n)
{
    ngx_oauth2_rl_t  *rl;

    rl = &ctx->rl;

    if (n != 6
        || ngx_oauth2_reply_gcra(e, rl,
                                 rl->plan ? rl->plan->limits->nelts : 0)
           != NGX_OK)
    {
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


/*
 * The rate limit part of the lookup and JWT scripts' replies: nil when
 * the request was not counted (a plan name that is not configured is
 * still logged then), else the GCRA's answer for the record's plan.
 */

static ngx_int_t
ngx_oauth2_reply_limit(ngx_http_oauth2_ctx_t *ctx, redisReply **e, size_t n)
{
    ngx_oauth2_record_t          *rec;
    ngx_http_oauth2_main_conf_t  *omcf;

    rec = &ctx->record;
    omcf = ngx_http_get_module_main_conf(ctx->request,
                                         ngx_http_oauth2_module);

    if (n == 1 && e[0]->type == REDIS_REPLY_INTEGER && e[0]->integer == 0) {
        /* not counted */

        if (rec->plan.len && omcf->plans) {
            (void) ngx_oauth2_ratelimit_plan(ctx->request, omcf, &rec->plan);
        }

        return NGX_OK;
    }

    ctx->rl.plan = ngx_oauth2_ratelimit_plan(ctx->request, omcf, &rec->plan);

    if (ctx->rl.plan == NULL) {
        return NGX_ERROR;
    }

    return ngx_oauth2_reply_rl(ctx, e, n);
}


/* {revoked, consent status, rate limit} of the JWT script */

static ngx_oauth2_outcome_e
ngx_oauth2_reply_jwt(ngx_http_oauth2_ctx_t *ctx, redisReply *rr)
{
    ngx_log_t                    *log;
    redisReply                  **e;
    ngx_oauth2_record_t          *rec;

    log = ctx->request->connection->log;
    rec = &ctx->record;

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements < 3
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

    if (ngx_oauth2_reply_str(ctx->request->pool, e[1],
                              &rec->consent_status)
        != NGX_OK)
    {
        goto unexpected;
    }

    ngx_oauth2_record_consent(rec);

    if (ngx_oauth2_reply_limit(ctx, &e[2], rr->elements - 2) != NGX_OK) {
        goto unexpected;
    }

    return NGX_OAUTH2_OK;

unexpected:

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "oauth2: unexpected reply from redis for JWT \"%V\"",
                  &ctx->jti);

    return NGX_OAUTH2_STORE_UNAVAILABLE;
}


ngx_oauth2_outcome_e
ngx_oauth2_record_reply(ngx_http_oauth2_ctx_t *ctx, ngx_int_t script,
    redisReply *rr)
{
    u_char                        buf[NGX_OAUTH2_ESCAPE_LEN];
    time_t                        now, exp;
    long long                     ttl;
    ngx_str_t                     exp_str, esc;
    ngx_log_t                    *log;
    ngx_pool_t                   *pool;
    redisReply                  **e;
    ngx_oauth2_record_t          *rec;

    log = ctx->request->connection->log;
    pool = ctx->request->pool;
    rec = &ctx->record;

    if (rr->type == REDIS_REPLY_ERROR) {
        exp_str.data = (u_char *) rr->str;
        exp_str.len = rr->len;
        esc.data = buf;
        esc.len = ngx_oauth2_escape(buf, &exp_str);

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth2: redis answered an error for %V: %V",
                      &rec->name, &esc);
        return NGX_OAUTH2_STORE_UNAVAILABLE;
    }

    if (script == NGX_OAUTH2_SCRIPT_RATELIMIT) {
        if (rr->type != REDIS_REPLY_ARRAY
            || ngx_oauth2_reply_rl(ctx, rr->element, rr->elements) != NGX_OK)
        {
            goto unexpected;
        }

        return NGX_OAUTH2_OK;
    }

    if (script == NGX_OAUTH2_SCRIPT_LEASE) {
        if (ngx_oauth2_reply_lease(rr, &ctx->rl,
                                   ctx->rl.plan
                                   ? ctx->rl.plan->limits->nelts : 0,
                                   &ctx->lease_granted, ctx->lease_tat)
            != NGX_OK)
        {
            goto unexpected;
        }

        if (rr->element[5]->integer) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "oauth2: %L rate-limit key(s) of client \"%V\" "
                          "held no usable counter and were counted as new",
                          (int64_t) rr->element[5]->integer,
                          &rec->client_id);
        }

        return NGX_OAUTH2_OK;
    }

    if (script == NGX_OAUTH2_SCRIPT_JWT) {
        return ngx_oauth2_reply_jwt(ctx, rr);
    }

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements == 0
        || rr->element[0]->type != REDIS_REPLY_INTEGER)
    {
        goto unexpected;
    }

    e = rr->element;

    if (e[0]->integer == 0) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "oauth2: %V is unknown or has expired", &rec->name);
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    if ((rr->elements != 10 && rr->elements != 15)
        || e[1]->type != REDIS_REPLY_INTEGER)
    {
        goto unexpected;
    }

    if (ngx_oauth2_reply_str(pool, e[2], &rec->client_id) != NGX_OK
        || ngx_oauth2_reply_str(pool, e[3], &rec->scope) != NGX_OK
        || ngx_oauth2_reply_str(pool, e[4], &rec->plan) != NGX_OK
        || ngx_oauth2_reply_str(pool, e[5], &rec->consent_id) != NGX_OK
        || ngx_oauth2_reply_str(pool, e[6], &rec->sub) != NGX_OK
        || ngx_oauth2_reply_str(pool, e[7], &exp_str) != NGX_OK
        || ngx_oauth2_reply_str(pool, e[8], &rec->consent_status)
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

    if (ngx_oauth2_reply_limit(ctx, &e[9], rr->elements - 9) != NGX_OK) {
        goto unexpected;
    }

    return NGX_OAUTH2_OK;

unexpected:

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "oauth2: unexpected reply from redis for %V", &rec->name);

    return NGX_OAUTH2_STORE_UNAVAILABLE;
}

