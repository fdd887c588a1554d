
/*
 * ngx_oauth2_module: JWT access tokens issued by the token endpoint
 * (RFC 9068), for the gateway half's oauth2_jwt_key to verify.
 *
 *   oauth2_access_token_format opaque | jwt ALG KEY [kid=KID] [iss=ISSUER]
 *       [aud=AUDIENCE];
 *
 * The private key (RS*, ES*: a PEM file) or the secret (HS*: as for
 * oauth2_jwt_key) is read once, at configuration time, into an OpenSSL
 * signing context that a request copies.  The header is fixed: {"alg",
 * "typ":"at+jwt", "kid"}.  libjwt names the algorithms (jwt_str_alg);
 * it does not sign: libjwt 1.10's jwt_encode_str() always writes
 * "typ":"JWT" in the header, whatever jwt_add_header() set, and RFC 9068
 * 2.1 requires "at+jwt".
 */


#include "ngx_http_oauth2_authz.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>


#define NGX_HTTP_OAUTH2_SIGN_HS  1
#define NGX_HTTP_OAUTH2_SIGN_RS  2
#define NGX_HTTP_OAUTH2_SIGN_ES  3


struct ngx_http_oauth2_signer_s {
    ngx_str_t                    alg;
    ngx_uint_t                   type;
    EVP_PKEY                    *pkey;
    EVP_MD_CTX                  *ctx;            /* initialised with pkey */
    size_t                       ec_size;        /* bytes of r, of s */
    size_t                       sig_max;
    ngx_str_t                    header;         /* base64url */
    ngx_str_t                    iss;
    ngx_str_t                    aud;
};


static char *ngx_http_oauth2_signer_key(ngx_conf_t *cf,
    ngx_http_oauth2_signer_t *s, ngx_str_t *value, const EVP_MD *md);
static void ngx_http_oauth2_signer_cleanup(void *data);
static ngx_int_t ngx_http_oauth2_jwt_b64(ngx_pool_t *pool, json_t *obj,
    ngx_str_t *out);
static ngx_int_t ngx_http_oauth2_jwt_signature(ngx_http_oauth2_signer_t *s,
    ngx_pool_t *pool, ngx_log_t *log, ngx_str_t *input, ngx_str_t *sig);


char *
ngx_http_oauth2_token_format(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth2_authz_loc_conf_t *alcf = conf;

    char                      *rv;
    json_t                    *header;
    jwt_alg_t                  alg;
    ngx_str_t                 *value, kid, input, sig;
    ngx_uint_t                 i;
    const EVP_MD              *md;
    ngx_http_oauth2_signer_t  *s;

    if (alcf->format != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "opaque") == 0) {
        if (cf->args->nelts != 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_access_token_format opaque\" takes "
                               "no parameters");
            return NGX_CONF_ERROR;
        }

        alcf->format = NGX_HTTP_OAUTH2_FORMAT_OPAQUE;
        alcf->signer = NULL;

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "jwt") != 0 || cf->args->nelts < 4) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"oauth2_access_token_format\": opaque, "
                           "or jwt ALG KEY [kid=KID] [iss=ISSUER] "
                           "[aud=AUDIENCE] expected");
        return NGX_CONF_ERROR;
    }

    s = ngx_pcalloc(cf->pool, sizeof(ngx_http_oauth2_signer_t));
    if (s == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the algorithm, named exactly as tokens name it */

    alg = (value[2].len < 16) ? jwt_str_alg((char *) value[2].data)
                              : JWT_ALG_INVAL;

    switch (alg) {
    case JWT_ALG_HS256:
    case JWT_ALG_RS256:
    case JWT_ALG_ES256:
        md = EVP_sha256();
        s->ec_size = 32;
        break;
    case JWT_ALG_HS384:
    case JWT_ALG_RS384:
    case JWT_ALG_ES384:
        md = EVP_sha384();
        s->ec_size = 48;
        break;
    case JWT_ALG_HS512:
    case JWT_ALG_RS512:
    case JWT_ALG_ES512:
        md = EVP_sha512();
        s->ec_size = 66;
        break;
    default:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid algorithm \"%V\" in "
                           "\"oauth2_access_token_format\": HS256, HS384, "
                           "HS512, RS256, RS384, RS512, ES256, ES384 or "
                           "ES512 expected", &value[2]);
        return NGX_CONF_ERROR;
    }

    s->alg.data = (u_char *) jwt_alg_str(alg);
    s->alg.len = ngx_strlen(s->alg.data);

    if (value[2].len != s->alg.len
        || ngx_strncmp(value[2].data, s->alg.data, s->alg.len) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid algorithm \"%V\" in "
                           "\"oauth2_access_token_format\": write it as "
                           "\"%V\"", &value[2], &s->alg);
        return NGX_CONF_ERROR;
    }

    s->type = (value[2].data[0] == 'H') ? NGX_HTTP_OAUTH2_SIGN_HS
              : (value[2].data[0] == 'R') ? NGX_HTTP_OAUTH2_SIGN_RS
              : NGX_HTTP_OAUTH2_SIGN_ES;

    /* kid=, iss=, aud= */

    ngx_str_null(&kid);

    for (i = 4; i < cf->args->nelts; i++) {

        if (value[i].len > 4 && ngx_strncmp(value[i].data, "kid=", 4) == 0) {
            kid.data = value[i].data + 4;
            kid.len = value[i].len - 4;

        } else if (value[i].len > 4
                   && ngx_strncmp(value[i].data, "iss=", 4) == 0)
        {
            s->iss.data = value[i].data + 4;
            s->iss.len = value[i].len - 4;

        } else if (value[i].len > 4
                   && ngx_strncmp(value[i].data, "aud=", 4) == 0)
        {
            s->aud.data = value[i].data + 4;
            s->aud.len = value[i].len - 4;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"oauth2_access_token_format\": kid=, iss= "
                               "or aud= expected", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    rv = ngx_http_oauth2_signer_key(cf, s, &value[3], md);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    /* the header, once: {"alg":..,"typ":"at+jwt"[,"kid":..]} */

    header = json_pack("{s:s%, s:s}", "alg", s->alg.data, s->alg.len,
                       "typ", "at+jwt");

    if (header && kid.len
        && json_object_set_new(header, "kid",
                               json_stringn((char *) kid.data, kid.len))
           != 0)
    {
        json_decref(header);
        header = NULL;
    }

    if (header == NULL
        || ngx_http_oauth2_jwt_b64(cf->pool, header, &s->header) != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_access_token_format\": a kid that is "
                           "not UTF-8 text");
        return NGX_CONF_ERROR;
    }

    /* one signature now: nginx -t tells whether the key works */

    ngx_str_set(&input, "nginx -t");

    if (ngx_http_oauth2_jwt_signature(s, cf->pool, cf->log, &input, &sig)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_access_token_format\": OpenSSL cannot "
                           "sign with the %V key", &s->alg);
        return NGX_CONF_ERROR;
    }

    alcf->format = NGX_HTTP_OAUTH2_FORMAT_JWT;
    alcf->signer = s;

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth2_signer_key(ngx_conf_t *cf, ngx_http_oauth2_signer_t *s,
    ngx_str_t *value, const EVP_MD *md)
{
    int                  bits;
    BIO                 *bio;
    char                 group[64];
    size_t               min;
    ngx_str_t            file, secret;
    ngx_pool_cleanup_t  *cln;

    if (s->type == NGX_HTTP_OAUTH2_SIGN_HS) {

        /* a secret, or a file when the value is a path */

        if (ngx_oauth2_jwt_secret(cf, "oauth2_access_token_format", value,
                                  &secret)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        /* RFC 7518 3.2: a key of the size of the hash output at least */

        min = EVP_MD_get_size(md);

        if (secret.len < min) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_access_token_format\": the %V "
                               "secret must be %uz bytes at least "
                               "(RFC 7518 3.2)", &s->alg, min);
            return NGX_CONF_ERROR;
        }

        s->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL,
                                               secret.data, secret.len);
        s->sig_max = EVP_MAX_MD_SIZE;

    } else {
        file = *value;

        if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        bio = BIO_new_file((char *) file.data, "r");
        if (bio == NULL) {
            ERR_clear_error();
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_access_token_format\": cannot open "
                               "\"%V\"", &file);
            return NGX_CONF_ERROR;
        }

        s->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        BIO_free(bio);

        if (s->pkey == NULL) {
            ERR_clear_error();
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_access_token_format\": \"%V\" is "
                               "not a PEM private key (without a "
                               "passphrase)", &file);
            return NGX_CONF_ERROR;
        }

        if (s->type == NGX_HTTP_OAUTH2_SIGN_RS) {
            bits = EVP_PKEY_get_bits(s->pkey);

            if (EVP_PKEY_get_base_id(s->pkey) != EVP_PKEY_RSA
                || bits < 2048)
            {
                EVP_PKEY_free(s->pkey);
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"oauth2_access_token_format\": \"%V\" "
                                   "is not an RSA key of 2048 bits at "
                                   "least", &file);
                return NGX_CONF_ERROR;
            }

        } else if (EVP_PKEY_get_base_id(s->pkey) != EVP_PKEY_EC
                   || EVP_PKEY_get_group_name(s->pkey, group, sizeof(group),
                                              NULL) != 1
                   || ngx_strcmp(group, (s->ec_size == 32 ? "prime256v1"
                                         : s->ec_size == 48 ? "secp384r1"
                                         : "secp521r1")) != 0)
        {
            EVP_PKEY_free(s->pkey);
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_access_token_format\": \"%V\" is "
                               "not an EC key on the curve of %V", &file,
                               &s->alg);
            return NGX_CONF_ERROR;
        }

        s->sig_max = EVP_PKEY_get_size(s->pkey);
    }

    if (s->pkey == NULL) {
        return NGX_CONF_ERROR;
    }

    s->ctx = EVP_MD_CTX_new();

    if (s->ctx == NULL
        || EVP_DigestSignInit(s->ctx, NULL, md, NULL, s->pkey) != 1)
    {
        ERR_clear_error();
        EVP_MD_CTX_free(s->ctx);
        EVP_PKEY_free(s->pkey);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_access_token_format\": OpenSSL cannot "
                           "use the %V key", &s->alg);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        EVP_MD_CTX_free(s->ctx);
        EVP_PKEY_free(s->pkey);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_oauth2_signer_cleanup;
    cln->data = s;

    return NGX_CONF_OK;
}


static void
ngx_http_oauth2_signer_cleanup(void *data)
{
    ngx_http_oauth2_signer_t  *s = data;

    EVP_MD_CTX_free(s->ctx);
    EVP_PKEY_free(s->pkey);
}


/* a JSON object (released here), compact, base64url */

static ngx_int_t
ngx_http_oauth2_jwt_b64(ngx_pool_t *pool, json_t *obj, ngx_str_t *out)
{
    char       *dump;
    ngx_str_t   raw;

    dump = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);

    if (dump == NULL) {
        return NGX_ERROR;
    }

    raw.data = (u_char *) dump;
    raw.len = ngx_strlen(dump);

    out->data = ngx_pnalloc(pool, ngx_base64_encoded_length(raw.len));
    if (out->data == NULL) {
        free(dump);
        return NGX_ERROR;
    }

    ngx_encode_base64url(out, &raw);
    free(dump);

    return NGX_OK;
}


/*
 * The access token: iss, sub, aud, client_id, scope, plan, consent_id,
 * iat, exp, jti (the claims the gateway reads; iss and aud when
 * configured, plan and consent_id when there are).
 */

ngx_int_t
ngx_http_oauth2_jwt_claims(ngx_http_request_t *r,
    ngx_http_oauth2_signer_t *signer, ngx_str_t *client_id, ngx_str_t *sub,
    ngx_str_t *scope, ngx_str_t *plan, ngx_str_t *consent_id, ngx_str_t *jti,
    time_t iat, time_t exp, ngx_str_t *token)
{
    u_char     *p;
    json_t     *c;
    ngx_str_t   payload, input, sig;

    c = json_object();
    if (c == NULL) {
        return NGX_ERROR;
    }

    if ((signer->iss.len
         && json_object_set_new(c, "iss",
                                json_stringn((char *) signer->iss.data,
                                             signer->iss.len)) != 0)
        || json_object_set_new(c, "sub",
                               json_stringn((char *) sub->data, sub->len))
           != 0
        || (signer->aud.len
            && json_object_set_new(c, "aud",
                                   json_stringn((char *) signer->aud.data,
                                                signer->aud.len)) != 0)
        || json_object_set_new(c, "client_id",
                               json_stringn((char *) client_id->data,
                                            client_id->len)) != 0
        || json_object_set_new(c, "scope",
                               json_stringn(scope->len ? (char *) scope->data
                                                       : "",
                                            scope->len)) != 0
        || (plan->len
            && json_object_set_new(c, "plan",
                                   json_stringn((char *) plan->data,
                                                plan->len)) != 0)
        || (consent_id->len
            && json_object_set_new(c, "consent_id",
                                   json_stringn((char *) consent_id->data,
                                                consent_id->len)) != 0)
        || json_object_set_new(c, "iat", json_integer((json_int_t) iat)) != 0
        || json_object_set_new(c, "exp", json_integer((json_int_t) exp)) != 0
        || json_object_set_new(c, "jti",
                               json_stringn((char *) jti->data, jti->len))
           != 0)
    {
        json_decref(c);
        return NGX_ERROR;
    }

    if (ngx_http_oauth2_jwt_b64(r->pool, c, &payload) != NGX_OK) {
        return NGX_ERROR;
    }

    input.len = signer->header.len + 1 + payload.len;
    input.data = ngx_pnalloc(r->pool, input.len);
    if (input.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(input.data, signer->header.data, signer->header.len);
    *p++ = '.';
    ngx_memcpy(p, payload.data, payload.len);

    if (ngx_http_oauth2_jwt_signature(signer, r->pool, r->connection->log,
                                      &input, &sig)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    token->len = input.len + 1 + ngx_base64_encoded_length(sig.len);
    token->data = ngx_pnalloc(r->pool, token->len);
    if (token->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(token->data, input.data, input.len);
    *p++ = '.';

    payload.data = p;
    ngx_encode_base64url(&payload, &sig);

    token->len = input.len + 1 + payload.len;

    return NGX_OK;
}


/* the JWS signature of input, raw: a MAC, RSA PKCS#1 v1.5, ECDSA r || s */

static ngx_int_t
ngx_http_oauth2_jwt_signature(ngx_http_oauth2_signer_t *s, ngx_pool_t *pool,
    ngx_log_t *log, ngx_str_t *input, ngx_str_t *sig)
{
    size_t             len;
    u_char            *der;
    ngx_int_t          rc;
    EVP_MD_CTX        *md;
    ECDSA_SIG         *esig;
    const u_char      *p;
    const BIGNUM      *br, *bs;

    md = EVP_MD_CTX_new();
    der = ngx_pnalloc(pool, s->sig_max);

    if (md == NULL || der == NULL
        || EVP_MD_CTX_copy_ex(md, s->ctx) != 1)
    {
        EVP_MD_CTX_free(md);
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth2: cannot copy the signing context");
        ERR_clear_error();
        return NGX_ERROR;
    }

    len = s->sig_max;

    rc = (EVP_DigestSign(md, der, &len, input->data, input->len) == 1)
         ? NGX_OK : NGX_ERROR;

    EVP_MD_CTX_free(md);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "oauth2: EVP_DigestSign() failed");
        ERR_clear_error();
        return NGX_ERROR;
    }

    if (s->type != NGX_HTTP_OAUTH2_SIGN_ES) {
        sig->data = der;
        sig->len = len;
        return NGX_OK;
    }

    /* DER ECDSA-Sig-Value to JOSE r || s (RFC 7518 3.4) */

    p = der;
    esig = d2i_ECDSA_SIG(NULL, &p, (long) len);

    if (esig == NULL) {
        ERR_clear_error();
        return NGX_ERROR;
    }

    ECDSA_SIG_get0(esig, &br, &bs);

    sig->len = 2 * s->ec_size;
    sig->data = ngx_pnalloc(pool, sig->len);

    if (sig->data == NULL
        || BN_bn2binpad(br, sig->data, s->ec_size) != (int) s->ec_size
        || BN_bn2binpad(bs, sig->data + s->ec_size, s->ec_size)
           != (int) s->ec_size)
    {
        ECDSA_SIG_free(esig);
        return NGX_ERROR;
    }

    ECDSA_SIG_free(esig);

    return NGX_OK;
}


/*
 * The jti of a token that looks like a JWT, for revocation: read, not
 * verified (the jti's record says whose it is).  NGX_DECLINED: none.
 */

ngx_int_t
ngx_http_oauth2_jwt_jti(ngx_http_request_t *r, ngx_str_t *token,
    ngx_str_t *jti)
{
    u_char        *dot1, *dot2;
    json_t        *claims, *v;
    ngx_str_t      src, dst;
    json_error_t   err;

    if (!ngx_oauth2_jwt_is_compact(token)) {
        return NGX_DECLINED;
    }

    dot1 = ngx_strlchr(token->data, token->data + token->len, '.');
    dot2 = ngx_strlchr(dot1 + 1, token->data + token->len, '.');

    src.data = dot1 + 1;
    src.len = dot2 - dot1 - 1;

    dst.data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(src.len));
    if (dst.data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_decode_base64url(&dst, &src) != NGX_OK) {
        return NGX_DECLINED;
    }

    claims = json_loadb((char *) dst.data, dst.len, JSON_REJECT_DUPLICATES,
                        &err);
    v = json_object_get(claims, "jti");

    if (!json_is_string(v)) {
        json_decref(claims);
        return NGX_DECLINED;
    }

    src.data = (u_char *) json_string_value(v);
    src.len = json_string_length(v);

    if (!ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_IDENT, &src)) {
        json_decref(claims);
        return NGX_DECLINED;
    }

    jti->data = ngx_pstrdup(r->pool, &src);
    jti->len = src.len;

    json_decref(claims);

    return jti->data ? NGX_OK : NGX_ERROR;
}
