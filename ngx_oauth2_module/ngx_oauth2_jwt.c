
/*
 * ngx_oauth2_module: JWT access tokens (RFC 9068), verified locally.
 *
 * Keys are read and parsed once, at configuration time (oauth2_jwt_key),
 * into OpenSSL EVP_PKEYs; a request's token is checked against the strict
 * compact form, its header and claims are decoded with nginx's base64url
 * and jansson (duplicate keys rejected), and its signature is verified
 * with EVP on the parsed key whose algorithm the configuration pins.
 *
 * libjwt 1.10's own jwt_decode() is not used on requests: it verifies
 * with whatever "alg" the token names, accepts "alg: none" without a key,
 * decodes base64url loosely, rejects "typ: at+jwt", re-parses PEM keys on
 * every call and lets duplicate claim names through.  libjwt names the
 * algorithms (jwt_str_alg) at configuration time.
 */


#include "ngx_http_oauth2_module.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>


#define NGX_OAUTH2_JWT_HS  1
#define NGX_OAUTH2_JWT_RS  2
#define NGX_OAUTH2_JWT_ES  3


struct ngx_oauth2_jwt_key_s {
    ngx_str_t                    kid;        /* empty: tokens without kid */
    ngx_str_t                    alg;        /* as tokens name it */
    ngx_uint_t                   type;
    const EVP_MD                *md;
    EVP_PKEY                    *pkey;
    EVP_MD_CTX                  *ctx;        /* initialised with the key */
    size_t                       ec_size;    /* bytes of r, of s */
};


/* the worker's context a request verifies in (workers are single-threaded) */
static EVP_MD_CTX  *ngx_oauth2_jwt_md;


static void ngx_oauth2_jwt_key_cleanup(void *data);
static ngx_int_t ngx_oauth2_jwt_signature(ngx_http_request_t *r,
    ngx_oauth2_jwt_key_t *key, u_char *input, size_t len, ngx_str_t *sig);
static json_t *ngx_oauth2_jwt_part(ngx_http_request_t *r, u_char *start,
    size_t len);
static ngx_int_t ngx_oauth2_jwt_iss_aud(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, json_t *claims);
static ngx_int_t ngx_oauth2_jwt_string(ngx_http_request_t *r,
    json_t *claims, ngx_str_t *name, ngx_str_t *value);
static void ngx_oauth2_jwt_str(json_t *v, ngx_str_t *s);
static ngx_int_t ngx_http_oauth2_jwt_path_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


/* oauth2_jwt_key ALG FILE_OR_SECRET [kid=KID] */

char *
ngx_http_oauth2_jwt_key_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_main_conf_t *omcf = conf;

    int                    bits;
    char                   group[64];
    BIO                   *bio;
    size_t                 min;
    jwt_alg_t              alg;
    ngx_str_t             *value, file, secret;
    ngx_uint_t             i;
    ngx_pool_cleanup_t    *cln;
    ngx_oauth2_jwt_key_t  *key, *keys;

    value = cf->args->elts;

    if (omcf->jwt_keys == NULL) {
        omcf->jwt_keys = ngx_array_create(cf->pool, 2,
                                          sizeof(ngx_oauth2_jwt_key_t));
        if (omcf->jwt_keys == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    key = ngx_array_push(omcf->jwt_keys);
    if (key == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(key, sizeof(ngx_oauth2_jwt_key_t));

    if (cf->args->nelts == 4) {
        if (ngx_strncmp(value[3].data, "kid=", 4) != 0 || value[3].len == 4) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"oauth2_jwt_key\": kid=KID expected",
                               &value[3]);
            return NGX_CONF_ERROR;
        }

        key->kid.data = value[3].data + 4;
        key->kid.len = value[3].len - 4;
    }

    /* tokens choose their key by kid alone: a second one would be dead */

    keys = omcf->jwt_keys->elts;

    for (i = 0; i < omcf->jwt_keys->nelts - 1; i++) {
        if (keys[i].kid.len == key->kid.len
            && (key->kid.len == 0
                || ngx_strncmp(keys[i].kid.data, key->kid.data,
                               key->kid.len) == 0))
        {
            if (key->kid.len) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"oauth2_jwt_key\": a key with kid "
                                   "\"%V\" is already configured", &key->kid);
            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"oauth2_jwt_key\": a key without kid is "
                                   "already configured");
            }

            return NGX_CONF_ERROR;
        }
    }

    alg = (value[1].len < 16) ? jwt_str_alg((char *) value[1].data)
                              : JWT_ALG_INVAL;

    switch (alg) {
    case JWT_ALG_HS256:
    case JWT_ALG_RS256:
    case JWT_ALG_ES256:
        key->md = EVP_sha256();
        key->ec_size = 32;
        break;
    case JWT_ALG_HS384:
    case JWT_ALG_RS384:
    case JWT_ALG_ES384:
        key->md = EVP_sha384();
        key->ec_size = 48;
        break;
    case JWT_ALG_HS512:
    case JWT_ALG_RS512:
    case JWT_ALG_ES512:
        key->md = EVP_sha512();
        key->ec_size = 66;
        break;
    default:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid algorithm \"%V\" in \"oauth2_jwt_key\": "
                           "HS256, HS384, HS512, RS256, RS384, RS512, "
                           "ES256, ES384 or ES512 expected", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* jwt_str_alg() ignores case: tokens must name it exactly */

    key->alg.data = (u_char *) jwt_alg_str(alg);
    key->alg.len = ngx_strlen(key->alg.data);

    if (ngx_strncmp(value[1].data, key->alg.data, key->alg.len) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid algorithm \"%V\" in \"oauth2_jwt_key\": "
                           "write it as \"%V\"", &value[1], &key->alg);
        return NGX_CONF_ERROR;
    }

    if (value[1].data[0] == 'H') {
        key->type = NGX_OAUTH2_JWT_HS;

        /* a secret, or a file when the value is a path */

        if (ngx_oauth2_jwt_secret(cf, "oauth2_jwt_key", &value[2], &secret)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        /* RFC 7518 3.2: a key of the size of the hash output at least */

        min = EVP_MD_get_size(key->md);

        if (secret.len < min) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_jwt_key\": the %V secret must be "
                               "%uz bytes at least (RFC 7518 3.2)",
                               &key->alg, min);
            return NGX_CONF_ERROR;
        }

        key->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL,
                                                 secret.data, secret.len);

    } else {
        key->type = (value[1].data[0] == 'R') ? NGX_OAUTH2_JWT_RS
                                              : NGX_OAUTH2_JWT_ES;
        file = value[2];

        if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        bio = BIO_new_file((char *) file.data, "r");
        if (bio == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_jwt_key\": cannot open \"%V\"",
                               &file);
            return NGX_CONF_ERROR;
        }

        key->pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        BIO_free(bio);

        if (key->pkey == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_jwt_key\": \"%V\" is not a PEM "
                               "public key", &file);
            return NGX_CONF_ERROR;
        }

        if (key->type == NGX_OAUTH2_JWT_RS) {
            bits = EVP_PKEY_get_bits(key->pkey);

            if (EVP_PKEY_get_base_id(key->pkey) != EVP_PKEY_RSA
                || bits < 2048)
            {
                EVP_PKEY_free(key->pkey);
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"oauth2_jwt_key\": \"%V\" is not an "
                                   "RSA key of 2048 bits at least", &file);
                return NGX_CONF_ERROR;
            }

        } else {
            if (EVP_PKEY_get_base_id(key->pkey) != EVP_PKEY_EC
                || EVP_PKEY_get_group_name(key->pkey, group, sizeof(group),
                                           NULL) != 1
                || ngx_strcmp(group, (key->ec_size == 32 ? "prime256v1"
                                      : key->ec_size == 48 ? "secp384r1"
                                      : "secp521r1")) != 0)
            {
                EVP_PKEY_free(key->pkey);
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"oauth2_jwt_key\": \"%V\" is not an "
                                   "EC key on the curve of %V", &file,
                                   &key->alg);
                return NGX_CONF_ERROR;
            }
        }
    }

    if (key->pkey == NULL) {
        return NGX_CONF_ERROR;
    }

    /*
     * the signing or verifying context is set up once, here: a request
     * copies it (EVP_MD_CTX_copy_ex) instead of initialising one, which
     * spares OpenSSL 3's lookup of the algorithms on every token
     */

    key->ctx = EVP_MD_CTX_new();

    if (key->ctx == NULL
        || (key->type == NGX_OAUTH2_JWT_HS
            ? EVP_DigestSignInit(key->ctx, NULL, key->md, NULL, key->pkey)
            : EVP_DigestVerifyInit(key->ctx, NULL, key->md, NULL, key->pkey))
           != 1)
    {
        EVP_MD_CTX_free(key->ctx);
        EVP_PKEY_free(key->pkey);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_jwt_key\": OpenSSL cannot use the %V "
                           "key", &key->alg);
        return NGX_CONF_ERROR;
    }

    /* the copies are finalised in place, not duplicated once more */
    EVP_MD_CTX_set_flags(key->ctx, EVP_MD_CTX_FLAG_FINALISE);

    /* its own copy of the pointers: the keys array moves as it grows */

    cln = ngx_pool_cleanup_add(cf->pool, sizeof(ngx_oauth2_jwt_key_t));
    if (cln == NULL) {
        EVP_MD_CTX_free(key->ctx);
        EVP_PKEY_free(key->pkey);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_oauth2_jwt_key_cleanup;
    ngx_memcpy(cln->data, key, sizeof(ngx_oauth2_jwt_key_t));

    return NGX_CONF_OK;
}


static void
ngx_oauth2_jwt_key_cleanup(void *data)
{
    ngx_oauth2_jwt_key_t  *key = data;

    EVP_MD_CTX_free(key->ctx);
    EVP_PKEY_free(key->pkey);
}


/* three base64url segments, nothing else */

ngx_int_t
ngx_oauth2_jwt_is_compact(ngx_str_t *token)
{
    u_char      *p, *end;
    ngx_uint_t   dots, run;

    dots = 0;
    run = 0;
    end = token->data + token->len;

    for (p = token->data; p < end; p++) {

        if (*p == '.') {
            if (run == 0) {
                return 0;
            }

            dots++;
            run = 0;
            continue;
        }

        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
        {
            return 0;
        }

        run++;
    }

    return dots == 2 && run > 0;
}


static void
ngx_oauth2_jwt_json_cleanup(void *data)
{
    json_decref(data);
}


/*
 * Verifies a JWT and fills rec, jti and the claims (for
 * $oauth2_jwt_claim_*) of ctx.
 */

ngx_oauth2_outcome_e
ngx_oauth2_jwt_verify(ngx_http_request_t *r, ngx_http_oauth2_loc_conf_t *olcf,
    ngx_http_oauth2_main_conf_t *omcf, ngx_http_oauth2_ctx_t *ctx,
    ngx_str_t *token)
{
    u_char                *dot1, *dot2, *p;
    time_t                 now;
    json_t                *header, *claims, *v, *e;
    size_t                 i;
    ngx_int_t              rc;
    ngx_str_t              sig_b64, sig, s;
    json_int_t             exp;
    ngx_uint_t             k;
    u_char                 buf[NGX_OAUTH2_ESCAPE_LEN];
    ngx_str_t              alg, kid, typ, esc;
    ngx_pool_cleanup_t    *cln;
    ngx_oauth2_record_t   *rec;
    ngx_oauth2_jwt_key_t  *keys, *key;

    static ngx_str_t  scp = ngx_string("scp");
    static ngx_str_t  azp = ngx_string("azp");
    static ngx_str_t  sub = ngx_string("sub");
    static ngx_str_t  none = ngx_string("(none)");

    rec = &ctx->record;
    esc.data = buf;

    if (!ngx_oauth2_jwt_is_compact(token)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT is not three base64url segments");
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    dot1 = ngx_strlchr(token->data, token->data + token->len, '.');
    dot2 = ngx_strlchr(dot1 + 1, token->data + token->len, '.');

    /* the header: alg pinned by the key, kid, typ */

    header = ngx_oauth2_jwt_part(r, token->data, dot1 - token->data);
    if (header == NULL) {
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    /* lengths from jansson: a string may hold "\u0000" */

    v = json_object_get(header, "kid");
    e = json_object_get(header, "typ");

    if (json_object_get(header, "crit")
        || (v && !json_is_string(v))
        || (e && !json_is_string(e)))
    {
        json_decref(header);
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT header has \"crit\", or a kid or typ "
                      "that is not a string");
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    ngx_oauth2_jwt_str(v, &kid);
    ngx_oauth2_jwt_str(e, &typ);
    ngx_oauth2_jwt_str(json_object_get(header, "alg"), &alg);

    if (typ.data
        && !(typ.len == 3
             && ngx_strncasecmp(typ.data, (u_char *) "JWT", 3) == 0)
        && !(typ.len == 6
             && ngx_strncasecmp(typ.data, (u_char *) "at+jwt", 6) == 0)
        && !(typ.len == 18
             && ngx_strncasecmp(typ.data, (u_char *) "application/at+jwt",
                                18) == 0))
    {
        esc.len = ngx_oauth2_escape(buf, &typ);
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT typ \"%V\" is not JWT or at+jwt", &esc);
        json_decref(header);
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    key = NULL;
    keys = omcf->jwt_keys ? omcf->jwt_keys->elts : NULL;

    for (k = 0; keys && k < omcf->jwt_keys->nelts; k++) {
        /* an empty "kid" is a kid, and no key has it */

        if (kid.data == NULL ? keys[k].kid.len == 0
                             : (keys[k].kid.len != 0
                                && keys[k].kid.len == kid.len
                                && ngx_strncmp(keys[k].kid.data, kid.data,
                                               kid.len) == 0))
        {
            key = &keys[k];
            break;
        }
    }

    if (key == NULL) {
        esc.len = ngx_oauth2_escape(buf, &kid);
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: no oauth2_jwt_key for kid %s%V%s",
                      kid.data ? "\"" : "", kid.data ? &esc : &none,
                      kid.data ? "\"" : "");
        json_decref(header);
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    if (alg.len != key->alg.len
        || ngx_strncmp(alg.data, key->alg.data, key->alg.len) != 0)
    {
        esc.len = ngx_oauth2_escape(buf, &alg);
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT alg %s%V%s is not the key's %V",
                      alg.data ? "\"" : "", alg.data ? &esc : &none,
                      alg.data ? "\"" : "", &key->alg);
        json_decref(header);
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    json_decref(header);

    /* the signature, over the first two segments as they were sent */

    sig_b64.data = dot2 + 1;
    sig_b64.len = token->data + token->len - sig_b64.data;

    sig.data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(sig_b64.len));
    if (sig.data == NULL) {
        return NGX_OAUTH2_INTERNAL_ERROR;
    }

    rc = (ngx_decode_base64url(&sig, &sig_b64) == NGX_OK)
         ? ngx_oauth2_jwt_signature(r, key, token->data, dot2 - token->data,
                                    &sig)
         : NGX_DECLINED;

    ngx_oauth2_metrics_jwt(&key->alg, rc);

    if (rc == NGX_ERROR) {
        return NGX_OAUTH2_INTERNAL_ERROR;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT signature does not verify (%V)",
                      &key->alg);
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    /* the claims */

    claims = ngx_oauth2_jwt_part(r, dot1 + 1, dot2 - dot1 - 1);
    if (claims == NULL) {
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        json_decref(claims);
        return NGX_OAUTH2_INTERNAL_ERROR;
    }

    cln->handler = ngx_oauth2_jwt_json_cleanup;
    cln->data = claims;
    ctx->claims = claims;

    now = ngx_time();

    v = json_object_get(claims, "exp");
    if (!json_is_integer(v)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT exp is missing or not an integer");
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    /* written so that no claim value, however large, overflows */

    exp = json_integer_value(v);

    if (exp <= now - olcf->jwt_leeway) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT has expired");
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    rec->expires = (exp < NGX_MAX_TIME_T_VALUE - olcf->jwt_leeway)
                   ? (time_t) exp + olcf->jwt_leeway : NGX_MAX_TIME_T_VALUE;

    v = json_object_get(claims, "nbf");
    if (v && (!json_is_integer(v)
              || (json_integer_value(v) > now
                  && json_integer_value(v) - now > olcf->jwt_leeway)))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT nbf is in the future or not an integer");
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    if (ngx_oauth2_jwt_iss_aud(r, olcf, claims) != NGX_OK) {
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    /* the record: client_id (or azp), scope (or scp), plan, consent, sub */

    if (ngx_oauth2_jwt_string(r, claims, &olcf->jwt_claim_client_id,
                              &rec->client_id) != NGX_OK
        || (rec->client_id.len == 0
            && ngx_oauth2_jwt_string(r, claims, &azp, &rec->client_id)
               != NGX_OK)
        || ngx_oauth2_jwt_string(r, claims, &olcf->jwt_claim_plan,
                                 &rec->plan) != NGX_OK
        || ngx_oauth2_jwt_string(r, claims, &olcf->jwt_claim_consent_id,
                                 &rec->consent_id) != NGX_OK
        || ngx_oauth2_jwt_string(r, claims, &sub, &rec->sub) != NGX_OK)
    {
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    if (rec->client_id.len == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT has no client_id or azp");
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    v = json_object_get(claims, (char *) olcf->jwt_claim_scope.data);

    if (v == NULL) {
        v = json_object_get(claims, (char *) scp.data);
    }

    if (json_is_string(v)) {
        rec->scope.len = json_string_length(v);
        rec->scope.data = (u_char *) json_string_value(v);

    } else if (json_is_array(v)) {
        rec->scope.len = 0;

        json_array_foreach(v, i, e) {
            ngx_oauth2_jwt_str(e, &s);

            if (s.data == NULL
                || !ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_SCOPE_TOKEN, &s))
            {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "oauth2: JWT scope array has an element that "
                              "is not a scope-token string (RFC 6749 3.3)");
                return NGX_OAUTH2_INVALID_TOKEN;
            }

            rec->scope.len += json_string_length(e) + 1;
        }

        p = ngx_pnalloc(r->pool, rec->scope.len);
        if (p == NULL) {
            return NGX_OAUTH2_INTERNAL_ERROR;
        }

        rec->scope.data = p;

        json_array_foreach(v, i, e) {
            if (p != rec->scope.data) {
                *p++ = ' ';
            }

            p = ngx_cpymem(p, json_string_value(e), json_string_length(e));
        }

        rec->scope.len = p - rec->scope.data;

    } else if (v) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT scope is neither a string nor an array");
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    v = json_object_get(claims, "jti");

    if (v && !json_is_string(v)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT jti is not a string");
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    if (olcf->jwt_revocation && (v == NULL || json_string_length(v) == 0)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT has no jti, revocation cannot be checked");
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    if (v) {
        ngx_oauth2_jwt_str(v, &ctx->jti);

        if (ctx->jti.len
            && !ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_IDENT, &ctx->jti))
        {
            esc.len = ngx_oauth2_escape(buf, &ctx->jti);
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: JWT jti of %uz bytes is not 1 to 255 "
                          "visible ASCII characters (\"%V\")",
                          ctx->jti.len, &esc);
            return NGX_OAUTH2_INVALID_TOKEN;
        }
    }

    /* the claims that became the record: the same gate as Redis records */

    rec->jwt = 1;
    ngx_str_set(&rec->name, "JWT");

    if (ngx_oauth2_record_gate(rec, r->connection->log) != NGX_OK) {
        return NGX_OAUTH2_INVALID_TOKEN;
    }

    return NGX_OAUTH2_OK;
}


/* the claims of a JWT that was verified before (it came from the cache) */

ngx_int_t
ngx_oauth2_jwt_claims(ngx_http_request_t *r, ngx_http_oauth2_loc_conf_t *olcf,
    ngx_http_oauth2_ctx_t *ctx, ngx_str_t *token)
{
    u_char              *dot1, *dot2;
    json_t              *claims;
    ngx_pool_cleanup_t  *cln;

    dot1 = ngx_strlchr(token->data, token->data + token->len, '.');
    dot2 = dot1 ? ngx_strlchr(dot1 + 1, token->data + token->len, '.')
                : NULL;

    if (dot2 == NULL) {
        return NGX_DECLINED;
    }

    claims = ngx_oauth2_jwt_part(r, dot1 + 1, dot2 - dot1 - 1);
    if (claims == NULL) {
        return NGX_DECLINED;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        json_decref(claims);
        return NGX_ERROR;
    }

    cln->handler = ngx_oauth2_jwt_json_cleanup;
    cln->data = claims;
    ctx->claims = claims;

    /* the location may check another issuer or audience than the last */

    return ngx_oauth2_jwt_iss_aud(r, olcf, claims);
}


/* oauth2_jwt_issuer and oauth2_jwt_audience of the location */

static ngx_int_t
ngx_oauth2_jwt_iss_aud(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, json_t *claims)
{
    size_t       i;
    json_t      *v, *e;
    ngx_str_t   *aud;
    ngx_uint_t   k, found;

    if (olcf->jwt_issuer.len) {
        v = json_object_get(claims, "iss");

        if (!json_is_string(v)
            || json_string_length(v) != olcf->jwt_issuer.len
            || ngx_strncmp(json_string_value(v), olcf->jwt_issuer.data,
                           olcf->jwt_issuer.len) != 0)
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: JWT iss is not \"%V\"",
                          &olcf->jwt_issuer);
            return NGX_ERROR;
        }
    }

    if (olcf->jwt_audience) {
        v = json_object_get(claims, "aud");
        aud = olcf->jwt_audience->elts;
        found = 0;

        for (k = 0; !found && k < olcf->jwt_audience->nelts; k++) {
            if (json_is_string(v)) {
                found = (json_string_length(v) == aud[k].len
                         && ngx_strncmp(json_string_value(v), aud[k].data,
                                        aud[k].len) == 0);
                continue;
            }

            json_array_foreach(v, i, e) {
                if (json_is_string(e) && json_string_length(e) == aud[k].len
                    && ngx_strncmp(json_string_value(e), aud[k].data,
                                   aud[k].len) == 0)
                {
                    found = 1;
                    break;
                }
            }
        }

        if (!found) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: JWT aud is none of oauth2_jwt_audience");
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a string claim, or nothing; anything else makes the token invalid */

static ngx_int_t
ngx_oauth2_jwt_string(ngx_http_request_t *r, json_t *claims, ngx_str_t *name,
    ngx_str_t *value)
{
    json_t  *v;

    v = json_object_get(claims, (char *) name->data);

    if (v == NULL) {
        ngx_str_null(value);
        return NGX_OK;
    }

    if (!json_is_string(v)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT claim \"%V\" is not a string", name);
        return NGX_ERROR;
    }

    value->data = (u_char *) json_string_value(v);
    value->len = json_string_length(v);

    return NGX_OK;
}


/* a JSON string's bytes and length, or { 0, NULL } */

static void
ngx_oauth2_jwt_str(json_t *v, ngx_str_t *s)
{
    if (json_is_string(v)) {
        s->data = (u_char *) json_string_value(v);
        s->len = json_string_length(v);

    } else {
        ngx_str_null(s);
    }
}


/* a base64url segment holding a JSON object */

static json_t *
ngx_oauth2_jwt_part(ngx_http_request_t *r, u_char *start, size_t len)
{
    json_t        *obj;
    ngx_str_t      src, dst;
    json_error_t   err;

    src.data = start;
    src.len = len;

    dst.data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(len));
    if (dst.data == NULL) {
        return NULL;
    }

    if (ngx_decode_base64url(&dst, &src) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT segment is not base64url");
        return NULL;
    }

    obj = json_loadb((char *) dst.data, dst.len, JSON_REJECT_DUPLICATES,
                     &err);

    if (obj == NULL || !json_is_object(obj)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: JWT segment is not a JSON object%s%s",
                      obj ? "" : ": ", obj ? "" : err.text);
        json_decref(obj);
        return NULL;
    }

    return obj;
}


/*
 * NGX_OK: the signature verifies; NGX_DECLINED: it does not; NGX_ERROR: the
 * check itself failed (memory, OpenSSL), which is not the token's fault
 */

static ngx_int_t
ngx_oauth2_jwt_signature(ngx_http_request_t *r, ngx_oauth2_jwt_key_t *key,
    u_char *input, size_t len, ngx_str_t *sig)
{
    int           der_len;
    u_char        mac[EVP_MAX_MD_SIZE], *der, *p;
    size_t        mac_len;
    BIGNUM       *br, *bs;
    ngx_int_t     rc;
    ECDSA_SIG    *esig;
    EVP_MD_CTX   *md;

    /* one context per worker, reused: a copy of the key's each time */

    if (ngx_oauth2_jwt_md == NULL) {
        ngx_oauth2_jwt_md = EVP_MD_CTX_new();
        if (ngx_oauth2_jwt_md == NULL) {
            return NGX_ERROR;
        }
    }

    md = ngx_oauth2_jwt_md;

    if (EVP_MD_CTX_copy_ex(md, key->ctx) != 1) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth2: EVP_MD_CTX_copy_ex() failed");
        ERR_clear_error();
        return NGX_ERROR;
    }

    rc = NGX_DECLINED;

    switch (key->type) {

    case NGX_OAUTH2_JWT_HS:
        mac_len = sizeof(mac);

        if (EVP_DigestSign(md, mac, &mac_len, input, len) != 1) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "oauth2: EVP_DigestSign() failed");
            rc = NGX_ERROR;
            break;
        }

        if (mac_len == sig->len
            && CRYPTO_memcmp(mac, sig->data, mac_len) == 0)
        {
            rc = NGX_OK;
        }

        break;

    case NGX_OAUTH2_JWT_RS:
        if (EVP_DigestVerify(md, sig->data, sig->len, input, len) == 1) {
            rc = NGX_OK;
        }

        break;

    default: /* NGX_OAUTH2_JWT_ES: JOSE r || s to DER */

        if (sig->len != 2 * key->ec_size) {
            break;
        }

        esig = ECDSA_SIG_new();
        br = BN_bin2bn(sig->data, key->ec_size, NULL);
        bs = BN_bin2bn(sig->data + key->ec_size, key->ec_size, NULL);

        if (esig == NULL || br == NULL || bs == NULL
            || ECDSA_SIG_set0(esig, br, bs) != 1)
        {
            BN_free(br);
            BN_free(bs);
            ECDSA_SIG_free(esig);
            rc = NGX_ERROR;
            break;
        }

        der_len = i2d_ECDSA_SIG(esig, NULL);
        der = (der_len > 0) ? ngx_pnalloc(r->pool, der_len) : NULL;

        if (der == NULL) {
            ECDSA_SIG_free(esig);
            rc = NGX_ERROR;
            break;
        }

        p = der;
        der_len = i2d_ECDSA_SIG(esig, &p);

        if (der_len > 0
            && EVP_DigestVerify(md, der, der_len, input, len) == 1)
        {
            rc = NGX_OK;
        }

        ECDSA_SIG_free(esig);
        break;
    }

    /* the copy holds references to the key: not past the request */
    (void) EVP_MD_CTX_reset(md);

    /* a signature that does not verify leaves errors OpenSSL queued */
    ERR_clear_error();

    return rc;
}


/* $oauth2_jwt_claim_NAME: a top-level string or number claim */

ngx_int_t
ngx_http_oauth2_jwt_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *name = (ngx_str_t *) data;

    u_char                 *p, *c;
    json_t                 *j;
    ngx_str_t               s;
    ngx_http_oauth2_ctx_t  *ctx;

    ctx = ngx_http_oauth2_get_ctx(r);

    if (ctx == NULL || ctx->claims == NULL
        || name->len <= sizeof("oauth2_jwt_claim_") - 1)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    c = ngx_pnalloc(r->pool, name->len - (sizeof("oauth2_jwt_claim_") - 1)
                             + 1);
    if (c == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(c, name->data + sizeof("oauth2_jwt_claim_") - 1,
                name->len - (sizeof("oauth2_jwt_claim_") - 1) + 1);

    j = json_object_get(ctx->claims, (char *) c);

    if (json_is_string(j)) {
        /* free text from outside: escaped before it can reach a header */

        ngx_oauth2_jwt_str(j, &s);

        if (ngx_oauth2_escape_pool(r->pool, &s, &s) != NGX_OK) {
            return NGX_ERROR;
        }

        v->data = s.data;
        v->len = s.len;

    } else if (json_is_integer(j)) {
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%L", (int64_t) json_integer_value(j)) - p;

    } else if (json_is_real(j)) {
        p = ngx_pnalloc(r->pool, 64);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_snprintf(p, 64, "%.6f", json_real_value(j)) - p;

    } else {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * oauth2_jwt_claim_variable $name claim[.member...]: any claim, nested
 * ones and names with capitals included, as a variable.  A dot in a
 * claim's name is written "\.".
 */

char *
ngx_http_oauth2_jwt_claim_variable_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf)
{
    u_char               *p, *end, *q;
    ngx_str_t            *value, name, *seg;
    ngx_array_t          *path;
    ngx_http_variable_t  *var;

    value = cf->args->elts;

    if (value[1].len < 2 || value[1].data[0] != '$') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid variable name \"%V\" in "
                           "\"oauth2_jwt_claim_variable\": $NAME expected",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data + 1;
    name.len = value[1].len - 1;

    path = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
    if (path == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the path: members separated by ".", "\." a dot in a name */

    p = value[2].data;
    end = p + value[2].len;

    q = ngx_pnalloc(cf->pool, value[2].len);
    if (q == NULL) {
        return NGX_CONF_ERROR;
    }

    seg = NULL;

    for ( ;; ) {
        if (seg == NULL) {
            seg = ngx_array_push(path);
            if (seg == NULL) {
                return NGX_CONF_ERROR;
            }

            seg->data = q;
            seg->len = 0;
        }

        if (p == end || *p == '.') {
            if (seg->len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid claim \"%V\" in "
                                   "\"oauth2_jwt_claim_variable\": an "
                                   "empty name", &value[2]);
                return NGX_CONF_ERROR;
            }

            if (p == end) {
                break;
            }

            p++;
            seg = NULL;
            continue;
        }

        if (*p == '\\' && p + 1 < end && p[1] == '.') {
            p++;
        }

        *q++ = *p++;
        seg->len++;
    }

    var = ngx_http_add_variable(cf, &name, NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_CONF_ERROR;
    }

    if (var->get_handler) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_jwt_claim_variable\": the variable "
                           "\"%V\" exists already", &value[1]);
        return NGX_CONF_ERROR;
    }

    var->get_handler = ngx_http_oauth2_jwt_path_variable;
    var->data = (uintptr_t) path;

    return NGX_CONF_OK;
}


/*
 * The claim at the variable's path: a string escaped (as
 * $oauth2_jwt_claim_NAME's), a number in decimal, true or false, an
 * object or an array as compact JSON, escaped; nothing for null, a
 * missing claim, an opaque token.
 */

static ngx_int_t
ngx_http_oauth2_jwt_path_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_array_t *path = (ngx_array_t *) data;

    char                   *dump;
    u_char                 *p;
    json_t                 *j;
    ngx_str_t               s, *seg;
    ngx_uint_t              i;
    ngx_http_oauth2_ctx_t  *ctx;

    ctx = ngx_http_oauth2_get_ctx(r);

    if (ctx == NULL || ctx->claims == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    j = ctx->claims;
    seg = path->elts;

    for (i = 0; j && i < path->nelts; i++) {
        j = json_is_object(j) ? json_object_getn(j, (char *) seg[i].data,
                                                 seg[i].len)
                              : NULL;
    }

    if (j == NULL || json_is_null(j)) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (json_is_string(j)) {
        ngx_oauth2_jwt_str(j, &s);

    } else if (json_is_integer(j)) {
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        s.data = p;
        s.len = ngx_sprintf(p, "%L", (int64_t) json_integer_value(j)) - p;

    } else if (json_is_real(j)) {
        p = ngx_pnalloc(r->pool, 64);
        if (p == NULL) {
            return NGX_ERROR;
        }

        s.data = p;
        s.len = ngx_snprintf(p, 64, "%.6f", json_real_value(j)) - p;

    } else if (json_is_boolean(j)) {
        if (json_is_true(j)) {
            ngx_str_set(&s, "true");

        } else {
            ngx_str_set(&s, "false");
        }

    } else {
        dump = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (dump == NULL) {
            return NGX_ERROR;
        }

        s.len = ngx_strlen(dump);
        s.data = ngx_pnalloc(r->pool, s.len);
        if (s.data == NULL) {
            free(dump);
            return NGX_ERROR;
        }

        ngx_memcpy(s.data, dump, s.len);
        free(dump);
    }

    /* free text from outside: escaped before it can reach a header */

    if (ngx_oauth2_escape_pool(r->pool, &s, &s) != NGX_OK) {
        return NGX_ERROR;
    }

    v->data = s.data;
    v->len = s.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * An HMAC secret of a directive: the value itself, or, when it is a path
 * ("/..." or "./..."), the file's content (4k at most, trailing line ends
 * left out)
 */

ngx_int_t
ngx_oauth2_jwt_secret(ngx_conf_t *cf, char *directive, ngx_str_t *value,
    ngx_str_t *secret)
{
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t         file;
    ngx_file_info_t   fi;

    *secret = *value;

    if (value->len == 0
        || (value->data[0] != '/' && value->data[0] != '.'))
    {
        return NGX_OK;
    }

    file = *value;

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%s\": cannot open \"%V\"", directive, &file);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > 4096)
    {
        ngx_close_file(fd);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\": \"%V\" is not a secret of 4k at most",
                           directive, &file);
        return NGX_ERROR;
    }

    secret->data = ngx_pnalloc(cf->pool, 4096);
    if (secret->data == NULL) {
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    n = ngx_read_fd(fd, secret->data, 4096);
    ngx_close_file(fd);

    if (n < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%s\": cannot read \"%V\"", directive, &file);
        return NGX_ERROR;
    }

    secret->len = n;

    while (secret->len
           && (secret->data[secret->len - 1] == '\n'
               || secret->data[secret->len - 1] == '\r'))
    {
        secret->len--;
    }

    return NGX_OK;
}


/* at a process's exit: the module is unloaded after it */

void
ngx_oauth2_jwt_free(void)
{
    EVP_MD_CTX_free(ngx_oauth2_jwt_md);
    ngx_oauth2_jwt_md = NULL;
}
