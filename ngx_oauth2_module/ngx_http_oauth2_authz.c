
/*
 * ngx_oauth2_module: the authorization server half, ngx_http_oauth2_authz
 * (a second nginx module in the same .so): its directives and
 * configuration, and what its endpoints share: the request's ctx, the
 * request body, Redis calls, clients and their authentication, and the
 * responses (JSON, redirects).
 *
 * Each endpoint is a content handler.  A request that waits on Redis
 * holds a call (ctx->call) and is finalized once, by the step the reply
 * goes to; a client that goes away ends the request at once, and the
 * pool cleanup cancels the call.
 */


#include "ngx_http_oauth2_authz.h"
#include "ngx_oauth2_redis.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>


static ngx_int_t ngx_http_oauth2_authz_handler(ngx_http_request_t *r);
static void *ngx_http_oauth2_authz_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_oauth2_authz_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_oauth2_authz_endpoint(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_oauth2_authz_code_ttl_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_oauth2_authz_choice(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_oauth2_authz_check_login(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_oauth2_authz_check_ttl(ngx_conf_t *cf, void *post,
    void *data);
static void ngx_http_oauth2_authz_cleanup(void *data);
static void ngx_http_oauth2_authz_redis_done(ngx_oauth2_redis_call_t *call,
    struct redisReply *reply);


static ngx_conf_enum_t  ngx_http_oauth2_authz_pkce_modes[] = {
    { ngx_string("required"), 1 },
    { ngx_string("optional"), 0 },
    { ngx_null_string, 0 }
};

static ngx_conf_enum_t  ngx_http_oauth2_authz_errors[] = {
    { ngx_string("guide"), NGX_HTTP_OAUTH2_ERRORS_GUIDE },
    { ngx_string("rfc6749"), NGX_HTTP_OAUTH2_ERRORS_RFC6749 },
    { ngx_null_string, 0 }
};

static ngx_conf_enum_t  ngx_http_oauth2_authz_client_auth[] = {
    { ngx_string("client_secret_basic"), NGX_HTTP_OAUTH2_AUTH_BASIC },
    { ngx_string("client_secret_post"), NGX_HTTP_OAUTH2_AUTH_POST },
    { ngx_null_string, 0 }
};

static ngx_conf_post_t  ngx_http_oauth2_authz_login_post = {
    ngx_http_oauth2_authz_check_login
};

/* a time's bounds, with the directive's name in the message */

typedef struct {
    ngx_conf_post_handler_pt     post_handler;
    char                        *name;
} ngx_http_oauth2_authz_ttl_t;


static ngx_http_oauth2_authz_ttl_t  ngx_http_oauth2_authz_consent_ttl = {
    ngx_http_oauth2_authz_check_ttl, "oauth2_consent_ttl"
};

static ngx_http_oauth2_authz_ttl_t  ngx_http_oauth2_authz_code_ttl = {
    ngx_http_oauth2_authz_check_ttl, "oauth2_code_ttl"
};

static ngx_http_oauth2_authz_ttl_t  ngx_http_oauth2_authz_access_ttl = {
    ngx_http_oauth2_authz_check_ttl, "oauth2_access_token_ttl"
};

static ngx_http_oauth2_authz_ttl_t  ngx_http_oauth2_authz_refresh_ttl = {
    ngx_http_oauth2_authz_check_ttl, "oauth2_refresh_token_ttl"
};


static ngx_command_t  ngx_http_oauth2_authz_commands[] = {

    { ngx_string("oauth2_authorize"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_oauth2_authz_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_OAUTH2_EP_AUTHORIZE,
      NULL },

    { ngx_string("oauth2_authorize_decision"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_oauth2_authz_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_OAUTH2_EP_DECISION,
      NULL },

    { ngx_string("oauth2_token"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_oauth2_authz_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_OAUTH2_EP_TOKEN,
      NULL },

    { ngx_string("oauth2_consent_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_oauth2_authz_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_OAUTH2_EP_CONSENT,
      NULL },

    { ngx_string("oauth2_revoke"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_oauth2_authz_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_OAUTH2_EP_REVOKE,
      NULL },

    { ngx_string("oauth2_authorize_pkce"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth2_authz_choice,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_authz_loc_conf_t, pkce),
      &ngx_http_oauth2_authz_pkce_modes },

    { ngx_string("oauth2_authorize_login"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_authz_loc_conf_t, login),
      &ngx_http_oauth2_authz_login_post },

    { ngx_string("oauth2_consent_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_authz_loc_conf_t, consent_ttl),
      &ngx_http_oauth2_authz_consent_ttl },

    { ngx_string("oauth2_code_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth2_authz_code_ttl_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_authz_loc_conf_t, code_ttl),
      &ngx_http_oauth2_authz_code_ttl },

    { ngx_string("oauth2_token_client_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_oauth2_authz_choice,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_authz_loc_conf_t, client_auth),
      &ngx_http_oauth2_authz_client_auth },

    { ngx_string("oauth2_token_errors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth2_authz_choice,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_authz_loc_conf_t, errors),
      &ngx_http_oauth2_authz_errors },

    { ngx_string("oauth2_access_token_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_authz_loc_conf_t, access_ttl),
      &ngx_http_oauth2_authz_access_ttl },

    { ngx_string("oauth2_refresh_token_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_authz_loc_conf_t, refresh_ttl),
      &ngx_http_oauth2_authz_refresh_ttl },

    { ngx_string("oauth2_access_token_format"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_oauth2_token_format,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_oauth2_authz_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_oauth2_authz_create_loc_conf, /* create location configuration */
    ngx_http_oauth2_authz_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_oauth2_authz_module = {
    NGX_MODULE_V1,
    &ngx_http_oauth2_authz_module_ctx,     /* module context */
    ngx_http_oauth2_authz_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static char  *ngx_http_oauth2_authz_names[] = {
    "",
    "oauth2_authorize",
    "oauth2_authorize_decision",
    "oauth2_token",
    "oauth2_consent_api",
    "oauth2_revoke"
};


static ngx_int_t
ngx_http_oauth2_authz_handler(ngx_http_request_t *r)
{
    ngx_http_oauth2_authz_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_authz_module);

    switch (alcf->endpoint) {

    case NGX_HTTP_OAUTH2_EP_AUTHORIZE:
        return ngx_http_oauth2_authorize_handler(r);

    case NGX_HTTP_OAUTH2_EP_DECISION:
        return ngx_http_oauth2_decision_handler(r);

    case NGX_HTTP_OAUTH2_EP_TOKEN:
        return ngx_http_oauth2_token_handler(r);

    case NGX_HTTP_OAUTH2_EP_CONSENT:
        return ngx_http_oauth2_consent_handler(r);

    case NGX_HTTP_OAUTH2_EP_REVOKE:
        return ngx_http_oauth2_revoke_handler(r);

    default:
        return NGX_DECLINED;
    }
}


static void *
ngx_http_oauth2_authz_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_oauth2_authz_loc_conf_t  *alcf;

    alcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_oauth2_authz_loc_conf_t));
    if (alcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     alcf->endpoint = NGX_HTTP_OAUTH2_EP_NONE;
     *     alcf->login = { 0, NULL };
     *     alcf->decision_user = NULL;
     *     alcf->client_auth = 0;
     */

    alcf->pkce = NGX_CONF_UNSET_UINT;
    alcf->consent_ttl = NGX_CONF_UNSET;
    alcf->code_ttl = NGX_CONF_UNSET;
    alcf->code_ttl_set = NGX_CONF_UNSET;
    alcf->errors = NGX_CONF_UNSET_UINT;
    alcf->access_ttl = NGX_CONF_UNSET;
    alcf->refresh_ttl = NGX_CONF_UNSET;
    alcf->format = NGX_CONF_UNSET_UINT;
    alcf->signer = NGX_CONF_UNSET_PTR;

    return alcf;
}


static char *
ngx_http_oauth2_authz_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_oauth2_authz_loc_conf_t *prev = parent;
    ngx_http_oauth2_authz_loc_conf_t *conf = child;

    char                         *name;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_oauth2_loc_conf_t   *olcf;
    ngx_http_oauth2_main_conf_t  *omcf;

    ngx_conf_merge_uint_value(conf->pkce, prev->pkce, 1);
    ngx_conf_merge_str_value(conf->login, prev->login, "");
    ngx_conf_merge_sec_value(conf->consent_ttl, prev->consent_ttl,
                             90 * 86400);
    ngx_conf_merge_sec_value(conf->code_ttl, prev->code_ttl, 300);
    ngx_conf_merge_value(conf->code_ttl_set, prev->code_ttl_set, 0);

    /* the token endpoint's argument: the oldest code it redeems, or "" */

    ngx_str_set(&conf->code_max_age, "");

    if (conf->code_ttl_set) {
        conf->code_max_age.data = ngx_pnalloc(cf->pool, NGX_TIME_T_LEN);
        if (conf->code_max_age.data == NULL) {
            return NGX_CONF_ERROR;
        }

        conf->code_max_age.len = ngx_sprintf(conf->code_max_age.data, "%T",
                                             conf->code_ttl)
                                 - conf->code_max_age.data;
    }
    ngx_conf_merge_bitmask_value(conf->client_auth, prev->client_auth,
                                 (NGX_CONF_BITMASK_SET
                                  |NGX_HTTP_OAUTH2_AUTH_BASIC));
    ngx_conf_merge_uint_value(conf->errors, prev->errors,
                              NGX_HTTP_OAUTH2_ERRORS_GUIDE);
    ngx_conf_merge_sec_value(conf->access_ttl, prev->access_ttl, 3600);
    ngx_conf_merge_sec_value(conf->refresh_ttl, prev->refresh_ttl,
                             90 * 86400);

    if (conf->format == NGX_CONF_UNSET_UINT) {
        conf->format = (prev->format == NGX_CONF_UNSET_UINT)
                       ? NGX_HTTP_OAUTH2_FORMAT_OPAQUE : prev->format;
        conf->signer = prev->signer;
    }

    if (conf->signer == NGX_CONF_UNSET_PTR) {
        conf->signer = NULL;
    }

    if (conf->endpoint == NGX_HTTP_OAUTH2_EP_NONE) {
        return NGX_CONF_OK;
    }

    name = ngx_http_oauth2_authz_names[conf->endpoint];

    /*
     * a body too long is the endpoint's JSON 413, not nginx's page: the
     * endpoint applies client_max_body_size itself (with its own, smaller
     * limit), and nginx's check before it is lifted (the core module's
     * loc conf is merged already)
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    conf->body_max = clcf->client_max_body_size;
    clcf->client_max_body_size = 0;

    /* the gateway's Redis: each worker connects to it when it starts */

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_oauth2_module);

    omcf->used = 1;

    if (omcf->redis.addr.len == 0 && omcf->redis.sentinels == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" needs an \"oauth2_redis\" (or "
                           "\"oauth2_redis_sentinel\") in the http block",
                           name);
        return NGX_CONF_ERROR;
    }

    /* the gateway's loc conf of this location is merged already */

    olcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_oauth2_module);

    if (olcf->enable == 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" is in a location where \"oauth2\" is "
                           "on: the endpoint authenticates its clients "
                           "itself, add \"oauth2 off;\"", name);
        return NGX_CONF_ERROR;
    }

    if (conf->endpoint == NGX_HTTP_OAUTH2_EP_AUTHORIZE
        && conf->login.len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_authorize\" needs an "
                           "\"oauth2_authorize_login\" URL: where the user "
                           "logs in and consents");
        return NGX_CONF_ERROR;
    }

    if ((conf->client_auth & ~NGX_CONF_BITMASK_SET) == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_token_client_auth\" allows no method");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* oauth2_authorize; oauth2_token; ... : the location's content handler */

static char *
ngx_http_oauth2_authz_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_authz_loc_conf_t *alcf = conf;

    ngx_str_t                         *value;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_compile_complex_value_t   ccv;

    if (alcf->endpoint != NGX_HTTP_OAUTH2_EP_NONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": the location has \"%s\" already",
                           &cmd->name,
                           ngx_http_oauth2_authz_names[alcf->endpoint]);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": the location has a content handler "
                           "already (proxy_pass, ...)", &cmd->name);
        return NGX_CONF_ERROR;
    }

    alcf->endpoint = cmd->offset;
    clcf->handler = ngx_http_oauth2_authz_handler;

    if (cf->args->nelts == 1) {
        return NGX_CONF_OK;
    }

    /* oauth2_authorize_decision user=VALUE */

    value = cf->args->elts;

    if (value[1].len <= 5 || ngx_strncmp(value[1].data, "user=", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\": "
                           "user=VALUE expected (e.g. user=$remote_user)",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    value[1].data += 5;
    value[1].len -= 5;

    alcf->decision_user = ngx_palloc(cf->pool,
                                     sizeof(ngx_http_complex_value_t));
    if (alcf->decision_user == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = alcf->decision_user;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * ngx_conf_set_enum_slot (TAKE1) or ngx_conf_set_bitmask_slot (1MORE)
 * with cmd->post's values, whose refusal names the directive and what it
 * takes
 */

/*
 * oauth2_code_ttl time: the code's TTL where the decision is made; where
 * it is set for a token endpoint (there or above), the age of the oldest
 * code the endpoint redeems too
 */

static char *
ngx_http_oauth2_authz_code_ttl_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_authz_loc_conf_t *alcf = conf;

    char  *rv;

    rv = ngx_conf_set_sec_slot(cf, cmd, conf);

    if (rv == NGX_CONF_OK) {
        alcf->code_ttl_set = 1;
    }

    return rv;
}


static char *
ngx_http_oauth2_authz_choice(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char           *b, buf[256];
    ngx_str_t        *value;
    ngx_uint_t       *field, i, k, n, result, bitmask;
    ngx_conf_enum_t  *e;

    field = (ngx_uint_t *) (p + cmd->offset);
    e = cmd->post;
    bitmask = (cmd->type & NGX_CONF_1MORE) ? 1 : 0;

    if (bitmask ? *field != 0 : *field != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    result = bitmask ? NGX_CONF_BITMASK_SET : 0;

    for (i = 1; i < cf->args->nelts; i++) {

        for (k = 0; e[k].name.len; k++) {
            if (e[k].name.len == value[i].len
                && ngx_strncmp(e[k].name.data, value[i].data,
                               value[i].len) == 0)
            {
                break;
            }
        }

        if (e[k].name.len == 0) {
            b = buf;

            for (n = 0; e[n].name.len; n++) {
                b = ngx_slprintf(b, buf + sizeof(buf), "%s\"%V\"",
                                 n == 0 ? "" : e[n + 1].name.len ? ", "
                                                                 : " or ",
                                 &e[n].name);
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\": %*s "
                               "expected", &value[i], &cmd->name,
                               b - buf, buf);
            return NGX_CONF_ERROR;
        }

        result = bitmask ? (result | e[k].value) : e[k].value;
    }

    *field = result;

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth2_authz_check_login(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *url = data;

    u_char  *p;

    /* a URL that goes into a Location header as it is */

    for (p = url->data; p < url->data + url->len; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '#') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"oauth2_authorize_login\" \"%V\": "
                               "a URL without spaces, control characters "
                               "or a fragment expected", url);
            return NGX_CONF_ERROR;
        }
    }

    if (url->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty \"oauth2_authorize_login\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth2_authz_check_ttl(ngx_conf_t *cf, void *post, void *data)
{
    ngx_http_oauth2_authz_ttl_t  *t = post;
    time_t                       *sp = data;

    /* at most 10 years: time arithmetic in Lua stays exact */

    if (*sp < 1 || *sp > 10 * 365 * 86400) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" must be 1s to 10y", t->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the request's ctx, with the cleanup that cancels its Redis call */

ngx_http_oauth2_authz_ctx_t *
ngx_http_oauth2_authz_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t           *cln;
    ngx_http_oauth2_authz_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_oauth2_authz_module);

    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_oauth2_authz_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_oauth2_authz_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->alcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_authz_module);
    ctx->now = ngx_time();

    ngx_http_set_ctx(r, ctx, ngx_http_oauth2_authz_module);

    return ctx;
}


static void
ngx_http_oauth2_authz_cleanup(void *data)
{
    ngx_http_oauth2_authz_ctx_t  *ctx = data;

    if (ctx->call) {
        ngx_oauth2_redis_cancel(ctx->call);
        ctx->call = NULL;
    }
}


/*
 * Reads a form body into memory and calls handler: NGX_DONE, or a status
 * for the caller to answer with (413: longer than the limit, 411: no
 * Content-Length), the body discarded.
 */

ngx_int_t
ngx_http_oauth2_authz_read_form(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt handler)
{
    off_t                              max;
    ngx_int_t                          rc;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_oauth2_authz_loc_conf_t  *alcf;

    if (ngx_http_oauth2_authz_ctx(r) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* in memory, never in a temporary file: the smaller of the two */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    max = ngx_min((off_t) NGX_HTTP_OAUTH2_BODY_MAX,
                  (off_t) clcf->client_body_buffer_size);

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_authz_module);

    if (alcf->body_max && alcf->body_max < max) {
        max = alcf->body_max;
    }

    /* HTTP/1.1 chunked, or HTTP/2 without content-length */

    if (r->headers_in.chunked) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: a request body without Content-Length "
                      "refused");
        r->keepalive = 0;
        rc = ngx_http_discard_request_body(r);
        return (rc == NGX_OK) ? NGX_HTTP_LENGTH_REQUIRED : rc;
    }

    if (r->headers_in.content_length_n > max) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: a request body of %O bytes refused, "
                      "%O at most", r->headers_in.content_length_n, max);
        r->keepalive = 0;
        rc = ngx_http_discard_request_body(r);
        return (rc == NGX_OK) ? NGX_HTTP_REQUEST_ENTITY_TOO_LARGE : rc;
    }

    r->request_body_in_single_buf = 1;
    r->request_body_in_file_only = 0;
    r->request_body_in_persistent_file = 0;
    r->request_body_in_clean_file = 0;

    rc = ngx_http_read_client_request_body(r, handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/*
 * The form of a body read by ngx_http_oauth2_authz_read_form(), into
 * ctx->form: NGX_OK, NGX_DECLINED (not a form: Content-Type), 413, or
 * NGX_ERROR.
 */

ngx_int_t
ngx_http_oauth2_authz_body(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx)
{
    u_char           *p;
    size_t            len;
    ngx_str_t         body, *ct;
    ngx_chain_t      *cl;

    static ngx_str_t  form = ngx_string("application/x-www-form-urlencoded");

    /* Content-Type: application/x-www-form-urlencoded [; parameters] */

    if (r->headers_in.content_type == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: a request without Content-Type refused");
        return NGX_DECLINED;
    }

    ct = &r->headers_in.content_type->value;

    if (ct->len < form.len
        || ngx_strncasecmp(ct->data, form.data, form.len) != 0
        || (ct->len > form.len
            && ct->data[form.len] != ';' && ct->data[form.len] != ' '))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: a request with Content-Type other than "
                      "application/x-www-form-urlencoded refused");
        return NGX_DECLINED;
    }

    len = 0;

    if (r->request_body) {
        if (r->request_body->temp_file) {
            return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        }

        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            if (cl->buf->in_file) {
                return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
            }

            len += cl->buf->last - cl->buf->pos;
        }
    }

    if (len > NGX_HTTP_OAUTH2_BODY_MAX) {
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    body.len = len;
    body.data = ngx_pnalloc(r->pool, len + 1);
    if (body.data == NULL) {
        return NGX_ERROR;
    }

    p = body.data;

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    return ngx_http_oauth2_authz_parse_form(r->pool, &body, &ctx->form);
}


/*
 * A Redis call of the request: NGX_AGAIN, the reply goes to next (the
 * request is finalized by whoever next returns a final code to); or the
 * code to finalize the request with now (503: Redis is unavailable).
 */

ngx_int_t
ngx_http_oauth2_authz_call(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, ngx_int_t script, ngx_str_t *args,
    ngx_uint_t nargs, ngx_uint_t nkeys, ngx_http_oauth2_authz_step_pt next)
{
    ngx_int_t                     rc;
    ngx_uint_t                    i;
    ngx_oauth2_redis_call_t      *call;
    ngx_http_oauth2_main_conf_t  *omcf;

    /* an empty value is "", never a NULL pointer for hiredis to copy */

    for (i = 0; i < nargs; i++) {
        if (args[i].data == NULL) {
            args[i].data = (u_char *) "";
            args[i].len = 0;
        }
    }

    call = ngx_oauth2_redis_call_create();

    if (call == NULL) {
        return ngx_http_oauth2_authz_unavailable(r);
    }

    call->handler = ngx_http_oauth2_authz_redis_done;
    call->data = ctx;
    call->log = r->connection->log;
    call->script = script;
    call->args = args;
    call->nargs = nargs;
    call->nkeys = nkeys;

    rc = ngx_oauth2_redis_send(call);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: redis %V is unavailable", &omcf->redis.addr);

        return ngx_http_oauth2_authz_unavailable(r);
    }

    ctx->call = call;
    ctx->next = next;

    /* a client that goes away ends its request: the cleanup cancels */

    r->read_event_handler = ngx_http_test_reading;

    if (r->connection->read->ready) {
        ngx_post_event(r->connection->read, &ngx_posted_events);
    }

    return NGX_AGAIN;
}


static void
ngx_http_oauth2_authz_redis_done(ngx_oauth2_redis_call_t *call,
    struct redisReply *reply)
{
    ngx_int_t                     rc;
    ngx_str_t                     s, esc;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_oauth2_authz_ctx_t  *ctx;
    u_char                        buf[NGX_OAUTH2_ESCAPE_LEN];

    ctx = call->data;
    r = ctx->request;
    c = r->connection;

    ctx->call = NULL;
    r->read_event_handler = ngx_http_block_reading;

    if (reply == NULL) {
        rc = ngx_http_oauth2_authz_unavailable(r);

    } else if (reply->type == REDIS_REPLY_ERROR) {
        s.data = (u_char *) reply->str;
        s.len = reply->len;
        esc.data = buf;
        esc.len = ngx_oauth2_escape(buf, &s);

        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "oauth2: redis answered an error: %V", &esc);

        rc = ngx_http_oauth2_authz_unavailable(r);

    } else {
        rc = ctx->next(r, ctx, reply);
    }

    ngx_http_oauth2_authz_finish(r, rc);

    ngx_http_run_posted_requests(c);
}


/* NGX_AGAIN: waiting on Redis again; anything else ends the request */

void
ngx_http_oauth2_authz_finish(ngx_http_request_t *r, ngx_int_t rc)
{
    if (rc != NGX_AGAIN) {
        ngx_http_finalize_request(r, rc);
    }
}


/* <prefix><kind>:<id>, or <prefix><kind>:<lowercase hex SHA-256 of id> */

ngx_int_t
ngx_http_oauth2_authz_key(ngx_http_request_t *r, ngx_str_t *key, char *kind,
    ngx_str_t *id, ngx_uint_t hashed)
{
    u_char                       *p;
    size_t                        len;
    ngx_http_oauth2_main_conf_t  *omcf;
    u_char                        digest[NGX_OAUTH2_DIGEST_LEN];

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth2_module);

    len = omcf->prefix.len + ngx_strlen(kind) + 1
          + (hashed ? 2 * NGX_OAUTH2_DIGEST_LEN : id->len);

    key->data = ngx_pnalloc(r->pool, len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(key->data, omcf->prefix.data, omcf->prefix.len);
    p = ngx_cpymem(p, kind, ngx_strlen(kind));
    *p++ = ':';

    if (hashed) {
        if (ngx_oauth2_token_hash(id, digest) != NGX_OK) {
            return NGX_ERROR;
        }

        p = ngx_hex_dump(p, digest, NGX_OAUTH2_DIGEST_LEN);

    } else {
        p = ngx_cpymem(p, id->data, id->len);
    }

    key->len = p - key->data;

    return NGX_OK;
}


/* n random bytes from OpenSSL, base64url without padding */

ngx_int_t
ngx_http_oauth2_authz_random(ngx_http_request_t *r, size_t n, ngx_str_t *out)
{
    ngx_str_t  raw;
    u_char     buf[64];

    if (n > sizeof(buf) || RAND_bytes(buf, (int) n) != 1) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "oauth2: RAND_bytes() failed");
        return NGX_ERROR;
    }

    raw.data = buf;
    raw.len = n;

    out->data = ngx_pnalloc(r->pool, ngx_base64_encoded_length(n));
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_encode_base64url(out, &raw);

    ngx_explicit_memzero(buf, n);

    return NGX_OK;
}


/* a string (or nil: empty) of a reply, copied: the reply is Redis's */

ngx_int_t
ngx_http_oauth2_authz_reply_str(ngx_http_request_t *r, struct redisReply *rr,
    ngx_str_t *s)
{
    if (rr->type == REDIS_REPLY_NIL) {
        ngx_str_null(s);
        return NGX_OK;
    }

    if (rr->type == REDIS_REPLY_INTEGER) {
        s->data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (s->data == NULL) {
            return NGX_ERROR;
        }

        s->len = ngx_sprintf(s->data, "%L", (int64_t) rr->integer) - s->data;
        return NGX_OK;
    }

    if (rr->type != REDIS_REPLY_STRING && rr->type != REDIS_REPLY_STATUS) {
        return NGX_ERROR;
    }

    s->len = rr->len;
    s->data = ngx_pnalloc(r->pool, rr->len + 1);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, rr->str, rr->len);
    s->data[rr->len] = '\0';

    return NGX_OK;
}


/* a secret's name in log lines: 6 hex digits of its SHA-256 */

u_char *
ngx_http_oauth2_authz_name(u_char *buf, ngx_str_t *secret)
{
    u_char  digest[NGX_OAUTH2_DIGEST_LEN];

    if (ngx_oauth2_token_hash(secret, digest) != NGX_OK) {
        ngx_memcpy(buf, "??????", 7);
        return buf;
    }

    ngx_hex_dump(buf, digest, 3);
    buf[6] = '\0';

    return buf;
}


/* HMGET <prefix>client:<id> ...: the reply goes to next */

ngx_int_t
ngx_http_oauth2_authz_fetch_client(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, ngx_str_t *client_id,
    ngx_http_oauth2_authz_step_pt next)
{
    ngx_str_t  *a;

    a = ngx_palloc(r->pool, 9 * sizeof(ngx_str_t));
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&a[0], "HMGET");

    if (ngx_http_oauth2_authz_key(r, &a[1], "client", client_id, 0)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&a[2], "secret_sha256");
    ngx_str_set(&a[3], "redirect_uris");
    ngx_str_set(&a[4], "subscribed");
    ngx_str_set(&a[5], "scopes");
    ngx_str_set(&a[6], "plan");
    ngx_str_set(&a[7], "name");
    ngx_str_set(&a[8], "grant_types");

    ctx->client.id = *client_id;

    return ngx_http_oauth2_authz_call(r, ctx, NGX_OAUTH2_SCRIPT_NONE, a, 9, 0,
                                      next);
}


/*
 * The client record of ngx_http_oauth2_authz_fetch_client()'s reply, and,
 * with "authenticate", ctx->secret checked against its secret_sha256 in
 * constant time: NGX_OK; NGX_DECLINED (unknown, not subscribed, wrong
 * secret, a record the module cannot use); NGX_ERROR (not a reply of
 * HMGET).
 */

ngx_int_t
ngx_http_oauth2_authz_client(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, struct redisReply *reply,
    ngx_uint_t authenticate)
{
    ngx_int_t                  rc;
    ngx_str_t                  esc, *bad;
    ngx_uint_t                 i, known;
    const char                *field;
    ngx_http_oauth2_client_t  *cl;
    u_char                     stored[NGX_OAUTH2_DIGEST_LEN];
    u_char                     digest[NGX_OAUTH2_DIGEST_LEN];
    u_char                     buf[NGX_OAUTH2_ESCAPE_LEN];

    cl = &ctx->client;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 7) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth2: unexpected reply from redis for client "
                      "\"%V\"", &cl->id);
        return NGX_ERROR;
    }

    if (ngx_http_oauth2_authz_reply_str(r, reply->element[0],
                                        &cl->secret_sha256) != NGX_OK
        || ngx_http_oauth2_authz_reply_str(r, reply->element[1],
                                           &cl->redirect_uris) != NGX_OK
        || ngx_http_oauth2_authz_reply_str(r, reply->element[2],
                                           &cl->subscribed) != NGX_OK
        || ngx_http_oauth2_authz_reply_str(r, reply->element[3],
                                           &cl->scopes) != NGX_OK
        || ngx_http_oauth2_authz_reply_str(r, reply->element[4],
                                           &cl->plan) != NGX_OK
        || ngx_http_oauth2_authz_reply_str(r, reply->element[5],
                                           &cl->name) != NGX_OK
        || ngx_http_oauth2_authz_reply_str(r, reply->element[6],
                                           &cl->grant_types) != NGX_OK)
    {
        return NGX_ERROR;
    }

    known = 0;

    for (i = 0; i < 7; i++) {
        known |= (reply->element[i]->type != REDIS_REPLY_NIL);
    }

    /* the secret first, the same work whatever the record holds */

    rc = NGX_OK;

    if (authenticate) {
        ngx_memzero(stored, sizeof(stored));

        if (cl->secret_sha256.len != 2 * NGX_OAUTH2_DIGEST_LEN) {
            rc = NGX_DECLINED;
        }

        for (i = 0; rc == NGX_OK && i < NGX_OAUTH2_DIGEST_LEN; i++) {
            stored[i] = (u_char) ngx_hextoi(cl->secret_sha256.data + 2 * i,
                                            2);

            if (ngx_hextoi(cl->secret_sha256.data + 2 * i, 2) == NGX_ERROR) {
                rc = NGX_DECLINED;
            }
        }

        if (ngx_oauth2_token_hash(&ctx->secret, digest) != NGX_OK) {
            return NGX_ERROR;
        }

        if (CRYPTO_memcmp(digest, stored, NGX_OAUTH2_DIGEST_LEN) != 0) {
            rc = NGX_DECLINED;
        }

        ngx_explicit_memzero(digest, sizeof(digest));
    }

    if (!known) {
        esc.data = buf;
        esc.len = ngx_oauth2_escape(buf, &cl->id);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: client \"%V\" is unknown", &esc);
        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: client \"%V\" sent a wrong secret", &cl->id);
        return NGX_DECLINED;
    }

    if (!(cl->subscribed.len == 1 && cl->subscribed.data[0] == '1')) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: client \"%V\" is not subscribed", &cl->id);
        return NGX_DECLINED;
    }

    /* what goes from the record into tokens must pass the gateway's gate */

    bad = NULL;
    field = NULL;

    if (cl->plan.len && !ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_PLAN,
                                                &cl->plan))
    {
        bad = &cl->plan;
        field = "plan";

    } else if (!ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_SCOPE, &cl->scopes)) {
        bad = &cl->scopes;
        field = "scopes";

    } else if (cl->name.len
               && !ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_TEXT,
                                               &cl->name))
    {
        bad = &cl->name;
        field = "name";
    }

    if (bad) {
        esc.data = buf;
        esc.len = ngx_oauth2_escape(buf, bad);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "oauth2: client \"%V\" has a %s that is not allowed "
                      "(\"%V\"), client refused", &cl->id, field, &esc);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * The client's credentials: HTTP Basic, or client_id and client_secret
 * in the form (client_secret_post) when methods allow it, never both.
 * NGX_OK: ctx->client_id, ctx->secret; NGX_DECLINED: missing or
 * malformed (401); NGX_HTTP_BAD_REQUEST: two methods, or a client_id in
 * the form that is not the one of the header; NGX_ERROR.
 */

ngx_int_t
ngx_http_oauth2_authz_credentials(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, ngx_uint_t methods)
{
    ngx_int_t                rc;
    ngx_str_t               *id, *secret;
    ngx_table_elt_t         *h;
    ngx_http_oauth2_form_t  *form;

    h = r->headers_in.authorization;
    form = &ctx->form;
    id = &form->value[NGX_HTTP_OAUTH2_P_CLIENT_ID];
    secret = &form->value[NGX_HTTP_OAUTH2_P_CLIENT_SECRET];

    if (h) {
        if (!(methods & NGX_HTTP_OAUTH2_AUTH_BASIC)) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: HTTP Basic client authentication is not "
                          "allowed (oauth2_token_client_auth)");
            return NGX_DECLINED;
        }

        rc = ngx_http_oauth2_authz_parse_basic(r->pool, &h->value,
                                               &ctx->client_id, &ctx->secret);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc != NGX_OK) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: malformed Authorization header, HTTP "
                          "Basic client credentials expected");
            return NGX_DECLINED;
        }

        if (form->flags[NGX_HTTP_OAUTH2_P_CLIENT_SECRET]) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: client credentials both in the "
                          "Authorization header and in the form");
            return NGX_HTTP_BAD_REQUEST;
        }

        if (form->flags[NGX_HTTP_OAUTH2_P_CLIENT_ID]
            && (id->len != ctx->client_id.len
                || ngx_strncmp(id->data, ctx->client_id.data, id->len) != 0))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth2: the client_id of the form is not the "
                          "one of the Authorization header");
            return NGX_HTTP_BAD_REQUEST;
        }

        return NGX_OK;
    }

    if (!(methods & NGX_HTTP_OAUTH2_AUTH_POST)
        || !form->flags[NGX_HTTP_OAUTH2_P_CLIENT_SECRET])
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: no client credentials");
        return NGX_DECLINED;
    }

    if (form->flags[NGX_HTTP_OAUTH2_P_CLIENT_SECRET]
        & (NGX_HTTP_OAUTH2_DUP|NGX_HTTP_OAUTH2_BAD)
        || form->flags[NGX_HTTP_OAUTH2_P_CLIENT_ID]
           & (NGX_HTTP_OAUTH2_DUP|NGX_HTTP_OAUTH2_BAD)
        || !ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_IDENT, id)
        || !ngx_http_oauth2_authz_valid(NGX_HTTP_OAUTH2_G_SECRET, secret))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth2: malformed client_id or client_secret in the "
                      "form");
        return NGX_DECLINED;
    }

    ctx->client_id = *id;
    ctx->secret = *secret;

    return NGX_OK;
}


/*
 * A JSON response (a json_t, released here): Cache-Control: no-store,
 * Pragma: no-cache, and with "basic", WWW-Authenticate: Basic realm=...
 * (the realm of oauth2_realm).  Returns what to finalize the request with.
 */

ngx_int_t
ngx_http_oauth2_authz_json(ngx_http_request_t *r, ngx_uint_t status,
    void *obj, ngx_uint_t basic)
{
    char                        *dump;
    u_char                      *p;
    ngx_int_t                    rc;
    ngx_str_t                    value;
    ngx_buf_t                   *b;
    ngx_chain_t                  out;
    ngx_http_oauth2_loc_conf_t  *olcf;

    static ngx_str_t  no_store = ngx_string("no-store");
    static ngx_str_t  no_cache = ngx_string("no-cache");
    static ngx_str_t  one = ngx_string("1");

    if (obj == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    dump = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);

    if (dump == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_create_temp_buf(r->pool, ngx_strlen(dump));
    if (b == NULL) {
        free(dump);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->pos, dump, ngx_strlen(dump));
    free(dump);

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_oauth2_add_header(r, "Cache-Control", &no_store, NULL) != NGX_OK
        || ngx_oauth2_add_header(r, "Pragma", &no_cache, NULL) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE
        && ngx_oauth2_add_header(r, "Retry-After", &one, NULL) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (basic) {
        olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth2_module);

        p = ngx_pnalloc(r->pool, sizeof("Basic realm=\"\"") - 1
                                 + olcf->realm.len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        value.data = p;
        value.len = ngx_sprintf(p, "Basic realm=\"%V\"", &olcf->realm) - p;

        if (ngx_oauth2_add_header(r, "WWW-Authenticate", &value,
                                  &r->headers_out.www_authenticate)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* {"error":"...","error_description":"..."} */

ngx_int_t
ngx_http_oauth2_authz_error(ngx_http_request_t *r, ngx_uint_t status,
    char *error, char *description, ngx_uint_t basic)
{
    json_t  *obj;

    if (description) {
        obj = json_pack("{s:s, s:s}", "error", error,
                        "error_description", description);

    } else {
        obj = json_pack("{s:s}", "error", error);
    }

    return ngx_http_oauth2_authz_json(r, status, obj, basic);
}


ngx_int_t
ngx_http_oauth2_authz_not_allowed(ngx_http_request_t *r, char *allow)
{
    ngx_str_t  value;

    value.data = (u_char *) allow;
    value.len = ngx_strlen(allow);

    if (ngx_oauth2_add_header(r, "Allow", &value, NULL) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_oauth2_authz_error(r, NGX_HTTP_NOT_ALLOWED,
                                       "invalid_request", NULL, 0);
}


ngx_int_t
ngx_http_oauth2_authz_unavailable(ngx_http_request_t *r)
{
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "oauth2: answering 503, redis is unavailable");

    return ngx_http_oauth2_authz_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "temporarily_unavailable", NULL, 0);
}


/*
 * 302 to uri with the parameters added to its query, percent-encoded
 * (everything but RFC 3986 unreserved characters).
 */

ngx_int_t
ngx_http_oauth2_authz_redirect(ngx_http_request_t *r, ngx_str_t *uri,
    ngx_str_t *names, ngx_str_t *values, ngx_uint_t n)
{
    u_char           *p, *s, *end, sep, c;
    size_t            len;
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    static u_char     hex[] = "0123456789ABCDEF";
    static ngx_str_t  no_store = ngx_string("no-store");

    len = uri->len;

    for (i = 0; i < n; i++) {
        len += 1 + names[i].len + 1 + 3 * values[i].len;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Location");
    h->value.data = p;

    p = ngx_cpymem(p, uri->data, uri->len);

    if (ngx_strlchr(uri->data, uri->data + uri->len, '?') == NULL) {
        sep = '?';

    } else if (uri->len && (uri->data[uri->len - 1] == '?'
                            || uri->data[uri->len - 1] == '&'))
    {
        sep = 0;

    } else {
        sep = '&';
    }

    for (i = 0; i < n; i++) {
        if (sep) {
            *p++ = sep;
        }

        sep = '&';

        p = ngx_cpymem(p, names[i].data, names[i].len);
        *p++ = '=';

        end = values[i].data + values[i].len;

        for (s = values[i].data; s < end; s++) {
            c = *s;

            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                || (c >= '0' && c <= '9') || c == '-' || c == '.'
                || c == '_' || c == '~')
            {
                *p++ = c;

            } else {
                *p++ = '%';
                *p++ = hex[c >> 4];
                *p++ = hex[c & 0xf];
            }
        }
    }

    h->value.len = p - h->value.data;

    ngx_http_clear_location(r);
    r->headers_out.location = h;

    if (ngx_oauth2_add_header(r, "Cache-Control", &no_store, NULL) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    return NGX_HTTP_MOVED_TEMPORARILY;
}
