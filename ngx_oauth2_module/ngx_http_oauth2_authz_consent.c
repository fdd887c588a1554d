
/*
 * ngx_oauth2_module: the consent details API and token revocation.
 *
 *   GET    oauth2_consent_api  .../{consentId}: 200 JSON; only the client
 *          the consent belongs to (HTTP Basic) reads it, another gets 404
 *   DELETE oauth2_consent_api  .../{consentId}: the consent is revoked
 *          (authz_consent_revoke.lua): 204
 *   POST   oauth2_revoke  token=...&token_type_hint=... (RFC 7009):
 *          authz_revoke.lua deletes the token if it is the client's; 200
 *          whether or not it existed
 */


#include "ngx_http_oauth2_authz.h"
#include "ngx_oauth2_redis.h"

#include <jansson.h>


static ngx_int_t ngx_http_oauth2_consent_client(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_oauth2_consent_read(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_oauth2_consent_revoked(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_oauth2_authz_empty(ngx_http_request_t *r,
    ngx_uint_t status);
static void ngx_http_oauth2_revoke_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth2_revoke_client(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_oauth2_revoke_done(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply);


ngx_int_t
ngx_http_oauth2_consent_handler(ngx_http_request_t *r)
{
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_http_oauth2_authz_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_DELETE))) {
        return ngx_http_oauth2_authz_not_allowed(r, "GET, DELETE");
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    ctx = ngx_http_oauth2_authz_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the consent id: the URI's last segment */

    p = r->uri.data + r->uri.len;

    while (p > r->uri.data && p[-1] != '/') {
        p--;
    }

    ctx->id.data = p;
    ctx->id.len = r->uri.data + r->uri.len - p;

    rc = ngx_http_oauth2_authz_credentials(r, ctx,
                                           NGX_HTTP_OAUTH2_AUTH_BASIC);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return ngx_http_oauth2_authz_error(r, NGX_HTTP_UNAUTHORIZED,
                                           "invalid_client", NULL, 1);
    }

    rc = ngx_http_oauth2_authz_fetch_client(r, ctx, &ctx->client_id,
                                            ngx_http_oauth2_consent_client);

    if (rc == NGX_AGAIN) {
        r->main->count++;
        return NGX_DONE;
    }

    return rc;
}


static ngx_int_t
ngx_http_oauth2_consent_client(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply)
{
    ngx_int_t   rc;
    ngx_str_t  *a;

    rc = ngx_http_oauth2_authz_client(r, ctx, reply, 1);

    if (rc == NGX_ERROR) {
        return ngx_http_oauth2_authz_unavailable(r);
    }

    if (rc != NGX_OK) {
        return ngx_http_oauth2_authz_error(r, NGX_HTTP_UNAUTHORIZED,
                                           "invalid_client", NULL, 1);
    }

    if (!ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_IDENT, &ctx->id)) {
        return ngx_http_oauth2_authz_error(r, NGX_HTTP_NOT_FOUND,
                                           "not_found", NULL, 0);
    }

    a = ngx_palloc(r->pool, 8 * sizeof(ngx_str_t));
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method == NGX_HTTP_DELETE) {
        if (ngx_http_oauth2_authz_key(r, &a[0], "consent", &ctx->id, 0)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        a[1] = ctx->client.id;

        return ngx_http_oauth2_authz_call(r, ctx,
                                     NGX_OAUTH2_SCRIPT_AUTHZ_CONSENT_REVOKE,
                                     a, 2, 1, ngx_http_oauth2_consent_revoked);
    }

    ngx_str_set(&a[0], "HMGET");

    if (ngx_http_oauth2_authz_key(r, &a[1], "consent", &ctx->id, 0)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&a[2], "client_id");
    ngx_str_set(&a[3], "status");
    ngx_str_set(&a[4], "scope");
    ngx_str_set(&a[5], "created");
    ngx_str_set(&a[6], "expires");
    ngx_str_set(&a[7], "sub");

    return ngx_http_oauth2_authz_call(r, ctx, NGX_OAUTH2_SCRIPT_NONE, a, 8, 0,
                                      ngx_http_oauth2_consent_read);
}


/*
 * {"consentId","status","clientId","scope","created","expires"}: status
 * "valid", or "invalid" once revoked or expired; created and expires in
 * Unix seconds, when the record has them.  The rule is lua/consent.lua's,
 * the one the gateway and the token endpoint decide by: a status "valid"
 * with an "expires" that is empty, or 1 to 15 digits after now (the exp
 * grammar of a token record).
 */

static ngx_int_t
ngx_http_oauth2_consent_read(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply)
{
    time_t       created, expires;
    json_t      *obj;
    ngx_str_t    f[6];
    ngx_uint_t   i, valid, bad, shown;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 6) {
        goto unexpected;
    }

    for (i = 0; i < 6; i++) {
        if (ngx_http_oauth2_authz_reply_str(r, reply->element[i], &f[i])
            != NGX_OK)
        {
            goto unexpected;
        }
    }

    /* unknown, or another client's: the same 404, ids do not leak */

    if (f[0].len != ctx->client.id.len
        || ngx_strncmp(f[0].data, ctx->client.id.data, f[0].len) != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: client \"%V\" asked for consent \"%V\", "
                      "unknown or not its own", &ctx->client.id, &ctx->id);
        return ngx_http_oauth2_authz_error(r, NGX_HTTP_NOT_FOUND,
                                           "not_found", NULL, 0);
    }

    created = f[3].len ? ngx_atotm(f[3].data, f[3].len) : NGX_ERROR;
    bad = (ngx_oauth2_record_exp(&f[4], &expires) != NGX_OK);

    valid = (f[1].len == 5 && ngx_strncmp(f[1].data, "valid", 5) == 0
             && !bad && (expires == 0 || expires > ctx->now));

    /* shown as stored, when it is 1 to 15 digits ("0" as 0) */

    shown = (!bad && f[4].len);

    if (shown) {
        expires = ngx_atotm(f[4].data, f[4].len);
    }

    obj = json_pack("{s:s%, s:s, s:s%, s:s%}",
                    "consentId", ctx->id.data, ctx->id.len,
                    "status", valid ? "valid" : "invalid",
                    "clientId", f[0].data, f[0].len,
                    "scope", f[2].data ? (char *) f[2].data : "", f[2].len);

    if (obj
        && ((created != NGX_ERROR
             && json_object_set_new(obj, "created",
                                    json_integer((json_int_t) created)) != 0)
            || (shown
                && json_object_set_new(obj, "expires",
                                       json_integer((json_int_t) expires))
                   != 0)))
    {
        json_decref(obj);
        obj = NULL;
    }

    return ngx_http_oauth2_authz_json(r, NGX_HTTP_OK, obj, 0);

unexpected:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "oauth2: unexpected reply from redis for consent \"%V\"",
                  &ctx->id);

    return ngx_http_oauth2_authz_unavailable(r);
}


static ngx_int_t
ngx_http_oauth2_consent_revoked(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply)
{
    if (reply->type != REDIS_REPLY_INTEGER) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth2: unexpected reply from redis for consent "
                      "\"%V\"", &ctx->id);
        return ngx_http_oauth2_authz_unavailable(r);
    }

    if (reply->integer != 1) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: client \"%V\" revoking consent \"%V\", "
                      "unknown or not its own", &ctx->client.id, &ctx->id);
        return ngx_http_oauth2_authz_error(r, NGX_HTTP_NOT_FOUND,
                                           "not_found", NULL, 0);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "oauth2: client \"%V\" revoked consent \"%V\"",
                  &ctx->client.id, &ctx->id);

    return ngx_http_oauth2_authz_empty(r, NGX_HTTP_NO_CONTENT);
}


/* a response without a body (Cache-Control: no-store) */

static ngx_int_t
ngx_http_oauth2_authz_empty(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_int_t  rc;

    static ngx_str_t  no_store = ngx_string("no-store");

    if (ngx_oauth2_add_header(r, "Cache-Control", &no_store, NULL)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    return ngx_http_send_special(r, NGX_HTTP_LAST);
}


/* POST oauth2_revoke */

ngx_int_t
ngx_http_oauth2_revoke_handler(ngx_http_request_t *r)
{
    return ngx_http_oauth2_token_endpoint(r, ngx_http_oauth2_revoke_body);
}


static void
ngx_http_oauth2_revoke_body(ngx_http_request_t *r)
{
    ngx_http_oauth2_token_client_body(r, ngx_http_oauth2_revoke_client);
}


static ngx_int_t
ngx_http_oauth2_revoke_client(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply)
{
    u_char      *p, *end;
    ngx_int_t    rc;
    ngx_str_t   *token, *hint, *a, now, jti;
    ngx_uint_t   n, refresh_first;

    rc = ngx_http_oauth2_authz_client(r, ctx, reply, 1);

    if (rc == NGX_ERROR) {
        return ngx_http_oauth2_authz_unavailable(r);
    }

    if (rc != NGX_OK) {
        return ngx_http_oauth2_token_error(r, ctx->alcf,
                                           NGX_HTTP_OAUTH2_TE_INVALID_CLIENT);
    }

    if (ctx->form.bad || ctx->form.dup) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: revocation request with a duplicated "
                      "parameter, or one that is not UTF-8 text");
        return ngx_http_oauth2_token_error(r, ctx->alcf,
                                           NGX_HTTP_OAUTH2_TE_INPUT);
    }

    token = &ctx->form.value[NGX_HTTP_OAUTH2_P_TOKEN];
    hint = &ctx->form.value[NGX_HTTP_OAUTH2_P_TOKEN_TYPE_HINT];

    if (token->len == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: revocation request without a token");
        return ngx_http_oauth2_token_error(r, ctx->alcf,
                                           NGX_HTTP_OAUTH2_TE_INVALID_REQUEST);
    }

    /* RFC 7009 2.2: an invalid token is no error */

    end = token->data + token->len;

    for (p = token->data; p < end; p++) {
        if (*p < 0x21 || *p > 0x7e) {
            return ngx_http_oauth2_authz_empty(r, NGX_HTTP_OK);
        }
    }

    refresh_first = (hint->len == 13
                     && ngx_strncmp(hint->data, "refresh_token", 13) == 0);

    a = ngx_palloc(r->pool, 6 * sizeof(ngx_str_t));
    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (a == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_oauth2_authz_key(r, &a[refresh_first ? 1 : 0], "token",
                                  token, 1)
        != NGX_OK
        || ngx_http_oauth2_authz_key(r, &a[refresh_first ? 0 : 1], "refresh",
                                     token, 1)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = 2;

    rc = ngx_http_oauth2_jwt_jti(r, token, &jti);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK) {
        if (ngx_http_oauth2_authz_key(r, &a[2], "jwt", &jti, 0) != NGX_OK
            || ngx_http_oauth2_authz_key(r, &a[3], "revoked", &jti, 0)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n = 4;
    }

    now.data = p;
    now.len = ngx_sprintf(p, "%T", ctx->now) - p;

    a[n] = ctx->client.id;
    a[n + 1] = now;

    ctx->code = *token;

    return ngx_http_oauth2_authz_call(r, ctx, NGX_OAUTH2_SCRIPT_AUTHZ_REVOKE,
                                      a, n + 2, n,
                                      ngx_http_oauth2_revoke_done);
}


static ngx_int_t
ngx_http_oauth2_revoke_done(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply)
{
    u_char  name[7];

    if (reply->type != REDIS_REPLY_INTEGER) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth2: unexpected reply from redis for a "
                      "revocation");
        return ngx_http_oauth2_authz_unavailable(r);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "oauth2: client \"%V\" %s token %s", &ctx->client.id,
                  reply->integer == 1 ? "revoked" : "revoking, unknown or "
                  "not its own:", ngx_http_oauth2_authz_name(name,
                                                             &ctx->code));

    return ngx_http_oauth2_authz_empty(r, NGX_HTTP_OK);
}
