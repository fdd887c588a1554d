
/*
 * ngx_oauth2_module: what the authorization server's endpoints read from
 * outside, parsed strictly: application/x-www-form-urlencoded forms and
 * query strings, HTTP Basic client credentials (RFC 6749 2.3.1), and the
 * grammars of the parameters.  Nothing here knows a request: util/fuzz
 * feeds these functions raw bytes.
 */


#include "ngx_http_oauth2_authz.h"

#include <openssl/evp.h>


static ngx_str_t  ngx_http_oauth2_param_names[] = {
    ngx_string("response_type"),
    ngx_string("client_id"),
    ngx_string("redirect_uri"),
    ngx_string("scope"),
    ngx_string("state"),
    ngx_string("code_challenge"),
    ngx_string("code_challenge_method"),
    ngx_string("request"),
    ngx_string("user"),
    ngx_string("decision"),
    ngx_string("grant_type"),
    ngx_string("code"),
    ngx_string("code_verifier"),
    ngx_string("refresh_token"),
    ngx_string("client_secret"),
    ngx_string("token"),
    ngx_string("token_type_hint")
};


static ngx_int_t ngx_http_oauth2_form_decode(u_char *dst, u_char *src,
    size_t len, size_t *out);
static ngx_uint_t ngx_http_oauth2_text(u_char *p, size_t len);


/*
 * name=value&name=value: "+" is a space, %XX a byte (two hex digits, or
 * the form is bad), anything else itself; decoded, every name and value
 * must be UTF-8 without control characters.  Always NGX_OK unless memory
 * runs out: what was wrong is in form->flags, form->bad and form->dup.
 */

ngx_int_t
ngx_http_oauth2_authz_parse_form(ngx_pool_t *pool, ngx_str_t *in,
    ngx_http_oauth2_form_t *form)
{
    u_char      *p, *end, *pair, *eq, *amp, *buf;
    size_t       nlen, vlen;
    ngx_str_t    value;
    ngx_uint_t   i, bad;

    ngx_memzero(form, sizeof(ngx_http_oauth2_form_t));

    if (in->len == 0) {
        return NGX_OK;
    }

    /* decoded, nothing is longer than it was */

    buf = ngx_pnalloc(pool, in->len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    p = in->data;
    end = in->data + in->len;

    while (p < end) {

        pair = p;
        amp = ngx_strlchr(p, end, '&');

        if (amp == NULL) {
            amp = end;
        }

        p = amp + 1;

        if (amp == pair) {
            /* "&&", a leading or trailing "&" */
            continue;
        }

        eq = ngx_strlchr(pair, amp, '=');

        if (eq == NULL) {
            eq = amp;
        }

        bad = (ngx_http_oauth2_form_decode(buf, pair, eq - pair, &nlen)
               != NGX_OK
               || !ngx_http_oauth2_text(buf, nlen));

        /* the value after the name, in the same buffer */

        value.data = buf + nlen;
        value.len = 0;

        if (eq < amp) {
            if (ngx_http_oauth2_form_decode(value.data, eq + 1,
                                            amp - eq - 1, &vlen)
                != NGX_OK
                || !ngx_http_oauth2_text(value.data, vlen))
            {
                bad = 1;
            }

            value.len = vlen;
        }

        for (i = 0; i < NGX_HTTP_OAUTH2_P_LAST; i++) {
            if (ngx_http_oauth2_param_names[i].len == nlen
                && ngx_strncmp(ngx_http_oauth2_param_names[i].data, buf,
                               nlen) == 0)
            {
                break;
            }
        }

        if (bad) {
            form->bad = 1;

            if (i < NGX_HTTP_OAUTH2_P_LAST) {
                form->flags[i] |= NGX_HTTP_OAUTH2_BAD;
            }
        }

        if (i == NGX_HTTP_OAUTH2_P_LAST || value.len == 0) {
            /* unknown, or without a value: as if it was not sent */
            continue;
        }

        if (form->flags[i] & NGX_HTTP_OAUTH2_SEEN) {
            form->flags[i] |= NGX_HTTP_OAUTH2_DUP;
            form->dup = 1;
        }

        form->flags[i] |= NGX_HTTP_OAUTH2_SEEN;
        form->value[i] = value;

        buf = value.data + value.len;
    }

    /* a bad parameter has no value to use */

    for (i = 0; i < NGX_HTTP_OAUTH2_P_LAST; i++) {
        if (form->flags[i] & NGX_HTTP_OAUTH2_BAD) {
            ngx_str_null(&form->value[i]);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth2_form_decode(u_char *dst, u_char *src, size_t len,
    size_t *out)
{
    u_char     c, *end, *start;
    ngx_int_t  hi, lo;

    start = dst;
    end = src + len;

    while (src < end) {
        c = *src++;

        if (c == '+') {
            *dst++ = ' ';
            continue;
        }

        if (c != '%') {
            *dst++ = c;
            continue;
        }

        if (end - src < 2) {
            *out = dst - start;
            return NGX_DECLINED;
        }

        hi = ngx_hextoi(src, 1);
        lo = ngx_hextoi(src + 1, 1);

        if (hi == NGX_ERROR || lo == NGX_ERROR) {
            *out = dst - start;
            return NGX_DECLINED;
        }

        *dst++ = (u_char) (hi * 16 + lo);
        src += 2;
    }

    *out = dst - start;

    return NGX_OK;
}


/* UTF-8 (RFC 3629: no overlong form, no surrogate), no control character */

static ngx_uint_t
ngx_http_oauth2_text(u_char *p, size_t len)
{
    u_char    *end;
    uint32_t   u, min;
    size_t     n, i;

    end = p + len;

    while (p < end) {

        if (*p < 0x80) {
            if (*p < 0x20 || *p == 0x7f) {
                return 0;
            }

            p++;
            continue;
        }

        if (*p >= 0xc2 && *p <= 0xdf) {
            n = 1;
            u = *p & 0x1f;
            min = 0x80;

        } else if (*p >= 0xe0 && *p <= 0xef) {
            n = 2;
            u = *p & 0x0f;
            min = 0x800;

        } else if (*p >= 0xf0 && *p <= 0xf4) {
            n = 3;
            u = *p & 0x07;
            min = 0x10000;

        } else {
            return 0;
        }

        if ((size_t) (end - p) <= n) {
            return 0;
        }

        for (i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return 0;
            }

            u = (u << 6) | (p[i] & 0x3f);
        }

        if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)
            || (u >= 0x80 && u < 0xa0))
        {
            /* overlong, beyond Unicode, a surrogate, a C1 control */
            return 0;
        }

        p += n + 1;
    }

    return 1;
}


/*
 * Authorization: Basic base64(urlencode(client_id) ":" urlencode(secret))
 * (RFC 6749 2.3.1, RFC 7617).  NGX_DECLINED: not that, or not a client id
 * and a secret of their grammars.
 */

ngx_int_t
ngx_http_oauth2_authz_parse_basic(ngx_pool_t *pool, ngx_str_t *header,
    ngx_str_t *id, ngx_str_t *secret)
{
    u_char     *p, *end, *colon;
    size_t      len;
    ngx_str_t   b64, raw;

    p = header->data;
    end = p + header->len;

    if (header->len < 6 || ngx_strncasecmp(p, (u_char *) "Basic ", 6) != 0) {
        return NGX_DECLINED;
    }

    p += 6;

    while (p < end && *p == ' ') {
        p++;
    }

    /* token68, as base64 with its padding */

    b64.data = p;

    while (p < end
           && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
               || (*p >= '0' && *p <= '9') || *p == '+' || *p == '/'))
    {
        p++;
    }

    len = p - b64.data;

    while (p < end && *p == '=' && p - b64.data < (ssize_t) len + 2) {
        p++;
    }

    b64.len = p - b64.data;

    if (p != end || b64.len == 0 || b64.len % 4 != 0) {
        return NGX_DECLINED;
    }

    raw.data = ngx_pnalloc(pool, ngx_base64_decoded_length(b64.len));
    if (raw.data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_decode_base64(&raw, &b64) != NGX_OK) {
        return NGX_DECLINED;
    }

    colon = ngx_strlchr(raw.data, raw.data + raw.len, ':');

    if (colon == NULL) {
        return NGX_DECLINED;
    }

    /* decoded in place: nothing gets longer */

    id->data = raw.data;

    if (ngx_http_oauth2_form_decode(id->data, raw.data, colon - raw.data,
                                    &id->len)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    secret->data = colon + 1;

    if (ngx_http_oauth2_form_decode(secret->data, colon + 1,
                                    raw.data + raw.len - colon - 1,
                                    &secret->len)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (!ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_IDENT, id)
        || !ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_SECRET, secret))
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_uint_t
ngx_http_oauth2_authz_valid(ngx_uint_t grammar, ngx_str_t *s)
{
    u_char  *p, *end, c;

    end = s->data + s->len;

    switch (grammar) {

    case NGX_HTTP_OAUTH2_G_STATE:
        /* RFC 6749 A.5: 1*VSCHAR, VSCHAR = %x20-7E */
        if (s->len == 0 || s->len > 1024) {
            return 0;
        }

        for (p = s->data; p < end; p++) {
            if (*p < 0x20 || *p > 0x7e) {
                return 0;
            }
        }

        return 1;

    case NGX_HTTP_OAUTH2_G_PKCE:
        /* RFC 7636 4.1: 43*128( ALPHA / DIGIT / "-" / "." / "_" / "~" ) */
        if (s->len < 43 || s->len > 128) {
            return 0;
        }

        for (p = s->data; p < end; p++) {
            c = *p;

            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                  || (c >= '0' && c <= '9') || c == '-' || c == '.'
                  || c == '_' || c == '~'))
            {
                return 0;
            }
        }

        return 1;

    case NGX_HTTP_OAUTH2_G_HANDLE:
        /* a code, a token, a request id: visible ASCII, no space */
        if (s->len == 0 || s->len > 512) {
            return 0;
        }

        for (p = s->data; p < end; p++) {
            if (*p < 0x21 || *p > 0x7e) {
                return 0;
            }
        }

        return 1;

    case NGX_HTTP_OAUTH2_G_REDIRECT_URI:
        /* compared exactly with a registered one; never a fragment */
        if (s->len == 0 || s->len > 2048) {
            return 0;
        }

        for (p = s->data; p < end; p++) {
            if (*p < 0x21 || *p > 0x7e || *p == '#') {
                return 0;
            }
        }

        return 1;

    case NGX_HTTP_OAUTH2_G_TEXT:
        /* a client's name: shown to users */
        return s->len && s->len <= 255 && ngx_http_oauth2_text(s->data, s->len);

    default: /* NGX_HTTP_OAUTH2_G_SECRET */
        if (s->len == 0 || s->len > 255) {
            return 0;
        }

        for (p = s->data; p < end; p++) {
            if (*p < 0x20 || *p > 0x7e) {
                return 0;
            }
        }

        return 1;
    }
}


/*
 * A scope parameter: RFC 6749 3.3 scope-tokens separated by spaces, at
 * least one; out is the same with single spaces, each token once, in the
 * order they came.  NGX_DECLINED: not a scope.
 */

ngx_int_t
ngx_http_oauth2_authz_scope(ngx_pool_t *pool, ngx_str_t *in, ngx_str_t *out)
{
    u_char     *p, *end, *start, *q;
    ngx_str_t   token, sofar;

    if (in->len == 0 || !ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_SCOPE, in)) {
        return NGX_DECLINED;
    }

    q = ngx_pnalloc(pool, in->len);
    if (q == NULL) {
        return NGX_ERROR;
    }

    out->data = q;

    p = in->data;
    end = p + in->len;

    while (p < end) {

        while (p < end && *p == ' ') {
            p++;
        }

        start = p;

        while (p < end && *p != ' ') {
            p++;
        }

        if (p == start) {
            break;
        }

        token.data = start;
        token.len = p - start;

        sofar.data = out->data;
        sofar.len = q - out->data;

        if (ngx_oauth2_scope_has(&sofar, &token)) {
            continue;
        }

        if (q != out->data) {
            *q++ = ' ';
        }

        q = ngx_cpymem(q, token.data, token.len);
    }

    out->len = q - out->data;

    return out->len ? NGX_OK : NGX_DECLINED;
}


/* is every scope-token of scope one of allowed's */

ngx_uint_t
ngx_http_oauth2_authz_scope_subset(ngx_str_t *scope, ngx_str_t *allowed)
{
    u_char     *p, *end, *start;
    ngx_str_t   token;

    p = scope->data;
    end = p + scope->len;

    while (p < end) {

        while (p < end && *p == ' ') {
            p++;
        }

        start = p;

        while (p < end && *p != ' ') {
            p++;
        }

        if (p == start) {
            break;
        }

        token.data = start;
        token.len = p - start;

        if (!ngx_oauth2_scope_has(allowed, &token)) {
            return 0;
        }
    }

    return 1;
}


/* is word one of the space-separated words of list: exactly */

ngx_uint_t
ngx_http_oauth2_authz_word(ngx_str_t *list, ngx_str_t *word)
{
    return word->len && ngx_oauth2_scope_has(list, word);
}


/* RFC 7636 4.6: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) */

ngx_int_t
ngx_http_oauth2_authz_pkce(ngx_pool_t *pool, ngx_str_t *verifier,
    ngx_str_t *challenge)
{
    ngx_str_t  d;
    u_char     digest[NGX_OAUTH2_DIGEST_LEN];

    if (ngx_oauth2_token_hash(verifier, digest) != NGX_OK) {
        return NGX_ERROR;
    }

    d.data = digest;
    d.len = NGX_OAUTH2_DIGEST_LEN;

    challenge->data = ngx_pnalloc(pool,
                                  ngx_base64_encoded_length(d.len));
    if (challenge->data == NULL) {
        return NGX_ERROR;
    }

    ngx_encode_base64url(challenge, &d);

    return NGX_OK;
}
