
/*
 * Fuzz target: what the authorization server's endpoints read from
 * outside: application/x-www-form-urlencoded bodies and query strings
 * (ngx_http_oauth2_authz_parse_form), HTTP Basic client credentials
 * (ngx_http_oauth2_authz_parse_basic), and the grammars and scope
 * handling every parameter goes through.
 *
 * Input: the first byte chooses the parser (even: the form, odd: an
 * Authorization header value); the rest is what it reads.  Each result is
 * checked independently of the parser: decoded values are text without
 * control characters, a normalised scope has single spaces and each token
 * once, Basic credentials are within their grammars.
 */


#include "ngx_oauth2_fuzz.h"
#include "ngx_http_oauth2_authz.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


ngx_int_t
ngx_oauth2_fuzz_target_init(void)
{
    return NGX_OK;
}


static void
ngx_oauth2_fuzz_check_scope(ngx_pool_t *pool, ngx_str_t *in)
{
    u_char     *p, *end;
    ngx_str_t   out, token;

    if (ngx_http_oauth2_authz_scope(pool, in, &out) != NGX_OK) {
        return;
    }

    /* 1 or more tokens, single spaces, nothing at either end */

    if (out.len == 0 || out.len > in->len || out.data[0] == ' '
        || out.data[out.len - 1] == ' ')
    {
        abort();
    }

    end = out.data + out.len;

    for (p = out.data; p < end; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\'
            || (*p == ' ' && p + 1 < end && p[1] == ' '))
        {
            abort();
        }
    }

    /* the same tokens as the input's: each a subset of the other */

    if (!ngx_http_oauth2_authz_scope_subset(&out, in)
        || !ngx_http_oauth2_authz_scope_subset(in, &out))
    {
        abort();
    }

    /* each token once */

    p = out.data;

    while (p < end) {
        token.data = p;

        while (p < end && *p != ' ') {
            p++;
        }

        token.len = p - token.data;

        if (p < end) {
            p++;
        }

        out.len = end - p;
        out.data = p;

        if (ngx_oauth2_scope_has(&out, &token)) {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                  *buf, *p, *end;
    ngx_str_t                in, id, secret, challenge;
    ngx_int_t                rc;
    ngx_uint_t               i, g;
    ngx_http_request_t      *r;
    ngx_http_oauth2_form_t   form;

    if (size == 0) {
        return 0;
    }

    r = ngx_oauth2_fuzz_request(0);

    /* a copy of exactly the input's size: ASan sees a read past it */

    buf = ngx_pnalloc(r->pool, size - 1 ? size - 1 : 1);
    if (buf == NULL) {
        abort();
    }

    ngx_memcpy(buf, data + 1, size - 1);

    in.data = buf;
    in.len = size - 1;

    if (data[0] & 1) {
        rc = ngx_http_oauth2_authz_parse_basic(r->pool, &in, &id, &secret);

        if (rc == NGX_ERROR) {
            abort();
        }

        if (rc == NGX_OK
            && (!ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_IDENT, &id)
                || !ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_SECRET,
                                                &secret)
                || ngx_strlchr(id.data, id.data + id.len, ' ')))
        {
            abort();
        }

        ngx_oauth2_fuzz_done(r);
        return 0;
    }

    if (ngx_http_oauth2_authz_parse_form(r->pool, &in, &form) != NGX_OK) {
        abort();
    }

    for (i = 0; i < NGX_HTTP_OAUTH2_P_LAST; i++) {

        if ((form.flags[i] & NGX_HTTP_OAUTH2_DUP) && !form.dup) {
            abort();
        }

        if ((form.flags[i] & NGX_HTTP_OAUTH2_BAD) && !form.bad) {
            abort();
        }

        if (!(form.flags[i] & NGX_HTTP_OAUTH2_SEEN)
            || (form.flags[i] & NGX_HTTP_OAUTH2_BAD))
        {
            if (form.value[i].len) {
                abort();
            }

            continue;
        }

        /* a value that was sent: not empty, no control character */

        if (form.value[i].len == 0 || form.value[i].len > in.len) {
            abort();
        }

        end = form.value[i].data + form.value[i].len;

        for (p = form.value[i].data; p < end; p++) {
            if (*p < 0x20 || *p == 0x7f) {
                abort();
            }
        }

        for (g = NGX_HTTP_OAUTH2_G_STATE; g <= NGX_HTTP_OAUTH2_G_TEXT; g++) {
            (void) ngx_http_oauth2_authz_valid(g, &form.value[i]);
        }

        (void) ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_IDENT,
                                      &form.value[i]);

        ngx_oauth2_fuzz_check_scope(r->pool, &form.value[i]);

        if (ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_PKCE,
                                        &form.value[i]))
        {
            if (ngx_http_oauth2_authz_pkce(r->pool, &form.value[i],
                                           &challenge)
                != NGX_OK
                || challenge.len != 43)
            {
                abort();
            }
        }
    }

    ngx_oauth2_fuzz_done(r);

    return 0;
}
