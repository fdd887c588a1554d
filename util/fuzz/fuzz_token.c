
/*
 * Fuzz target: the bearer token of a request (ngx_oauth2_token_extract),
 * then what the access handler does with a token it accepted: its SHA-256
 * name, the compact-JWT check, and scope matching.
 *
 * Input: [query string] NUL Authorization value; without a NUL, all of it
 * is the Authorization value and there is no query string.  The first
 * byte chooses the server (see fuzz.conf).  The scopes granted are the
 * query string, so that scope matching sees arbitrary bytes too.
 */


#include "ngx_oauth2_fuzz.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


ngx_int_t
ngx_oauth2_fuzz_target_init(void)
{
    return NGX_OK;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                      *buf, *nul, c;
    ngx_str_t                    token, scope;
    ngx_uint_t                   i;
    ngx_table_elt_t             *h;
    ngx_http_request_t          *r;
    ngx_oauth2_outcome_e         rc;
    ngx_http_oauth2_loc_conf_t  *olcf;
    u_char                       digest[NGX_OAUTH2_DIGEST_LEN];

    static ngx_str_t  scopes[] = {
        ngx_string("paymentRequest"),
        ngx_string("accounts"),
        ngx_string("a"),
    };

    if (size == 0) {
        return 0;
    }

    r = ngx_oauth2_fuzz_request(data[0]);

    /*
     * a copy of its own, of exactly its size: with NGX_DEBUG_PALLOC (see
     * util/fuzz.sh) ASan sees any read past its end
     */

    buf = ngx_pnalloc(r->pool, size);
    h = ngx_pcalloc(r->pool, sizeof(ngx_table_elt_t));
    if (buf == NULL || h == NULL) {
        abort();
    }

    ngx_memcpy(buf, data, size);

    nul = memchr(buf, '\0', size);

    if (nul) {
        r->args.data = buf;
        r->args.len = nul - buf;
        h->value.data = nul + 1;
        h->value.len = buf + size - (nul + 1);

    } else {
        h->value.data = buf;
        h->value.len = size;
    }

    ngx_str_set(&h->key, "Authorization");
    h->hash = 1;

    /* a request without the header at all, now and then */

    if (size > 1 && data[1] != '!') {
        r->headers_in.authorization = h;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_module);

    rc = ngx_oauth2_token_extract(r, olcf->max_token, &token);

    if (rc == NGX_OAUTH2_OK) {
        if (token.len == 0 || token.len > olcf->max_token) {
            abort();
        }

        if (ngx_oauth2_token_hash(&token, digest) != NGX_OK) {
            abort();
        }
        (void) ngx_oauth2_jwt_is_compact(&token);

        /* a token is RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." /
         * "_" / "~" / "+" / "/" ) *"=", checked here independently */

        for (i = 0; i < token.len && token.data[i] != '='; i++) {
            c = token.data[i];

            if (!(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z')
                && !(c >= '0' && c <= '9') && memchr("-._~+/", c, 6) == NULL)
            {
                abort();
            }
        }

        if (i == 0) {
            abort();
        }

        for ( /* void */ ; i < token.len; i++) {
            if (token.data[i] != '=') {
                abort();
            }
        }
    }

    for (i = 0; i < sizeof(scopes) / sizeof(ngx_str_t); i++) {
        scope = scopes[i];
        (void) ngx_oauth2_scope_has(&r->args, &scope);
    }

    ngx_oauth2_fuzz_done(r);

    return 0;
}
