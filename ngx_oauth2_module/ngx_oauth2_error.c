
/*
 * ngx_oauth2_module: refusals: the gateway's JSON error bodies (built
 * once, at configuration time, with jansson), the headers of a refusal
 * (WWW-Authenticate, Retry-After), and the filters that put the JSON in
 * the place of nginx's own page for the status.
 */


#include "ngx_http_oauth2_module.h"

#include <jansson.h>


typedef struct {
    ngx_uint_t                   status;
    char                        *code;
    char                        *message;
    char                        *information;
} ngx_oauth2_error_def_t;


typedef struct {
    ngx_uint_t                   err;
    ngx_str_t                    text;
} ngx_oauth2_error_text_t;


static ngx_oauth2_error_def_t  ngx_oauth2_errors[] = {
    { NGX_HTTP_BAD_REQUEST, "400", "Bad Request",
      "The access token must be sent once, in the Authorization header" },
    { NGX_HTTP_UNAUTHORIZED, "401", "Unauthorized",
      "This server could not verify that you are authorized to access "
      "the URL" },
    { NGX_HTTP_FORBIDDEN, "403", "Forbidden", "Forbidden" },
    { NGX_HTTP_TOO_MANY_REQUESTS, "429", "Too Many Requests",
      "Rate Limit exceeded" },
    { NGX_HTTP_SERVICE_UNAVAILABLE, "503", "Service Unavailable",
      "The service is temporarily unavailable, please retry later" }
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_str_t  ngx_oauth2_outcome_names[] = {
    ngx_null_string,
    ngx_string("ok"),
    ngx_string("missing_token"),
    ngx_string("invalid_token"),
    ngx_string("invalid_request"),
    ngx_string("insufficient_scope"),
    ngx_string("consent_invalid"),
    ngx_string("rate_limited"),
    ngx_string("store_unavailable"),
    ngx_string("internal_error")
};


ngx_str_t *
ngx_oauth2_outcome_name(ngx_oauth2_outcome_e outcome)
{
    return &ngx_oauth2_outcome_names[outcome];
}


/* oauth2_error_message CODE TEXT */

char *
ngx_http_oauth2_error_message(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_loc_conf_t *olcf = conf;

    ngx_int_t                 code;
    ngx_str_t                *value;
    ngx_uint_t                i;
    ngx_oauth2_error_text_t  *t;

    value = cf->args->elts;

    code = ngx_atoi(value[1].data, value[1].len);

    for (i = 0; i < NGX_OAUTH2_ERR_LAST; i++) {
        if ((ngx_uint_t) code == ngx_oauth2_errors[i].status) {
            break;
        }
    }

    if (code == NGX_ERROR || i == NGX_OAUTH2_ERR_LAST) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid code \"%V\" in \"oauth2_error_message\": "
                           "400, 401, 403, 429 or 503 expected", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (olcf->messages == NGX_CONF_UNSET_PTR) {
        olcf->messages = ngx_array_create(cf->pool, 2,
                                          sizeof(ngx_oauth2_error_text_t));
        if (olcf->messages == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    t = olcf->messages->elts;

    for (code = 0; (ngx_uint_t) code < olcf->messages->nelts; code++) {
        if (t[code].err == i) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate \"oauth2_error_message\" for %V",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    t = ngx_array_push(olcf->messages);
    if (t == NULL) {
        return NGX_CONF_ERROR;
    }

    t->err = i;
    t->text = value[2];

    return NGX_CONF_OK;
}


/*
 * {"httpCode":"401","httpMessage":"Unauthorized","moreInformation":"..."}
 * jansson keeps the keys in insertion order and escapes the text.
 */

ngx_int_t
ngx_http_oauth2_error_bodies(ngx_conf_t *cf,
    ngx_http_oauth2_loc_conf_t *conf)
{
    char                     *dump, *info;
    json_t                   *obj;
    ngx_uint_t                i, k;
    ngx_oauth2_error_text_t  *t;

    conf->bodies = ngx_pcalloc(cf->pool,
                               NGX_OAUTH2_ERR_LAST * sizeof(ngx_str_t));
    if (conf->bodies == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_OAUTH2_ERR_LAST; i++) {

        info = ngx_oauth2_errors[i].information;

        if (conf->messages) {
            t = conf->messages->elts;

            for (k = 0; k < conf->messages->nelts; k++) {
                if (t[k].err != i) {
                    continue;
                }

                info = ngx_pnalloc(cf->pool, t[k].text.len + 1);
                if (info == NULL) {
                    return NGX_ERROR;
                }

                ngx_memcpy(info, t[k].text.data, t[k].text.len);
                info[t[k].text.len] = '\0';
            }
        }

        obj = json_pack("{s:s, s:s, s:s}",
                        "httpCode", ngx_oauth2_errors[i].code,
                        "httpMessage", ngx_oauth2_errors[i].message,
                        "moreInformation", info);
        if (obj == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_error_message\" text for %s is not "
                               "valid UTF-8", ngx_oauth2_errors[i].code);
            return NGX_ERROR;
        }

        dump = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(obj);

        if (dump == NULL) {
            return NGX_ERROR;
        }

        conf->bodies[i].len = ngx_strlen(dump);
        conf->bodies[i].data = ngx_pnalloc(cf->pool, conf->bodies[i].len);

        if (conf->bodies[i].data == NULL) {
            free(dump);
            return NGX_ERROR;
        }

        ngx_memcpy(conf->bodies[i].data, dump, conf->bodies[i].len);
        free(dump);
    }

    return NGX_OK;
}


/* a response header; its element in *hp when hp is not NULL */

ngx_int_t
ngx_oauth2_add_header(ngx_http_request_t *r, char *name, ngx_str_t *value,
    ngx_table_elt_t **hp)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.len = ngx_strlen(name);
    h->key.data = (u_char *) name;
    h->value = *value;

    if (hp) {
        *hp = h;
    }

    return NGX_OK;
}


/*
 * A refusal, the nginx way: the headers are set here (nginx keeps them on
 * the response it makes for the status), and the status is returned to
 * nginx's access checker.  satisfy any, auth_delay and error_page then
 * apply as for auth_basic; when nginx answers with its own page for the
 * status, the filters below put the module's JSON in its place.
 */

ngx_int_t
ngx_http_oauth2_refuse(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_ctx_t *ctx)
{
    u_char      *p;
    size_t       len;
    ngx_str_t    value, *error;
    ngx_uint_t   err;

    static ngx_str_t  retry_after = ngx_string("1");

    error = NULL;

    switch (ctx->outcome) {

    case NGX_OAUTH2_MISSING_TOKEN:
        err = NGX_OAUTH2_ERR_401;
        break;

    case NGX_OAUTH2_INVALID_TOKEN:
        err = NGX_OAUTH2_ERR_401;
        error = &ngx_oauth2_outcome_names[NGX_OAUTH2_INVALID_TOKEN];
        break;

    case NGX_OAUTH2_INVALID_REQUEST:
        err = NGX_OAUTH2_ERR_400;
        error = &ngx_oauth2_outcome_names[NGX_OAUTH2_INVALID_REQUEST];
        break;

    case NGX_OAUTH2_INSUFFICIENT_SCOPE:
        err = NGX_OAUTH2_ERR_403;
        error = &ngx_oauth2_outcome_names[NGX_OAUTH2_INSUFFICIENT_SCOPE];
        break;

    case NGX_OAUTH2_CONSENT_INVALID:
        err = NGX_OAUTH2_ERR_403;
        break;

    case NGX_OAUTH2_RATE_LIMITED:
        err = NGX_OAUTH2_ERR_429;
        break;

    case NGX_OAUTH2_STORE_UNAVAILABLE:
        err = NGX_OAUTH2_ERR_503;
        break;

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->status == 0) {

        if (err == NGX_OAUTH2_ERR_503) {
            if (ngx_oauth2_add_header(r, "Retry-After", &retry_after, NULL)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

        } else if (err == NGX_OAUTH2_ERR_429) {

            /* whole seconds, rounded up, at least 1 */

            p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
            if (p == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            value.data = p;
            value.len = ngx_sprintf(p, "%M",
                                    ctx->rl.retry ? ctx->rl.retry : 1) - p;

            if (ngx_oauth2_add_header(r, "Retry-After", &value, NULL)
                != NGX_OK
                || (olcf->rl_headers && !ctx->rl_headers
                    && ngx_oauth2_ratelimit_headers(r, ctx) != NGX_OK))
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ctx->rl_headers = 1;

        } else if (ctx->outcome != NGX_OAUTH2_CONSENT_INVALID) {

            /* Bearer realm="R"[, error="E"][, scope="S"] */

            len = sizeof("Bearer realm=\"\"") - 1 + olcf->realm.len;

            if (error) {
                len += sizeof(", error=\"\"") - 1 + error->len;
            }

            if (ctx->outcome == NGX_OAUTH2_INSUFFICIENT_SCOPE) {
                len += sizeof(", scope=\"\"") - 1 + olcf->scope_required.len;
            }

            p = ngx_pnalloc(r->pool, len);
            if (p == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            value.data = p;
            p = ngx_sprintf(p, "Bearer realm=\"%V\"", &olcf->realm);

            if (error) {
                p = ngx_sprintf(p, ", error=\"%V\"", error);
            }

            if (ctx->outcome == NGX_OAUTH2_INSUFFICIENT_SCOPE) {
                p = ngx_sprintf(p, ", scope=\"%V\"", &olcf->scope_required);
            }

            value.len = p - value.data;

            /*
             * r->headers_out.www_authenticate: with "satisfy any", nginx
             * drops it when another access module lets the request in
             */

            if (ngx_oauth2_add_header(r, "WWW-Authenticate", &value,
                                      &r->headers_out.www_authenticate)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }

    ctx->status = ngx_oauth2_errors[err].status;
    ctx->body = &olcf->bodies[err];
    ctx->uri_changes = r->uri_changes;

    return ctx->status;
}


/*
 * nginx's own page for a status the module refused a request with (no
 * error_page took it: the URI did not change) becomes the module's JSON.
 * Only nginx's own page sets r->err_status: with satisfy any, a request
 * another access module let in keeps its upstream's 401 or 403 as it is.
 */

static ngx_int_t
ngx_http_oauth2_header_filter(ngx_http_request_t *r)
{
    ngx_http_oauth2_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_oauth2_module);

    if (ctx == NULL || ctx->status == 0 || ctx->replace
        || r->headers_out.status != ctx->status
        || r->err_status != ctx->status
        || r->uri_changes != ctx->uri_changes)
    {
        return ngx_http_next_header_filter(r);
    }

    ctx->replace = 1;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    r->headers_out.content_length_n = ctx->body->len;

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_oauth2_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t              *b;
    ngx_chain_t            *cl, out;
    ngx_http_oauth2_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_oauth2_module);

    if (ctx == NULL || !ctx->replace) {
        return ngx_http_next_body_filter(r, in);
    }

    /* nginx's page is dropped */

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    if (ctx->replaced) {
        return NGX_OK;
    }

    ctx->replaced = 1;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->body->data;
    b->last = ctx->body->data + ctx->body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


ngx_int_t
ngx_http_oauth2_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_oauth2_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_oauth2_body_filter;

    return NGX_OK;
}
