
/*
 * ngx_oauth2_module: the token endpoint (RFC 6749 3.2, 4.1.3, 4.4, 6).
 *
 * POST, application/x-www-form-urlencoded, the client authenticated with
 * HTTP Basic (or client_secret_post, when oauth2_token_client_auth allows
 * it).  The order of the checks:
 *
 *   1. the method, the body's length and Content-Type, the credentials'
 *      form (401 before the body is read when only Basic is allowed);
 *   2. the client record (HMGET) and its secret, compared as SHA-256 in
 *      constant time: 401 invalid_client;
 *   3. the form, the grant type and its parameters: 400;
 *   4. the grant, in one atomic script: authz_code.lua (the code works
 *      once), authz_refresh.lua (the refresh token is rotated),
 *      authz_put.lua (client_credentials);
 *   5. the tokens, as JSON; a JWT access token is signed here.
 */


#include "ngx_http_oauth2_authz.h"
#include "ngx_oauth2_redis.h"

#include <jansson.h>


#define NGX_HTTP_OAUTH2_GRANT_CODE     1
#define NGX_HTTP_OAUTH2_GRANT_REFRESH  2
#define NGX_HTTP_OAUTH2_GRANT_CLIENT   3


static void ngx_http_oauth2_token_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth2_token_client(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_oauth2_token_keys(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, ngx_str_t *access,
    ngx_str_t *refresh);
static ngx_int_t ngx_http_oauth2_token_code(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx);
static ngx_int_t ngx_http_oauth2_token_refresh(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx);
static ngx_int_t ngx_http_oauth2_token_client_credentials(
    ngx_http_request_t *r, ngx_http_oauth2_authz_ctx_t *ctx);
static ngx_int_t ngx_http_oauth2_token_issued(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_oauth2_token_stored(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_oauth2_token_response(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, ngx_str_t *scope,
    ngx_str_t *consent_id, ngx_str_t *sub, time_t expires_in, time_t exp);


static ngx_str_t  ngx_http_oauth2_grants =
    ngx_string("authorization_code refresh_token");


ngx_int_t
ngx_http_oauth2_token_handler(ngx_http_request_t *r)
{
    return ngx_http_oauth2_token_endpoint(r, ngx_http_oauth2_token_body);
}


/*
 * A POST of the token or the revocation endpoint: the client's
 * credentials (HTTP Basic alone: the header says who the client is, body
 * or not), then the form body, handed to "body"; its errors the token
 * endpoint's
 */

ngx_int_t
ngx_http_oauth2_token_endpoint(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt body)
{
    ngx_int_t                          rc;
    ngx_http_oauth2_authz_ctx_t       *ctx;
    ngx_http_oauth2_authz_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_authz_module);

    if (!(r->method & NGX_HTTP_POST)) {
        return ngx_http_oauth2_authz_not_allowed(r, "POST");
    }

    ctx = ngx_http_oauth2_authz_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!(alcf->client_auth & NGX_HTTP_OAUTH2_AUTH_POST)) {
        rc = ngx_http_oauth2_authz_credentials(r, ctx, alcf->client_auth);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc != NGX_OK) {
            return ngx_http_oauth2_token_error(r, alcf,
                                            NGX_HTTP_OAUTH2_TE_INVALID_CLIENT);
        }
    }

    rc = ngx_http_oauth2_authz_read_form(r, body);

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return ngx_http_oauth2_token_error(r, alcf,
                                           NGX_HTTP_OAUTH2_TE_TOO_LARGE);
    }

    if (rc == NGX_HTTP_LENGTH_REQUIRED) {
        return ngx_http_oauth2_token_error(r, alcf, NGX_HTTP_OAUTH2_TE_LENGTH);
    }

    return rc;
}


/*
 * The errors of the token endpoint: the bank's guide's names, or with
 * oauth2_token_errors rfc6749 those of RFC 6749 5.2.
 */

ngx_int_t
ngx_http_oauth2_token_error(ngx_http_request_t *r,
    ngx_http_oauth2_authz_loc_conf_t *alcf, ngx_uint_t err)
{
    char        *error;
    ngx_uint_t   status, guide, basic;

    guide = (alcf->errors == NGX_HTTP_OAUTH2_ERRORS_GUIDE);
    status = NGX_HTTP_BAD_REQUEST;
    basic = 0;

    switch (err) {

    case NGX_HTTP_OAUTH2_TE_INVALID_CLIENT:
        status = NGX_HTTP_UNAUTHORIZED;
        error = "invalid_client";
        basic = 1;
        break;

    case NGX_HTTP_OAUTH2_TE_INPUT:
        error = guide ? "unknown" : "invalid_request";
        break;

    case NGX_HTTP_OAUTH2_TE_GRANT_TYPE:
        error = guide ? "unknown" : "unsupported_grant_type";
        break;

    case NGX_HTTP_OAUTH2_TE_CODE:
        error = "invalid_grant";
        break;

    case NGX_HTTP_OAUTH2_TE_REFRESH:
        status = guide ? NGX_HTTP_UNAUTHORIZED : NGX_HTTP_BAD_REQUEST;
        error = "invalid_grant";
        break;

    case NGX_HTTP_OAUTH2_TE_SCOPE:
        error = "invalid_scope";
        break;

    case NGX_HTTP_OAUTH2_TE_UNAUTHORIZED_CLIENT:
        error = "unauthorized_client";
        break;

    case NGX_HTTP_OAUTH2_TE_TOO_LARGE:
        status = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        error = "invalid_request";
        break;

    case NGX_HTTP_OAUTH2_TE_LENGTH:
        status = NGX_HTTP_LENGTH_REQUIRED;
        error = "invalid_request";
        break;

    default: /* NGX_HTTP_OAUTH2_TE_INVALID_REQUEST */
        error = "invalid_request";
        break;
    }

    return ngx_http_oauth2_authz_error(r, status, error, NULL, basic);
}


static void
ngx_http_oauth2_token_body(ngx_http_request_t *r)
{
    ngx_http_oauth2_token_client_body(r, ngx_http_oauth2_token_client);
}


/*
 * The form body of the token or the revocation endpoint: parsed, the
 * client authenticated, its record fetched and handed to "next"
 */

void
ngx_http_oauth2_token_client_body(ngx_http_request_t *r,
    ngx_http_oauth2_authz_step_pt next)
{
    ngx_int_t                     rc;
    ngx_http_oauth2_authz_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_oauth2_authz_module);

    rc = ngx_http_oauth2_authz_body(r, ctx);

    if (rc == NGX_DECLINED) {
        rc = ngx_http_oauth2_token_error(r, ctx->alcf,
                                         NGX_HTTP_OAUTH2_TE_INPUT);
        goto done;
    }

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        rc = ngx_http_oauth2_token_error(r, ctx->alcf,
                                         NGX_HTTP_OAUTH2_TE_TOO_LARGE);
        goto done;
    }

    if (rc != NGX_OK) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    rc = ngx_http_oauth2_authz_credentials(r, ctx, ctx->alcf->client_auth);

    if (rc == NGX_DECLINED) {
        rc = ngx_http_oauth2_token_error(r, ctx->alcf,
                                         NGX_HTTP_OAUTH2_TE_INVALID_CLIENT);
        goto done;
    }

    if (rc == NGX_HTTP_BAD_REQUEST) {
        rc = ngx_http_oauth2_token_error(r, ctx->alcf,
                                         NGX_HTTP_OAUTH2_TE_INVALID_REQUEST);
        goto done;
    }

    if (rc != NGX_OK) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    rc = ngx_http_oauth2_authz_fetch_client(r, ctx, &ctx->client_id, next);

done:

    ngx_http_oauth2_authz_finish(r, rc);
}


static ngx_int_t
ngx_http_oauth2_token_client(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply)
{
    ngx_int_t                          rc;
    ngx_str_t                         *grant, *grants, name;
    ngx_http_oauth2_authz_loc_conf_t  *alcf;

    alcf = ctx->alcf;

    rc = ngx_http_oauth2_authz_client(r, ctx, reply, 1);

    if (rc == NGX_ERROR) {
        return ngx_http_oauth2_authz_unavailable(r);
    }

    if (rc != NGX_OK) {
        return ngx_http_oauth2_token_error(r, alcf,
                                           NGX_HTTP_OAUTH2_TE_INVALID_CLIENT);
    }

    if (ctx->form.bad || ctx->form.dup) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: token request with a duplicated parameter, "
                      "or one that is not UTF-8 text");
        return ngx_http_oauth2_token_error(r, alcf, NGX_HTTP_OAUTH2_TE_INPUT);
    }

    grant = &ctx->form.value[NGX_HTTP_OAUTH2_P_GRANT_TYPE];

    if (grant->len == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: token request without grant_type");
        return ngx_http_oauth2_token_error(r, alcf, NGX_HTTP_OAUTH2_TE_INPUT);
    }

    if (grant->len == 18
        && ngx_strncmp(grant->data, "authorization_code", 18) == 0)
    {
        ctx->grant = NGX_HTTP_OAUTH2_GRANT_CODE;

    } else if (grant->len == 13
               && ngx_strncmp(grant->data, "refresh_token", 13) == 0)
    {
        ctx->grant = NGX_HTTP_OAUTH2_GRANT_REFRESH;

    } else if (grant->len == 18
               && ngx_strncmp(grant->data, "client_credentials", 18) == 0)
    {
        ctx->grant = NGX_HTTP_OAUTH2_GRANT_CLIENT;

    } else {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: token request with an unknown grant_type");
        return ngx_http_oauth2_token_error(r, alcf,
                                           NGX_HTTP_OAUTH2_TE_GRANT_TYPE);
    }

    /* the client's grant_types, authorization_code refresh_token if none */

    grants = ctx->client.grant_types.len ? &ctx->client.grant_types
                                         : &ngx_http_oauth2_grants;

    if (!ngx_http_oauth2_authz_word(grants, grant)) {
        name = *grant;
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: client \"%V\" may not use %V (grant_types)",
                      &ctx->client.id, &name);
        return ngx_http_oauth2_token_error(r, alcf,
                                      NGX_HTTP_OAUTH2_TE_UNAUTHORIZED_CLIENT);
    }

    switch (ctx->grant) {

    case NGX_HTTP_OAUTH2_GRANT_CODE:
        return ngx_http_oauth2_token_code(r, ctx);

    case NGX_HTTP_OAUTH2_GRANT_REFRESH:
        return ngx_http_oauth2_token_refresh(r, ctx);

    default: /* NGX_HTTP_OAUTH2_GRANT_CLIENT */
        return ngx_http_oauth2_token_client_credentials(r, ctx);
    }
}


/*
 * The new tokens and their keys: an opaque access token (its record
 * <prefix>token:<sha256>) or a JWT's jti (<prefix>jwt:<jti>); with
 * refresh, a refresh token (<prefix>refresh:<sha256>).
 */

static ngx_int_t
ngx_http_oauth2_token_keys(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, ngx_str_t *access, ngx_str_t *refresh)
{
    if (ctx->alcf->format == NGX_HTTP_OAUTH2_FORMAT_JWT) {
        if (ngx_http_oauth2_authz_random(r, NGX_HTTP_OAUTH2_ID_BYTES,
                                         &ctx->jti)
            != NGX_OK
            || ngx_http_oauth2_authz_key(r, access, "jwt", &ctx->jti, 0)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else {
        ngx_str_set(&ctx->jti, "");

        if (ngx_http_oauth2_authz_random(r, NGX_HTTP_OAUTH2_TOKEN_BYTES,
                                         &ctx->access_token)
            != NGX_OK
            || ngx_http_oauth2_authz_key(r, access, "token",
                                         &ctx->access_token, 1)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (refresh == NULL) {
        return NGX_OK;
    }

    if (ngx_http_oauth2_authz_random(r, NGX_HTTP_OAUTH2_TOKEN_BYTES,
                                     &ctx->refresh_token)
        != NGX_OK
        || ngx_http_oauth2_authz_key(r, refresh, "refresh",
                                     &ctx->refresh_token, 1)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the TTLs and the clock of a grant's script, as ARGV strings */

static ngx_int_t
ngx_http_oauth2_token_times(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, ngx_str_t *a)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool, 3 * NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    a[0].data = p;
    a[0].len = ngx_sprintf(p, "%T", ctx->now) - p;
    p += a[0].len;

    a[1].data = p;
    a[1].len = ngx_sprintf(p, "%T", ctx->alcf->access_ttl) - p;
    p += a[1].len;

    a[2].data = p;
    a[2].len = ngx_sprintf(p, "%T", ctx->alcf->refresh_ttl) - p;

    return NGX_OK;
}


/* grant_type=authorization_code: authz_code.lua */

static ngx_int_t
ngx_http_oauth2_token_code(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx)
{
    ngx_str_t                         *v, *a, challenge;
    ngx_http_oauth2_main_conf_t       *omcf;
    ngx_http_oauth2_authz_loc_conf_t  *alcf;

    alcf = ctx->alcf;
    v = ctx->form.value;

    if (v[NGX_HTTP_OAUTH2_P_CODE].len == 0
        || v[NGX_HTTP_OAUTH2_P_REFRESH_TOKEN].len)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: authorization_code without a code, or with "
                      "a refresh_token");
        return ngx_http_oauth2_token_error(r, alcf,
                                           NGX_HTTP_OAUTH2_TE_INVALID_REQUEST);
    }

    ngx_str_null(&challenge);

    /*
     * A code of a shape no code has is an unknown code.  A redirect_uri
     * of any shape (the form's own checks passed: text, no control
     * characters) goes to the script, which compares it with the
     * authorization request's and spends the code when they differ, as
     * for any other mismatch (the first request that names a code spends
     * it); so does the challenge of the code_verifier, or one that
     * matches no code when the verifier breaks RFC 7636's grammar.
     */

    if (!ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_HANDLE,
                                     &v[NGX_HTTP_OAUTH2_P_CODE]))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: authorization_code grant of client \"%V\" "
                      "with a code that no code can be (unknown)",
                      &ctx->client.id);
        return ngx_http_oauth2_token_error(r, alcf, NGX_HTTP_OAUTH2_TE_CODE);
    }

    if (v[NGX_HTTP_OAUTH2_P_CODE_VERIFIER].len == 0) {
        /* none: matches a code without a challenge only */

    } else if (!ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_PKCE,
                                          &v[NGX_HTTP_OAUTH2_P_CODE_VERIFIER]))
    {
        /*
         * not 43 to 128 unreserved characters (RFC 7636 4.1): a verifier
         * no client may use, whatever its hash; a challenge no code has
         * (they are base64url), so that the script spends the code
         */
        ngx_str_set(&challenge, "!");

    } else if (ngx_http_oauth2_authz_pkce(r->pool,
                                          &v[NGX_HTTP_OAUTH2_P_CODE_VERIFIER],
                                          &challenge)
               != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a = ngx_palloc(r->pool, 13 * sizeof(ngx_str_t));
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * the oldest code this location redeems: its oauth2_code_ttl, where it
     * is set for it ("" where it is not: the code's key's TTL alone)
     */

    a[12] = alcf->code_max_age;

    ctx->code = v[NGX_HTTP_OAUTH2_P_CODE];

    if (ngx_http_oauth2_authz_key(r, &a[0], "code", &ctx->code, 1) != NGX_OK
        || ngx_http_oauth2_token_keys(r, ctx, &a[1], &a[2]) != NGX_OK
        || ngx_http_oauth2_token_times(r, ctx, &a[8]) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);

    a[3] = omcf->prefix;
    a[4] = ctx->client.id;
    a[5] = v[NGX_HTTP_OAUTH2_P_REDIRECT_URI];
    a[6] = challenge;
    a[7] = ctx->client.plan;
    a[11] = ctx->jti;

    return ngx_http_oauth2_authz_call(r, ctx, NGX_OAUTH2_SCRIPT_AUTHZ_CODE,
                                      a, 13, 3,
                                      ngx_http_oauth2_token_issued);
}


/* grant_type=refresh_token: authz_refresh.lua */

static ngx_int_t
ngx_http_oauth2_token_refresh(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx)
{
    ngx_str_t                         *v, *a;
    ngx_http_oauth2_main_conf_t       *omcf;
    ngx_http_oauth2_authz_loc_conf_t  *alcf;

    alcf = ctx->alcf;
    v = ctx->form.value;

    if (v[NGX_HTTP_OAUTH2_P_REFRESH_TOKEN].len == 0
        || v[NGX_HTTP_OAUTH2_P_CODE].len)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: refresh_token grant without a refresh_token, "
                      "or with a code");
        return ngx_http_oauth2_token_error(r, alcf,
                                           NGX_HTTP_OAUTH2_TE_INVALID_REQUEST);
    }

    if (!ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_HANDLE,
                                     &v[NGX_HTTP_OAUTH2_P_REFRESH_TOKEN]))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: refresh_token grant of client \"%V\" with a "
                      "refresh_token that no token can be (unknown)",
                      &ctx->client.id);
        return ngx_http_oauth2_token_error(r, alcf,
                                           NGX_HTTP_OAUTH2_TE_REFRESH);
    }

    if (v[NGX_HTTP_OAUTH2_P_SCOPE].len
        && ngx_http_oauth2_authz_scope(r->pool, &v[NGX_HTTP_OAUTH2_P_SCOPE],
                                       &ctx->scope)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: refresh_token grant with an invalid scope");
        return ngx_http_oauth2_token_error(r, alcf, NGX_HTTP_OAUTH2_TE_SCOPE);
    }

    a = ngx_palloc(r->pool, 11 * sizeof(ngx_str_t));
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->code = v[NGX_HTTP_OAUTH2_P_REFRESH_TOKEN];

    if (ngx_http_oauth2_authz_key(r, &a[0], "refresh", &ctx->code, 1)
        != NGX_OK
        || ngx_http_oauth2_token_keys(r, ctx, &a[1], &a[2]) != NGX_OK
        || ngx_http_oauth2_token_times(r, ctx, &a[7]) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);

    a[3] = omcf->prefix;
    a[4] = ctx->client.id;
    a[5] = ctx->scope;
    a[6] = ctx->client.plan;
    a[10] = ctx->jti;

    return ngx_http_oauth2_authz_call(r, ctx, NGX_OAUTH2_SCRIPT_AUTHZ_REFRESH,
                                      a, 11, 3,
                                      ngx_http_oauth2_token_issued);
}


/* grant_type=client_credentials: no user, no consent, no refresh token */

static ngx_int_t
ngx_http_oauth2_token_client_credentials(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx)
{
    u_char                            *p;
    time_t                             exp;
    ngx_str_t                         *v, *a, scope;
    ngx_uint_t                         n;
    ngx_http_oauth2_authz_loc_conf_t  *alcf;

    alcf = ctx->alcf;
    v = ctx->form.value;

    if (v[NGX_HTTP_OAUTH2_P_CODE].len
        || v[NGX_HTTP_OAUTH2_P_REFRESH_TOKEN].len)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: client_credentials with a code or a "
                      "refresh_token");
        return ngx_http_oauth2_token_error(r, alcf,
                                           NGX_HTTP_OAUTH2_TE_INVALID_REQUEST);
    }

    /* the scope asked for, all the client's; or all the client's */

    scope = v[NGX_HTTP_OAUTH2_P_SCOPE].len ? v[NGX_HTTP_OAUTH2_P_SCOPE]
                                           : ctx->client.scopes;

    if (ngx_http_oauth2_authz_scope(r->pool, &scope, &ctx->scope) != NGX_OK
        || !ngx_http_oauth2_authz_scope_subset(&ctx->scope,
                                               &ctx->client.scopes))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: client \"%V\" asked for a scope that is "
                      "missing, invalid or not its own", &ctx->client.id);
        return ngx_http_oauth2_token_error(r, alcf, NGX_HTTP_OAUTH2_TE_SCOPE);
    }

    a = ngx_palloc(r->pool, 12 * sizeof(ngx_str_t));
    p = ngx_pnalloc(r->pool, 2 * NGX_TIME_T_LEN);
    if (a == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_oauth2_token_keys(r, ctx, &a[0], NULL) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    exp = ctx->now + alcf->access_ttl;

    a[1].data = p;
    a[1].len = ngx_sprintf(p, "%T", alcf->access_ttl) - p;
    p += a[1].len;

    ngx_str_set(&a[2], "client_id");
    a[3] = ctx->client.id;
    ngx_str_set(&a[4], "exp");
    a[5].data = p;
    a[5].len = ngx_sprintf(p, "%T", exp) - p;

    if (alcf->format == NGX_HTTP_OAUTH2_FORMAT_JWT) {
        ngx_str_set(&a[6], "jti");
        a[7] = ctx->jti;
        n = 8;

    } else {
        ngx_str_set(&a[6], "scope");
        a[7] = ctx->scope;
        ngx_str_set(&a[8], "plan");
        a[9] = ctx->client.plan;
        n = 10;
    }

    return ngx_http_oauth2_authz_call(r, ctx, NGX_OAUTH2_SCRIPT_AUTHZ_PUT,
                                      a, n, 1,
                                      ngx_http_oauth2_token_stored);
}


/* the reply of authz_code.lua or authz_refresh.lua */

static ngx_int_t
ngx_http_oauth2_token_issued(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply)
{
    u_char        name[7];
    ngx_str_t     why, scope, consent_id, sub, exp;
    redisReply  **e;

    e = reply->element;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || e[0]->type != REDIS_REPLY_INTEGER)
    {
        goto unexpected;
    }

    if (e[0]->integer == 0) {
        ngx_str_set(&why, "refused");

        if (reply->elements == 2) {
            (void) ngx_http_oauth2_authz_reply_str(r, e[1], &why);
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: client \"%V\": %s %s: %V", &ctx->client.id,
                      ctx->grant == NGX_HTTP_OAUTH2_GRANT_CODE
                      ? "code" : "refresh token",
                      ngx_http_oauth2_authz_name(name, &ctx->code), &why);

        return ngx_http_oauth2_token_error(r, ctx->alcf,
                                           ctx->grant
                                           == NGX_HTTP_OAUTH2_GRANT_CODE
                                           ? NGX_HTTP_OAUTH2_TE_CODE
                                           : NGX_HTTP_OAUTH2_TE_REFRESH);
    }

    if (e[0]->integer == 2) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: client \"%V\" asked for a scope beyond its "
                      "grant's", &ctx->client.id);
        return ngx_http_oauth2_token_error(r, ctx->alcf,
                                           NGX_HTTP_OAUTH2_TE_SCOPE);
    }

    if (e[0]->integer != 1 || reply->elements != 6
        || e[4]->type != REDIS_REPLY_INTEGER
        || ngx_http_oauth2_authz_reply_str(r, e[1], &scope) != NGX_OK
        || ngx_http_oauth2_authz_reply_str(r, e[2], &consent_id) != NGX_OK
        || ngx_http_oauth2_authz_reply_str(r, e[3], &sub) != NGX_OK
        || ngx_http_oauth2_authz_reply_str(r, e[5], &exp) != NGX_OK)
    {
        goto unexpected;
    }

    return ngx_http_oauth2_token_response(r, ctx, &scope, &consent_id, &sub,
                                          (time_t) e[4]->integer,
                                          ngx_atotm(exp.data, exp.len));

unexpected:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "oauth2: unexpected reply from redis for a token request");

    return ngx_http_oauth2_authz_unavailable(r);
}


/* the reply of authz_put.lua for client_credentials */

static ngx_int_t
ngx_http_oauth2_token_stored(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply)
{
    ngx_str_t  empty;

    if (reply->type != REDIS_REPLY_INTEGER) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth2: unexpected reply from redis for a token "
                      "request");
        return ngx_http_oauth2_authz_unavailable(r);
    }

    ngx_str_null(&empty);

    return ngx_http_oauth2_token_response(r, ctx, &ctx->scope, &empty,
                                          &empty, ctx->alcf->access_ttl,
                                          ctx->now + ctx->alcf->access_ttl);
}


/*
 * 200 {"access_token","token_type":"Bearer","expires_in","refresh_token",
 * "scope","consent_id"}; refresh_token and consent_id only when there
 * are.  A JWT access token is signed now, with what the grant gave.
 */

static ngx_int_t
ngx_http_oauth2_token_response(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, ngx_str_t *scope,
    ngx_str_t *consent_id, ngx_str_t *sub, time_t expires_in, time_t exp)
{
    u_char     name[7];
    json_t    *obj;
    ngx_str_t  subject;

    if (ctx->alcf->format == NGX_HTTP_OAUTH2_FORMAT_JWT) {

        /* RFC 9068 2.2: sub is the client itself without a user */

        subject = sub->len ? *sub : ctx->client.id;

        if (exp == NGX_ERROR
            || ngx_http_oauth2_jwt_claims(r, ctx->alcf->signer,
                                          &ctx->client.id, &subject, scope,
                                          &ctx->client.plan, consent_id,
                                          &ctx->jti, ctx->now, exp,
                                          &ctx->access_token)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    obj = json_pack("{s:s%, s:s, s:I}",
                    "access_token", ctx->access_token.data,
                    ctx->access_token.len,
                    "token_type", "Bearer",
                    "expires_in", (json_int_t) expires_in);

    if (obj == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if ((ctx->refresh_token.len
         && json_object_set_new(obj, "refresh_token",
                                json_stringn((char *) ctx->refresh_token.data,
                                             ctx->refresh_token.len))
            != 0)
        || json_object_set_new(obj, "scope",
                               json_stringn(scope->len ? (char *) scope->data
                                                       : "",
                                            scope->len))
           != 0
        || (consent_id->len
            && json_object_set_new(obj, "consent_id",
                                   json_stringn((char *) consent_id->data,
                                                consent_id->len))
               != 0))
    {
        json_decref(obj);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "oauth2: client \"%V\" got an access token %s (%s%s%V)",
                  &ctx->client.id,
                  ngx_http_oauth2_authz_name(name, &ctx->access_token),
                  ctx->grant == NGX_HTTP_OAUTH2_GRANT_CODE
                  ? "authorization_code"
                  : ctx->grant == NGX_HTTP_OAUTH2_GRANT_REFRESH
                    ? "refresh_token" : "client_credentials",
                  consent_id->len ? ", consent " : "", consent_id);

    return ngx_http_oauth2_authz_json(r, NGX_HTTP_OK, obj, 0);
}
