
/*
 * ngx_oauth2_module: finding the bearer token (RFC 6750) and hashing it.
 */


#include "ngx_http_oauth2_module.h"

#include <openssl/evp.h>


/*
 * RFC 6750 2.1:
 *
 *     b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
 *                   *"="
 *     credentials = "Bearer" 1*SP b64token
 */

static ngx_uint_t
ngx_oauth2_is_b64token(u_char *p, size_t len)
{
    u_char  *start, *end;

    start = p;
    end = p + len;

    while (p < end
           && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
               || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'
               || *p == '_' || *p == '~' || *p == '+' || *p == '/'))
    {
        p++;
    }

    if (p == start) {
        return 0;
    }

    while (p < end && *p == '=') {
        p++;
    }

    return p == end;
}


ngx_oauth2_outcome_e
ngx_oauth2_token_extract(ngx_http_request_t *r, size_t max_len,
    ngx_str_t *token)
{
    u_char           *p, *end;
    ngx_str_t         arg;
    ngx_table_elt_t  *h;

    /*
     * RFC 6750 2.3 tokens in the URI end up in logs and caches: they are
     * not accepted, and a request that carries one is rejected, whether
     * or not it also has an Authorization header, so that a client never
     * has two tokens looked at
     */

    if (r->args.len
        && ngx_http_arg(r, (u_char *) "access_token", 12, &arg) == NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: access_token in the query string refused");
        return NGX_OAUTH2_INVALID_REQUEST;
    }

    /* nginx itself rejects a request with two Authorization headers */

    h = r->headers_in.authorization;

    if (h == NULL) {
        return NGX_OAUTH2_MISSING_TOKEN;
    }

    p = h->value.data;
    end = p + h->value.len;

    if (h->value.len < 6 || ngx_strncasecmp(p, (u_char *) "Bearer", 6) != 0) {
        /* another scheme, e.g. Basic: no bearer credentials at all */
        return NGX_OAUTH2_MISSING_TOKEN;
    }

    p += 6;

    if (p < end
        && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
            || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
    {
        /* a scheme that only starts with "Bearer", e.g. "BearerX" */
        return NGX_OAUTH2_MISSING_TOKEN;
    }

    if (p == end || *p != ' ') {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: bearer credentials without a token");
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    while (p < end && *p == ' ') {
        p++;
    }

    token->data = p;
    token->len = end - p;

    if (token->len == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: empty bearer token");
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    if (token->len > max_len) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: bearer token of %uz bytes is longer than "
                      "oauth2_token_max_length %uz", token->len, max_len);
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    if (!ngx_oauth2_is_b64token(token->data, token->len)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: bearer token has characters outside "
                      "RFC 6750 b64token");
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    return NGX_OAUTH2_OK;
}


/*
 * The token's SHA-256: its name in Redis (in hex), in the cache, in logs.
 * The digest and a context are made once per process: EVP_sha256() would
 * look the algorithm up again on every call, and EVP_Digest() allocates
 * and frees a context each time.
 */

static EVP_MD      *ngx_oauth2_sha256;
static EVP_MD_CTX  *ngx_oauth2_sha256_ctx;


ngx_int_t
ngx_oauth2_token_hash(ngx_str_t *token, u_char *digest)
{
    unsigned int  len;

    if (ngx_oauth2_sha256_ctx == NULL) {
        ngx_oauth2_sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
        ngx_oauth2_sha256_ctx = EVP_MD_CTX_new();

        if (ngx_oauth2_sha256 == NULL || ngx_oauth2_sha256_ctx == NULL) {
            ngx_oauth2_token_hash_free();
            return NGX_ERROR;
        }
    }

    if (EVP_DigestInit_ex2(ngx_oauth2_sha256_ctx, ngx_oauth2_sha256, NULL)
           != 1
        || EVP_DigestUpdate(ngx_oauth2_sha256_ctx, token->data, token->len)
           != 1
        || EVP_DigestFinal_ex(ngx_oauth2_sha256_ctx, digest, &len) != 1
        || len != NGX_OAUTH2_DIGEST_LEN)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* at a process's exit: the module is unloaded after it */

void
ngx_oauth2_token_hash_free(void)
{
    EVP_MD_free(ngx_oauth2_sha256);
    EVP_MD_CTX_free(ngx_oauth2_sha256_ctx);
    ngx_oauth2_sha256 = NULL;
    ngx_oauth2_sha256_ctx = NULL;
}
