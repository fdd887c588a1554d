
/*
 * Fuzz target: JWT access tokens (ngx_oauth2_jwt_verify), against the keys
 * of fuzz.conf (RS256 kid=rs, ES256 kid=es, HS256 without kid).
 *
 * The first byte is the mode, the rest its input:
 *   mode & 3 == 0   the token as it is: the compact form, the header, the
 *                   key choice, base64url and the signature checks (a
 *                   fuzzer does not forge signatures: this stops there)
 *   mode & 3 == 1   header JSON NUL claims JSON: the harness base64url-
 *                   encodes both and signs them with the HS256 secret, so
 *                   that the header and claim checks are all reached
 *   mode & 3 == 2   claims JSON, under {"alg":"HS256","typ":"JWT"}
 *   mode & 3 == 3   as 0, then ngx_oauth2_jwt_claims(), the path of a JWT
 *                   that the cache holds
 * mode & 4 chooses the server: with issuer, audience, leeway, claim names
 * and revocation, or with nothing but the keys.
 */


#include "ngx_oauth2_fuzz.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static u_char  secret[4096];
static size_t  secret_len;


/* the HS256 secret of fuzz.conf, to sign with */

ngx_int_t
ngx_oauth2_fuzz_target_init(void)
{
    char   path[4096];
    FILE  *f;

    snprintf(path, sizeof(path), "%s/hs256.secret", getenv("OAUTH2_FUZZ_DIR"));

    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "fuzz: cannot open %s\n", path);
        return NGX_ERROR;
    }

    secret_len = fread(secret, 1, sizeof(secret), f);
    fclose(f);

    while (secret_len && secret[secret_len - 1] == '\n') {
        secret_len--;
    }

    return NGX_OK;
}


static void
ngx_oauth2_fuzz_sign(ngx_pool_t *pool, ngx_str_t *header, ngx_str_t *claims,
    ngx_str_t *token)
{
    u_char        *p;
    size_t         len;
    ngx_str_t      md_str, enc;
    unsigned int   md_len;
    u_char         md[EVP_MAX_MD_SIZE];

    len = ngx_base64_encoded_length(header->len) + 1
          + ngx_base64_encoded_length(claims->len) + 1
          + ngx_base64_encoded_length(EVP_MAX_MD_SIZE);

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        abort();
    }

    token->data = p;

    enc.data = p;
    ngx_encode_base64url(&enc, header);
    p += enc.len;
    *p++ = '.';

    enc.data = p;
    ngx_encode_base64url(&enc, claims);
    p += enc.len;

    if (HMAC(EVP_sha256(), secret, (int) secret_len, token->data,
             p - token->data, md, &md_len)
        == NULL)
    {
        abort();
    }

    *p++ = '.';

    md_str.data = md;
    md_str.len = md_len;

    enc.data = p;
    ngx_encode_base64url(&enc, &md_str);
    p += enc.len;

    /* in memory of exactly its length, for ASan */

    len = p - token->data;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        abort();
    }

    ngx_memcpy(p, token->data, len);
    token->data = p;
    token->len = len;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                       *buf, *nul;
    ngx_str_t                     token, header, claims;
    ngx_uint_t                    mode;
    ngx_http_request_t           *r;
    ngx_oauth2_outcome_e          rc;
    ngx_http_oauth2_ctx_t        *ctx;
    ngx_http_oauth2_loc_conf_t   *olcf;
    ngx_http_oauth2_main_conf_t  *omcf;

    if (size == 0) {
        return 0;
    }

    mode = data[0];
    data++;
    size--;

    r = ngx_oauth2_fuzz_request(mode >> 2);
    ctx = ngx_oauth2_fuzz_ctx(r);

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_module);
    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);

    /* exactly its size: a read past its end is an ASan report */

    buf = ngx_pnalloc(r->pool, size ? size : 1);
    if (buf == NULL) {
        abort();
    }

    ngx_memcpy(buf, data, size);

    switch (mode & 3) {

    case 1:
        nul = memchr(buf, '\0', size);
        if (nul == NULL) {
            goto done;
        }

        header.data = buf;
        header.len = nul - buf;
        claims.data = nul + 1;
        claims.len = buf + size - (nul + 1);

        ngx_oauth2_fuzz_sign(r->pool, &header, &claims, &token);
        break;

    case 2:
        ngx_str_set(&header, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
        claims.data = buf;
        claims.len = size;

        ngx_oauth2_fuzz_sign(r->pool, &header, &claims, &token);
        break;

    default:
        token.data = buf;
        token.len = size;
    }

    rc = ngx_oauth2_jwt_verify(r, olcf, omcf, ctx, &token);

    if (rc == NGX_OAUTH2_OK) {
        /* what the module relies on after a verified token */

        if (ctx->record.client_id.len == 0 || !ctx->record.jwt
            || ctx->record.expires <= ngx_time() || ctx->claims == NULL
            || (olcf->jwt_revocation && ctx->jti.len == 0))
        {
            abort();
        }

    } else if (rc != NGX_OAUTH2_INVALID_TOKEN) {
        abort();
    }

    if ((mode & 3) == 3) {
        ctx = ngx_oauth2_fuzz_ctx(r);
        (void) ngx_oauth2_jwt_claims(r, olcf, ctx, &token);
    }

done:

    ngx_oauth2_fuzz_done(r);

    return 0;
}
