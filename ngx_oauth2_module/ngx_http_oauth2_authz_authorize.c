
/*
 * ngx_oauth2_module: the authorization endpoint (RFC 6749 4.1.1, PKCE
 * RFC 7636) and the decision the bank's consent application reports.
 *
 *   GET  oauth2_authorize  ?response_type=code&client_id=...
 *        1. the client: unknown, not subscribed: 401 JSON, no redirect;
 *        2. the redirect_uri: not exactly a registered one: 400 page
 *           "Redirect URI Mismatch", no redirect;
 *        3. anything else wrong: a redirect to the client with error=
 *           and state= (RFC 6749 4.1.2.1);
 *        4. the request is kept, pending, for 10 minutes (authz_put.lua)
 *           and the user goes to oauth2_authorize_login ?request=<id>.
 *   GET  oauth2_authorize  ?request=<id>
 *        the pending request as JSON, for the consent page.
 *   POST oauth2_authorize_decision  request=<id>&user=&decision=[&scope=]
 *        authz_decide.lua, once per request: allow creates the consent
 *        and a code, and redirects to redirect_uri?code=&state=; deny
 *        redirects with error=access_denied.
 */


#include "ngx_http_oauth2_authz.h"
#include "ngx_oauth2_redis.h"

#include <jansson.h>


static ngx_int_t ngx_http_oauth2_authorize_client(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_oauth2_authorize_check(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx);
static ngx_int_t ngx_http_oauth2_authorize_stored(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_oauth2_authorize_fail(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, char *error);
static ngx_int_t ngx_http_oauth2_authorize_mismatch(ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth2_request_details(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx);
static ngx_int_t ngx_http_oauth2_request_read(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply);
static void ngx_http_oauth2_decision_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth2_decision_start(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx);
static ngx_int_t ngx_http_oauth2_decision_done(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply);


static ngx_str_t  ngx_http_oauth2_default_grants =
    ngx_string("authorization_code refresh_token");


ngx_int_t
ngx_http_oauth2_authorize_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                    *id;
    ngx_http_oauth2_authz_ctx_t  *ctx;

    if (!(r->method & NGX_HTTP_GET)) {
        return ngx_http_oauth2_authz_not_allowed(r, "GET");
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    ctx = ngx_http_oauth2_authz_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_oauth2_authz_parse_form(r->pool, &r->args, &ctx->form)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->form.flags[NGX_HTTP_OAUTH2_P_REQUEST]) {
        rc = ngx_http_oauth2_request_details(r, ctx);

    } else {
        /* 1. the client: no redirect to anywhere before it is known */

        id = &ctx->form.value[NGX_HTTP_OAUTH2_P_CLIENT_ID];

        if (ctx->form.flags[NGX_HTTP_OAUTH2_P_CLIENT_ID]
            & (NGX_HTTP_OAUTH2_DUP|NGX_HTTP_OAUTH2_BAD)
            || !ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_IDENT, id))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: authorization request without one "
                          "valid client_id");

            return ngx_http_oauth2_authz_error(r, NGX_HTTP_UNAUTHORIZED,
                                               "invalid_client",
                                               "invalid client id or "
                                               "secret", 0);
        }

        rc = ngx_http_oauth2_authz_fetch_client(r, ctx, id,
                                            ngx_http_oauth2_authorize_client);
    }

    if (rc == NGX_AGAIN) {
        /* finalized when Redis answers */
        r->main->count++;
        return NGX_DONE;
    }

    return rc;
}


static ngx_int_t
ngx_http_oauth2_authorize_client(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply)
{
    u_char                    *p, *end, *start;
    ngx_int_t                  rc;
    ngx_str_t                  uri, *sent;
    ngx_uint_t                 flags, n;
    ngx_http_oauth2_client_t  *cl;

    rc = ngx_http_oauth2_authz_client(r, ctx, reply, 0);

    if (rc == NGX_ERROR) {
        return ngx_http_oauth2_authz_unavailable(r);
    }

    if (rc != NGX_OK) {
        return ngx_http_oauth2_authz_error(r, NGX_HTTP_UNAUTHORIZED,
                                           "invalid_client",
                                           "invalid client id or secret", 0);
    }

    cl = &ctx->client;

    /* 2. the redirect_uri: exactly a registered one, or the only one */

    flags = ctx->form.flags[NGX_HTTP_OAUTH2_P_REDIRECT_URI];
    sent = &ctx->form.value[NGX_HTTP_OAUTH2_P_REDIRECT_URI];

    if (flags & (NGX_HTTP_OAUTH2_DUP|NGX_HTTP_OAUTH2_BAD)) {
        return ngx_http_oauth2_authorize_mismatch(r);
    }

    if (flags) {
        if (!ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_REDIRECT_URI, sent)
            || !ngx_http_oauth2_authz_word(&cl->redirect_uris, sent))
        {
            return ngx_http_oauth2_authorize_mismatch(r);
        }

        ctx->redirect_uri = *sent;

    } else {
        n = 0;
        p = cl->redirect_uris.data;
        end = p + cl->redirect_uris.len;

        while (p < end) {
            while (p < end && *p == ' ') {
                p++;
            }

            start = p;

            while (p < end && *p != ' ') {
                p++;
            }

            if (p > start) {
                uri.data = start;
                uri.len = p - start;
                n++;
            }
        }

        if (n != 1
            || !ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_REDIRECT_URI,
                                            &uri))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: client \"%V\" sent no redirect_uri and "
                          "has %ui registered", &cl->id, n);
            return ngx_http_oauth2_authorize_mismatch(r);
        }

        ctx->redirect_uri = uri;
    }

    /* 3. from here on, errors go back to the client */

    return ngx_http_oauth2_authorize_check(r, ctx);
}


static ngx_int_t
ngx_http_oauth2_authorize_check(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx)
{
    ngx_str_t                 *v, *grants, *a;
    ngx_http_oauth2_client_t  *cl;

    static ngx_str_t  code = ngx_string("code");
    static ngx_str_t  s256 = ngx_string("S256");
    static ngx_str_t  ac = ngx_string("authorization_code");

    cl = &ctx->client;
    v = ctx->form.value;

    /* the state goes back with every error, when it can */

    if (ctx->form.flags[NGX_HTTP_OAUTH2_P_STATE]) {
        if (ctx->form.flags[NGX_HTTP_OAUTH2_P_STATE]
            & (NGX_HTTP_OAUTH2_DUP|NGX_HTTP_OAUTH2_BAD)
            || !ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_STATE,
                                            &v[NGX_HTTP_OAUTH2_P_STATE]))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: authorization request with an invalid "
                          "state");
            return ngx_http_oauth2_authorize_fail(r, ctx, "invalid_request");
        }

        ctx->state = v[NGX_HTTP_OAUTH2_P_STATE];
    }

    if (ctx->form.bad || ctx->form.dup) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: authorization request with a duplicated "
                      "parameter, or one that is not UTF-8 text");
        return ngx_http_oauth2_authorize_fail(r, ctx, "invalid_request");
    }

    if (v[NGX_HTTP_OAUTH2_P_RESPONSE_TYPE].len == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: authorization request without "
                      "response_type");
        return ngx_http_oauth2_authorize_fail(r, ctx, "invalid_request");
    }

    if (v[NGX_HTTP_OAUTH2_P_RESPONSE_TYPE].len != code.len
        || ngx_strncmp(v[NGX_HTTP_OAUTH2_P_RESPONSE_TYPE].data, code.data,
                       code.len) != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: response_type other than \"code\"");
        return ngx_http_oauth2_authorize_fail(r, ctx,
                                              "unsupported_response_type");
    }

    grants = cl->grant_types.len ? &cl->grant_types
                                 : &ngx_http_oauth2_default_grants;

    if (!ngx_http_oauth2_authz_word(grants, &ac)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: client \"%V\" may not use "
                      "authorization_code (grant_types)", &cl->id);
        return ngx_http_oauth2_authorize_fail(r, ctx, "unauthorized_client");
    }

    /* the scope: known, and all the client's */

    if (ngx_http_oauth2_authz_scope(r->pool, &v[NGX_HTTP_OAUTH2_P_SCOPE],
                                    &ctx->scope)
        != NGX_OK
        || !ngx_http_oauth2_authz_scope_subset(&ctx->scope, &cl->scopes))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: client \"%V\" asked for a scope that is "
                      "missing, invalid or not its own", &cl->id);
        return ngx_http_oauth2_authorize_fail(r, ctx, "invalid_scope");
    }

    /* PKCE: S256 only ("plain" gives nothing over no PKCE) */

    if (v[NGX_HTTP_OAUTH2_P_CODE_CHALLENGE].len) {
        if (!ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_PKCE,
                                         &v[NGX_HTTP_OAUTH2_P_CODE_CHALLENGE])
            || v[NGX_HTTP_OAUTH2_P_CODE_CHALLENGE_METHOD].len != s256.len
            || ngx_strncmp(v[NGX_HTTP_OAUTH2_P_CODE_CHALLENGE_METHOD].data,
                           s256.data, s256.len) != 0)
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: invalid code_challenge, or a "
                          "code_challenge_method other than S256");
            return ngx_http_oauth2_authorize_fail(r, ctx, "invalid_request");
        }

    } else if (ctx->alcf->pkce
               || v[NGX_HTTP_OAUTH2_P_CODE_CHALLENGE_METHOD].len)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: authorization request without "
                      "code_challenge (oauth2_authorize_pkce)");
        return ngx_http_oauth2_authorize_fail(r, ctx, "invalid_request");
    }

    /* 4. pending, for the user's decision */

    a = ngx_palloc(r->pool, 16 * sizeof(ngx_str_t));
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_oauth2_authz_random(r, NGX_HTTP_OAUTH2_TOKEN_BYTES,
                                     &ctx->id)
        != NGX_OK
        || ngx_http_oauth2_authz_key(r, &a[0], "authz", &ctx->id, 0)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a[1].data = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (a[1].data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a[1].len = ngx_sprintf(a[1].data, "%d", NGX_HTTP_OAUTH2_AUTHZ_TTL)
               - a[1].data;
    ngx_str_set(&a[2], "client_id");
    a[3] = cl->id;
    ngx_str_set(&a[4], "client_name");
    a[5] = cl->name;
    ngx_str_set(&a[6], "redirect_uri");
    a[7] = ctx->redirect_uri;
    ngx_str_set(&a[8], "redirect_given");

    if (ctx->form.flags[NGX_HTTP_OAUTH2_P_REDIRECT_URI]) {
        ngx_str_set(&a[9], "1");

    } else {
        ngx_str_set(&a[9], "0");
    }

    ngx_str_set(&a[10], "scope");
    a[11] = ctx->scope;
    ngx_str_set(&a[12], "state");
    a[13] = ctx->state;
    ngx_str_set(&a[14], "code_challenge");
    a[15] = v[NGX_HTTP_OAUTH2_P_CODE_CHALLENGE];

    return ngx_http_oauth2_authz_call(r, ctx, NGX_OAUTH2_SCRIPT_AUTHZ_PUT,
                                      a, 16, 1,
                                      ngx_http_oauth2_authorize_stored);
}


static ngx_int_t
ngx_http_oauth2_authorize_stored(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply)
{
    ngx_str_t  name;

    if (reply->type != REDIS_REPLY_INTEGER) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth2: unexpected reply from redis for an "
                      "authorization request");
        return ngx_http_oauth2_authz_unavailable(r);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "oauth2: authorization request of client \"%V\" for "
                  "\"%V\" pending", &ctx->client.id, &ctx->scope);

    ngx_str_set(&name, "request");

    return ngx_http_oauth2_authz_redirect(r, &ctx->alcf->login, &name,
                                          &ctx->id, 1);
}


/* an error for the client, by redirect (RFC 6749 4.1.2.1) */

static ngx_int_t
ngx_http_oauth2_authorize_fail(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, char *error)
{
    ngx_str_t  names[2], values[2];

    ngx_str_set(&names[0], "error");
    values[0].data = (u_char *) error;
    values[0].len = ngx_strlen(error);

    ngx_str_set(&names[1], "state");
    values[1] = ctx->state;

    return ngx_http_oauth2_authz_redirect(r, &ctx->redirect_uri, names,
                                          values, ctx->state.len ? 2 : 1);
}


/* never a redirect to a URI that is not the client's own */

static ngx_int_t
ngx_http_oauth2_authorize_mismatch(ngx_http_request_t *r)
{
    ngx_int_t    rc;
    ngx_buf_t   *b;
    ngx_chain_t  out;

    static u_char  page[] =
        "<!DOCTYPE html>" CRLF
        "<html>" CRLF
        "<head><title>Redirect URI Mismatch</title></head>" CRLF
        "<body>" CRLF
        "<h1>Redirect URI Mismatch</h1>" CRLF
        "<p>The redirect_uri of the request is not one that the "
        "application registered.</p>" CRLF
        "</body>" CRLF
        "</html>" CRLF;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "oauth2: redirect_uri mismatch");

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_BAD_REQUEST;
    r->headers_out.content_length_n = sizeof(page) - 1;
    ngx_str_set(&r->headers_out.content_type, "text/html");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->pos = page;
    b->last = page + sizeof(page) - 1;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* GET ?request=<id>: the pending request, for the consent page */

static ngx_int_t
ngx_http_oauth2_request_details(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx)
{
    ngx_str_t  *a;

    ctx->id = ctx->form.value[NGX_HTTP_OAUTH2_P_REQUEST];

    if (ctx->form.flags[NGX_HTTP_OAUTH2_P_REQUEST]
        & (NGX_HTTP_OAUTH2_DUP|NGX_HTTP_OAUTH2_BAD)
        || !ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_HANDLE, &ctx->id))
    {
        return ngx_http_oauth2_authz_error(r, NGX_HTTP_BAD_REQUEST,
                                           "invalid_request", NULL, 0);
    }

    a = ngx_palloc(r->pool, 5 * sizeof(ngx_str_t));
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&a[0], "HMGET");

    if (ngx_http_oauth2_authz_key(r, &a[1], "authz", &ctx->id, 0) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&a[2], "client_id");
    ngx_str_set(&a[3], "client_name");
    ngx_str_set(&a[4], "scope");

    return ngx_http_oauth2_authz_call(r, ctx, NGX_OAUTH2_SCRIPT_NONE, a, 5, 0,
                                      ngx_http_oauth2_request_read);
}


static ngx_int_t
ngx_http_oauth2_request_read(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply)
{
    u_char     *p, *end, *start;
    json_t     *obj, *scopes;
    ngx_str_t   client, name, scope;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || ngx_http_oauth2_authz_reply_str(r, reply->element[0], &client)
           != NGX_OK
        || ngx_http_oauth2_authz_reply_str(r, reply->element[1], &name)
           != NGX_OK
        || ngx_http_oauth2_authz_reply_str(r, reply->element[2], &scope)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth2: unexpected reply from redis for an "
                      "authorization request");
        return ngx_http_oauth2_authz_unavailable(r);
    }

    if (client.len == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: authorization request unknown, decided or "
                      "expired");
        return ngx_http_oauth2_authz_error(r, NGX_HTTP_NOT_FOUND,
                                           "not_found", NULL, 0);
    }

    scopes = json_array();
    if (scopes == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = scope.data;
    end = p + scope.len;

    while (p < end) {
        while (p < end && *p == ' ') {
            p++;
        }

        start = p;

        while (p < end && *p != ' ') {
            p++;
        }

        if (p > start
            && json_array_append_new(scopes,
                                     json_stringn((char *) start, p - start))
               != 0)
        {
            json_decref(scopes);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* "o" takes the array's reference, on failure too */

    obj = json_pack("{s:s%, s:s%, s:s%, s:s%, s:o}",
                    "request", ctx->id.data, ctx->id.len,
                    "client_id", client.data, client.len,
                    "client_name", name.data ? (char *) name.data : "",
                    name.len,
                    "scope", scope.data ? (char *) scope.data : "",
                    scope.len,
                    "scopes", scopes);

    return ngx_http_oauth2_authz_json(r, NGX_HTTP_OK, obj, 0);
}


/* POST oauth2_authorize_decision */

ngx_int_t
ngx_http_oauth2_decision_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (!(r->method & NGX_HTTP_POST)) {
        return ngx_http_oauth2_authz_not_allowed(r, "POST");
    }

    rc = ngx_http_oauth2_authz_read_form(r, ngx_http_oauth2_decision_body);

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE
        || rc == NGX_HTTP_LENGTH_REQUIRED)
    {
        return ngx_http_oauth2_authz_error(r, rc, "invalid_request", NULL,
                                           0);
    }

    return rc;
}


static void
ngx_http_oauth2_decision_body(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_oauth2_authz_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_oauth2_authz_module);

    rc = ngx_http_oauth2_authz_body(r, ctx);

    if (rc == NGX_OK) {
        rc = ngx_http_oauth2_decision_start(r, ctx);

    } else if (rc == NGX_DECLINED) {
        rc = ngx_http_oauth2_authz_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request", NULL, 0);

    } else if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        rc = ngx_http_oauth2_authz_error(r, rc, "invalid_request", NULL, 0);

    } else {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_oauth2_authz_finish(r, rc);
}


static ngx_int_t
ngx_http_oauth2_decision_start(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx)
{
    u_char      *p;
    ngx_str_t   *v, *a, user, decision, consent;

    v = ctx->form.value;

    if (ctx->form.bad || ctx->form.dup) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: decision with a duplicated parameter, or one "
                      "that is not UTF-8 text");
        goto invalid;
    }

    ctx->id = v[NGX_HTTP_OAUTH2_P_REQUEST];
    decision = v[NGX_HTTP_OAUTH2_P_DECISION];

    if (!ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_HANDLE, &ctx->id)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: decision without a valid request");
        goto invalid;
    }

    if (!((decision.len == 5
           && ngx_strncmp(decision.data, "allow", 5) == 0)
          || (decision.len == 4
              && ngx_strncmp(decision.data, "deny", 4) == 0)))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: decision is neither \"allow\" nor \"deny\"");
        goto invalid;
    }

    /* the user: the login's (user=VALUE), or the form's */

    if (ctx->alcf->decision_user) {
        if (ctx->form.flags[NGX_HTTP_OAUTH2_P_USER]) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: a user in the decision's form, where "
                          "oauth2_authorize_decision names it");
            goto invalid;
        }

        if (ngx_http_complex_value(r, ctx->alcf->decision_user, &user)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {
        user = v[NGX_HTTP_OAUTH2_P_USER];
    }

    if (!ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_IDENT, &user)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: decision without a valid user (1 to 255 "
                      "visible ASCII characters)");
        goto invalid;
    }

    if (ctx->form.flags[NGX_HTTP_OAUTH2_P_SCOPE]
        && ngx_http_oauth2_authz_scope(r->pool, &v[NGX_HTTP_OAUTH2_P_SCOPE],
                                       &ctx->scope)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: decision with an invalid scope");
        return ngx_http_oauth2_authz_error(r, NGX_HTTP_BAD_REQUEST,
                                           "invalid_scope", NULL, 0);
    }

    /* the consent and the code it may create */

    a = ngx_palloc(r->pool, 11 * sizeof(ngx_str_t));
    p = ngx_pnalloc(r->pool, 4 * NGX_TIME_T_LEN);
    if (a == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_oauth2_authz_random(r, NGX_HTTP_OAUTH2_ID_BYTES, &consent)
        != NGX_OK
        || ngx_http_oauth2_authz_random(r, NGX_HTTP_OAUTH2_TOKEN_BYTES,
                                        &ctx->code)
           != NGX_OK
        || ngx_http_oauth2_authz_key(r, &a[0], "authz", &ctx->id, 0)
           != NGX_OK
        || ngx_http_oauth2_authz_key(r, &a[1], "consent", &consent, 0)
           != NGX_OK
        || ngx_http_oauth2_authz_key(r, &a[2], "code", &ctx->code, 1)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a[3] = decision;
    a[4] = user;
    a[5] = ctx->scope;
    a[6] = consent;

    a[7].data = p;
    a[7].len = ngx_sprintf(p, "%T", ctx->now) - p;
    p += a[7].len;

    a[8].data = p;
    a[8].len = ngx_sprintf(p, "%T", ctx->now + ctx->alcf->consent_ttl) - p;
    p += a[8].len;

    a[9].data = p;
    a[9].len = ngx_sprintf(p, "%T", ctx->alcf->consent_ttl
                                    + NGX_HTTP_OAUTH2_CONSENT_KEEP) - p;
    p += a[9].len;

    a[10].data = p;
    a[10].len = ngx_sprintf(p, "%T", ctx->alcf->code_ttl) - p;

    ctx->jti = consent;

    return ngx_http_oauth2_authz_call(r, ctx, NGX_OAUTH2_SCRIPT_AUTHZ_DECIDE,
                                      a, 11, 3,
                                      ngx_http_oauth2_decision_done);

invalid:

    return ngx_http_oauth2_authz_error(r, NGX_HTTP_BAD_REQUEST,
                                       "invalid_request", NULL, 0);
}


static ngx_int_t
ngx_http_oauth2_decision_done(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, redisReply *reply)
{
    u_char       name[7];
    ngx_str_t    uri, state, client, names[2], values[2];
    ngx_uint_t   allow;
    redisReply **e;

    ngx_str_null(&uri);
    ngx_str_null(&state);
    ngx_str_null(&client);

    e = reply->element;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || e[0]->type != REDIS_REPLY_INTEGER
        || (e[0]->integer == 1
            && (reply->elements != 4
                || ngx_http_oauth2_authz_reply_str(r, e[1], &uri) != NGX_OK
                || ngx_http_oauth2_authz_reply_str(r, e[2], &state)
                   != NGX_OK
                || ngx_http_oauth2_authz_reply_str(r, e[3], &client)
                   != NGX_OK
                || uri.len == 0)))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth2: unexpected reply from redis for a decision");
        return ngx_http_oauth2_authz_unavailable(r);
    }

    if (e[0]->integer == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: decision on an authorization request that "
                      "is unknown, decided already or expired");
        return ngx_http_oauth2_authz_error(r, NGX_HTTP_BAD_REQUEST,
                                           "invalid_request",
                                           "unknown or used request", 0);
    }

    if (e[0]->integer == 2) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: decision with a scope the client did not "
                      "ask for");
        return ngx_http_oauth2_authz_error(r, NGX_HTTP_BAD_REQUEST,
                                           "invalid_scope", NULL, 0);
    }

    allow = (ctx->form.value[NGX_HTTP_OAUTH2_P_DECISION].len == 5);

    if (allow) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: consent \"%V\" given to client \"%V\", code "
                      "%s", &ctx->jti, &client,
                      ngx_http_oauth2_authz_name(name, &ctx->code));

        ngx_str_set(&names[0], "code");
        values[0] = ctx->code;

    } else {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: consent denied to client \"%V\"", &client);

        ngx_str_set(&names[0], "error");
        ngx_str_set(&values[0], "access_denied");
    }

    ngx_str_set(&names[1], "state");
    values[1] = state;

    return ngx_http_oauth2_authz_redirect(r, &uri, names, values,
                                          state.len ? 2 : 1);
}
