
/*
 * ngx_oauth2_module: directives, configuration, variables and the
 * registration of the access-phase handler.
 */


#include "ngx_http_oauth2_module.h"


typedef struct {
    ngx_str_t                    name;
    ngx_uint_t                   field;
} ngx_http_oauth2_var_t;


/* ngx_conf_num_bounds_t, with the directive's name in the message */

typedef struct {
    ngx_conf_post_handler_pt     post_handler;
    char                        *name;
    ngx_int_t                    low;
    ngx_int_t                    high;
} ngx_http_oauth2_bounds_t;


enum {
    NGX_OAUTH2_VAR_CLIENT_ID = 0,
    NGX_OAUTH2_VAR_SCOPE,
    NGX_OAUTH2_VAR_PLAN,
    NGX_OAUTH2_VAR_CONSENT_ID,
    NGX_OAUTH2_VAR_SUB,
    NGX_OAUTH2_VAR_EXPIRES_IN,
    NGX_OAUTH2_VAR_STATUS,
    NGX_OAUTH2_VAR_RL_REMAINING
};


static ngx_int_t ngx_http_oauth2_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_oauth2_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_oauth2_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_oauth2_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_oauth2_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_oauth2_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_oauth2_init_process(ngx_cycle_t *cycle);
static void ngx_http_oauth2_exit_process(ngx_cycle_t *cycle);

static ngx_int_t ngx_http_oauth2_join_scopes(ngx_conf_t *cf,
    ngx_http_oauth2_loc_conf_t *conf);
static char *ngx_http_oauth2_scope(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oauth2_audience(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oauth2_claim(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oauth2_redis_password(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_oauth2_check_bounds(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_oauth2_check_realm(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_oauth2_check_prefix(ngx_conf_t *cf, void *post,
    void *data);

static ngx_int_t ngx_http_oauth2_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_oauth2_bounds_t  ngx_http_oauth2_db_bounds = {
    ngx_http_oauth2_check_bounds, "oauth2_redis_db", 0, 65535
};

static ngx_http_oauth2_bounds_t  ngx_http_oauth2_connections_bounds = {
    ngx_http_oauth2_check_bounds, "oauth2_redis_connections", 1, 64
};

static ngx_http_oauth2_bounds_t  ngx_http_oauth2_verify_depth_bounds = {
    ngx_http_oauth2_check_bounds, "oauth2_redis_ssl_verify_depth", 1, 100
};

#if (NGX_HTTP_SSL)

static ngx_conf_bitmask_t  ngx_http_oauth2_ssl_protocols[] = {
    { ngx_string("TLSv1.2"), NGX_SSL_TLSv1_2 },
    { ngx_string("TLSv1.3"), NGX_SSL_TLSv1_3 },
    { ngx_null_string, 0 }
};

#endif

static ngx_http_oauth2_bounds_t  ngx_http_oauth2_max_token_bounds = {
    ngx_http_oauth2_check_bounds, "oauth2_token_max_length", 16, 65536
};

static ngx_conf_enum_t  ngx_http_oauth2_rl_fallback[] = {
    { ngx_string("local"), NGX_OAUTH2_RL_FALLBACK_LOCAL },
    { ngx_string("allow"), NGX_OAUTH2_RL_FALLBACK_ALLOW },
    { ngx_string("deny"), NGX_OAUTH2_RL_FALLBACK_DENY },
    { ngx_null_string, 0 }
};

static ngx_conf_enum_t  ngx_http_oauth2_token_types[] = {
    { ngx_string("opaque"), NGX_OAUTH2_TOKEN_OPAQUE },
    { ngx_string("jwt"), NGX_OAUTH2_TOKEN_JWT },
    { ngx_string("auto"), NGX_OAUTH2_TOKEN_AUTO },
    { ngx_null_string, 0 }
};

static ngx_conf_post_t  ngx_http_oauth2_realm_post = {
    ngx_http_oauth2_check_realm
};

static ngx_conf_post_t  ngx_http_oauth2_prefix_post = {
    ngx_http_oauth2_check_prefix
};


static ngx_command_t  ngx_http_oauth2_commands[] = {

    { ngx_string("oauth2"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, enable),
      NULL },

    { ngx_string("oauth2_scope"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_oauth2_scope,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, scope_all),
      NULL },

    { ngx_string("oauth2_scope_any"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_oauth2_scope,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, scope_any),
      NULL },

    { ngx_string("oauth2_consent"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, consent),
      NULL },

    { ngx_string("oauth2_realm"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, realm),
      &ngx_http_oauth2_realm_post },

    { ngx_string("oauth2_token_max_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, max_token),
      &ngx_http_oauth2_max_token_bounds },

    { ngx_string("oauth2_error_message"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_oauth2_error_message,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth2_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_redis_sentinel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_oauth2_sentinel_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_redis_password"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_oauth2_redis_password,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_redis_db"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, redis.db),
      &ngx_http_oauth2_db_bounds },

    { ngx_string("oauth2_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_http_oauth2_redis_timeout_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_redis_connections"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, redis.connections),
      &ngx_http_oauth2_connections_bounds },

    { ngx_string("oauth2_redis_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, prefix),
      &ngx_http_oauth2_prefix_post },

#if (NGX_HTTP_SSL)

    { ngx_string("oauth2_redis_ssl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, redis.ssl),
      NULL },

    { ngx_string("oauth2_redis_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, redis.ssl_verify),
      NULL },

    { ngx_string("oauth2_redis_ssl_verify_depth"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, redis.ssl_verify_depth),
      &ngx_http_oauth2_verify_depth_bounds },

    { ngx_string("oauth2_redis_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, redis.ssl_trusted_certificate),
      NULL },

    { ngx_string("oauth2_redis_ssl_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, redis.ssl_certificate),
      NULL },

    { ngx_string("oauth2_redis_ssl_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, redis.ssl_certificate_key),
      NULL },

    { ngx_string("oauth2_redis_ssl_protocols"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_conf_set_bitmask_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, redis.ssl_protocols),
      &ngx_http_oauth2_ssl_protocols },

    { ngx_string("oauth2_redis_ssl_ciphers"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, redis.ssl_ciphers),
      NULL },

    { ngx_string("oauth2_redis_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, redis.ssl_name),
      NULL },

    { ngx_string("oauth2_redis_ssl_server_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, redis.ssl_server_name),
      NULL },

#endif

    { ngx_string("oauth2_plan"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_oauth2_plan_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_default_plan"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth2_main_conf_t, default_plan_name),
      NULL },

    { ngx_string("oauth2_rate_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, rate_limit),
      NULL },

    { ngx_string("oauth2_rate_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth2_rate_limit_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_rate_limit_fallback"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, rl_fallback),
      &ngx_http_oauth2_rl_fallback },

    { ngx_string("oauth2_rate_limit_lease"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_oauth2_rate_limit_lease_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_rate_limit_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, rl_headers),
      NULL },

    { ngx_string("oauth2_token_type"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, token_type),
      &ngx_http_oauth2_token_types },

    { ngx_string("oauth2_jwt_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE23,
      ngx_http_oauth2_jwt_key_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_jwt_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, jwt_issuer),
      NULL },

    { ngx_string("oauth2_jwt_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_oauth2_audience,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, jwt_leeway),
      NULL },

    { ngx_string("oauth2_jwt_claim"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_oauth2_claim,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_jwt_claim_variable"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_oauth2_jwt_claim_variable_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_jwt_revocation"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, jwt_revocation),
      NULL },

    { ngx_string("oauth2_dry_run"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, dry_run),
      NULL },

    { ngx_string("oauth2_subrequests"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth2_loc_conf_t, subrequests),
      NULL },

    { ngx_string("oauth2_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_oauth2_cache_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_oauth2_metrics_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth2_metrics_label"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth2_metrics_label_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_oauth2_module_ctx = {
    ngx_http_oauth2_preconfiguration,      /* preconfiguration */
    ngx_http_oauth2_postconfiguration,     /* postconfiguration */

    ngx_http_oauth2_create_main_conf,      /* create main configuration */
    ngx_http_oauth2_init_main_conf,        /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_oauth2_create_loc_conf,       /* create location configuration */
    ngx_http_oauth2_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_oauth2_module = {
    NGX_MODULE_V1,
    &ngx_http_oauth2_module_ctx,           /* module context */
    ngx_http_oauth2_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_oauth2_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_oauth2_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* what a worker keeps between requests: ngx_oauth2_worker_t */
ngx_oauth2_worker_t  ngx_oauth2_worker;


static ngx_http_oauth2_var_t  ngx_http_oauth2_vars[] = {
    { ngx_string("oauth2_client_id"), NGX_OAUTH2_VAR_CLIENT_ID },
    { ngx_string("oauth2_scope"), NGX_OAUTH2_VAR_SCOPE },
    { ngx_string("oauth2_plan"), NGX_OAUTH2_VAR_PLAN },
    { ngx_string("oauth2_consent_id"), NGX_OAUTH2_VAR_CONSENT_ID },
    { ngx_string("oauth2_sub"), NGX_OAUTH2_VAR_SUB },
    { ngx_string("oauth2_expires_in"), NGX_OAUTH2_VAR_EXPIRES_IN },
    { ngx_string("oauth2_status"), NGX_OAUTH2_VAR_STATUS },
    { ngx_string("oauth2_ratelimit_remaining"),
      NGX_OAUTH2_VAR_RL_REMAINING },
    { ngx_null_string, 0 }
};


static ngx_int_t
ngx_http_oauth2_preconfiguration(ngx_conf_t *cf)
{
    ngx_http_variable_t    *var;
    ngx_http_oauth2_var_t  *v;

    static ngx_str_t  claim_prefix = ngx_string("oauth2_jwt_claim_");

    for (v = ngx_http_oauth2_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, NGX_HTTP_VAR_NOCACHEABLE);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = ngx_http_oauth2_variable;
        var->data = v->field;
    }

    var = ngx_http_add_variable(cf, &claim_prefix,
                                NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_oauth2_jwt_claim_variable;

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth2_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                    i;
    ngx_http_variable_t          *v;
    ngx_http_handler_pt          *h;
    ngx_http_core_main_conf_t    *cmcf;
    ngx_http_oauth2_main_conf_t  *omcf;

    static ngx_str_t  expires_in = ngx_string("oauth2_expires_in");

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_oauth2_access_handler;

    /*
     * nginx runs no access phase for subrequests (SSI, auth_request):
     * the preaccess phase, which it runs, checks them
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_oauth2_subrequest_handler;

    /*
     * the key's TTL, a Redis call of its own, is asked for only when it
     * is used: to bound a cache entry, or for $oauth2_expires_in
     */

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_oauth2_module);

    omcf->want_ttl = (omcf->cache != NULL);

    v = cmcf->variables.elts;

    for (i = 0; i < cmcf->variables.nelts; i++) {
        if (v[i].name.len == expires_in.len
            && ngx_strncasecmp(v[i].name.data, expires_in.data,
                               expires_in.len) == 0)
        {
            omcf->want_ttl = 1;
        }
    }

    return ngx_http_oauth2_filter_init(cf);
}


static void *
ngx_http_oauth2_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_oauth2_main_conf_t  *omcf;

    omcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_oauth2_main_conf_t));
    if (omcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     omcf->redis.addr, .host, .user, .password = { 0, NULL };
     *     omcf->redis.port = 0;
     *     omcf->redis.addrs = NULL;
     *     omcf->redis.ssl_* (strings) = { 0, NULL };
     *     omcf->redis.ssl_protocols = 0;
     *     omcf->redis.sentinels = NULL;
     *     omcf->redis.master, .sentinel_user, .sentinel_password = { 0, NULL };
     *     omcf->prefix = { 0, NULL };
     *     omcf->used = 0;
     *     omcf->cache = NULL;
     *     omcf->counters = NULL;
     *     omcf->leases = NULL;
     *     omcf->plans = NULL;
     *     omcf->default_plan_name = { 0, NULL };
     *     omcf->default_plan = NULL;
     *     omcf->plans_spec = { 0, NULL };
     *     omcf->jwt_keys = NULL;
     *     omcf->metrics = NULL;
     *     omcf->metrics_labels = NULL;
     */

    omcf->redis.db = NGX_CONF_UNSET;
    omcf->redis.timeout = NGX_CONF_UNSET_MSEC;
    omcf->redis.connect_timeout = NGX_CONF_UNSET_MSEC;
    omcf->redis.handshake_timeout = NGX_CONF_UNSET_MSEC;
    omcf->redis.connections = NGX_CONF_UNSET_UINT;
    omcf->redis.ssl = NGX_CONF_UNSET;
    omcf->redis.ssl_verify = NGX_CONF_UNSET;
    omcf->redis.ssl_verify_depth = NGX_CONF_UNSET_UINT;
    omcf->redis.ssl_server_name = NGX_CONF_UNSET;
    omcf->counters_size = NGX_CONF_UNSET_SIZE;

    return omcf;
}


static char *
ngx_http_oauth2_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_oauth2_main_conf_t  *omcf = conf;

    if (omcf->prefix.data == NULL) {
        ngx_str_set(&omcf->prefix, "oauth2:");
    }

    if (ngx_oauth2_redis_init_conf(cf, omcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_oauth2_ratelimit_init_main(cf, omcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_oauth2_metrics_init_conf(cf, omcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_oauth2_counters_init_conf(cf, omcf);
}


static void *
ngx_http_oauth2_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_oauth2_loc_conf_t  *olcf;

    olcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_oauth2_loc_conf_t));
    if (olcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     olcf->scope_required = { 0, NULL };
     *     olcf->scope_all_arg = { 0, NULL };
     *     olcf->jwt_issuer = { 0, NULL };
     *     olcf->jwt_claim_* = { 0, NULL };
     *     olcf->scope_any_arg = { 0, NULL };
     *     olcf->realm = { 0, NULL };
     *     olcf->bodies = NULL;
     *     olcf->metrics = 0;
     */

    olcf->enable = NGX_CONF_UNSET;
    olcf->consent = NGX_CONF_UNSET;
    olcf->scope_all = NGX_CONF_UNSET_PTR;
    olcf->scope_any = NGX_CONF_UNSET_PTR;
    olcf->max_token = NGX_CONF_UNSET_SIZE;
    olcf->token_type = NGX_CONF_UNSET_UINT;
    olcf->jwt_audience = NGX_CONF_UNSET_PTR;
    olcf->jwt_leeway = NGX_CONF_UNSET;
    olcf->jwt_revocation = NGX_CONF_UNSET;
    olcf->rate_limit = NGX_CONF_UNSET;
    olcf->rl_fallback = NGX_CONF_UNSET_UINT;
    olcf->rl_headers = NGX_CONF_UNSET;
    olcf->lease_max = NGX_CONF_UNSET_UINT;
    olcf->lease_time = NGX_CONF_UNSET_MSEC;
    olcf->subrequests = NGX_CONF_UNSET;
    olcf->dry_run = NGX_CONF_UNSET;
    olcf->messages = NGX_CONF_UNSET_PTR;
    olcf->metrics_label = NGX_CONF_UNSET_UINT;

    return olcf;
}


static char *
ngx_http_oauth2_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_oauth2_loc_conf_t *prev = parent;
    ngx_http_oauth2_loc_conf_t *conf = child;

    ngx_http_oauth2_main_conf_t  *omcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->consent, prev->consent, 1);
    ngx_conf_merge_ptr_value(conf->scope_all, prev->scope_all, NULL);
    ngx_conf_merge_ptr_value(conf->scope_any, prev->scope_any, NULL);
    ngx_conf_merge_str_value(conf->realm, prev->realm, "api");
    ngx_conf_merge_size_value(conf->max_token, prev->max_token,
                              NGX_OAUTH2_DEFAULT_MAX_TOKEN);
    ngx_conf_merge_value(conf->rate_limit, prev->rate_limit, 1);
    ngx_conf_merge_uint_value(conf->rl_fallback, prev->rl_fallback,
                              NGX_OAUTH2_RL_FALLBACK_LOCAL);
    ngx_conf_merge_value(conf->rl_headers, prev->rl_headers, 1);
    ngx_conf_merge_uint_value(conf->lease_max, prev->lease_max, 0);
    ngx_conf_merge_msec_value(conf->lease_time, prev->lease_time, 0);
    ngx_conf_merge_value(conf->subrequests, prev->subrequests, 1);
    ngx_conf_merge_value(conf->dry_run, prev->dry_run, 0);
    ngx_conf_merge_uint_value(conf->token_type, prev->token_type,
                              NGX_OAUTH2_TOKEN_OPAQUE);
    ngx_conf_merge_str_value(conf->jwt_issuer, prev->jwt_issuer, "");
    ngx_conf_merge_ptr_value(conf->jwt_audience, prev->jwt_audience, NULL);
    ngx_conf_merge_sec_value(conf->jwt_leeway, prev->jwt_leeway, 0);
    ngx_conf_merge_str_value(conf->jwt_claim_client_id,
                             prev->jwt_claim_client_id, "client_id");
    ngx_conf_merge_str_value(conf->jwt_claim_scope, prev->jwt_claim_scope,
                             "scope");
    ngx_conf_merge_str_value(conf->jwt_claim_plan, prev->jwt_claim_plan,
                             "plan");
    ngx_conf_merge_str_value(conf->jwt_claim_consent_id,
                             prev->jwt_claim_consent_id, "consent_id");
    ngx_conf_merge_value(conf->jwt_revocation, prev->jwt_revocation, 0);
    ngx_conf_merge_uint_value(conf->metrics_label, prev->metrics_label, 0);

    if (conf->messages == NGX_CONF_UNSET_PTR) {
        conf->messages = prev->messages;
        conf->bodies = prev->bodies;
    }

    if (conf->bodies == NULL) {
        if (conf->messages == NGX_CONF_UNSET_PTR) {
            conf->messages = NULL;
        }

        if (ngx_http_oauth2_error_bodies(cf, conf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    /* the "scope" attribute of WWW-Authenticate for insufficient_scope */

    if (conf->scope_all == NULL && conf->scope_any == NULL) {
        /* nothing required */

    } else if (conf->scope_all == prev->scope_all
               && conf->scope_any == prev->scope_any
               && prev->scope_required.data)
    {
        conf->scope_required = prev->scope_required;
        conf->scope_all_arg = prev->scope_all_arg;
        conf->scope_any_arg = prev->scope_any_arg;

    } else if (ngx_http_oauth2_join_scopes(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_oauth2_module);

    if (ngx_oauth2_lease_init_conf(cf, omcf, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->enable) {
        omcf->used = 1;

        if (omcf->redis.addr.len == 0 && omcf->redis.sentinels == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2\" is on but no \"oauth2_redis\" "
                               "is configured in the http block (nor "
                               "\"oauth2_redis_sentinel\")");
            return NGX_CONF_ERROR;
        }

        if (conf->token_type != NGX_OAUTH2_TOKEN_OPAQUE
            && omcf->jwt_keys == NULL)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth2_token_type\" jwt or auto needs an "
                               "\"oauth2_jwt_key\" in the http block");
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* all required scopes, then the alternatives, space-separated */

static ngx_int_t
ngx_http_oauth2_join_scopes(ngx_conf_t *cf, ngx_http_oauth2_loc_conf_t *conf)
{
    u_char       *p;
    size_t        len;
    ngx_str_t    *s;
    ngx_uint_t    i, k;
    ngx_array_t  *a[2];

    a[0] = conf->scope_all;
    a[1] = conf->scope_any;
    len = 0;

    for (k = 0; k < 2; k++) {
        for (i = 0; a[k] && i < a[k]->nelts; i++) {
            s = a[k]->elts;
            len += s[i].len + 1;
        }
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    conf->scope_required.data = p;

    for (k = 0; k < 2; k++) {
        for (i = 0; a[k] && i < a[k]->nelts; i++) {
            s = a[k]->elts;

            if (p != conf->scope_required.data) {
                *p++ = ' ';
            }

            p = ngx_cpymem(p, s[i].data, s[i].len);
        }
    }

    conf->scope_required.len = p - conf->scope_required.data;

    /* the same, apart, for the lookup script */

    len = 0;
    for (i = 0; a[0] && i < a[0]->nelts; i++) {
        s = a[0]->elts;
        len += s[i].len + 1;
    }

    conf->scope_all_arg.data = conf->scope_required.data;
    conf->scope_all_arg.len = len ? len - 1 : 0;

    if (a[1] == NULL || a[1]->nelts == 0) {
        ngx_str_null(&conf->scope_any_arg);

    } else {
        conf->scope_any_arg.data = conf->scope_required.data + len;
        conf->scope_any_arg.len = conf->scope_required.len - len;
    }

    return NGX_OK;
}


/* oauth2_scope / oauth2_scope_any SCOPE ... */

static char *
ngx_http_oauth2_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t     *value, *s;
    ngx_uint_t     i;
    ngx_array_t  **a;

    a = (ngx_array_t **) (p + cmd->offset);

    if (*a != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    *a = ngx_array_create(cf->pool, cf->args->nelts - 1, sizeof(ngx_str_t));
    if (*a == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "empty scope in \"%V\"", &cmd->name);
            return NGX_CONF_ERROR;
        }

        /* RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */

        if (!ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_SCOPE_TOKEN,
                                    &value[i]))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid scope \"%V\" in \"%V\": "
                               "RFC 6749 scope characters only",
                               &value[i], &cmd->name);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(*a);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


/* oauth2_jwt_audience AUD ... */

static char *
ngx_http_oauth2_audience(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth2_loc_conf_t *olcf = conf;

    ngx_str_t   *value, *s;
    ngx_uint_t   i;

    if (olcf->jwt_audience != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    olcf->jwt_audience = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                          sizeof(ngx_str_t));
    if (olcf->jwt_audience == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len == 0) {
            return "has an empty audience";
        }

        s = ngx_array_push(olcf->jwt_audience);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


/* oauth2_jwt_claim scope|client_id|plan|consent_id NAME */

static char *
ngx_http_oauth2_claim(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth2_loc_conf_t *olcf = conf;

    ngx_str_t  *value, *field;

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "scope") == 0) {
        field = &olcf->jwt_claim_scope;

    } else if (ngx_strcmp(value[1].data, "client_id") == 0) {
        field = &olcf->jwt_claim_client_id;

    } else if (ngx_strcmp(value[1].data, "plan") == 0) {
        field = &olcf->jwt_claim_plan;

    } else if (ngx_strcmp(value[1].data, "consent_id") == 0) {
        field = &olcf->jwt_claim_consent_id;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid field \"%V\" in \"oauth2_jwt_claim\": "
                           "scope, client_id, plan or consent_id expected",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (field->data) {
        return "is duplicate";
    }

    if (value[2].len == 0) {
        return "has an empty claim name";
    }

    *field = value[2];

    return NGX_CONF_OK;
}


/* oauth2_redis_password [USER] PASSWORD */

static char *
ngx_http_oauth2_redis_password(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_main_conf_t *omcf = conf;

    ngx_str_t  *value;

    if (omcf->redis_password_set) {
        return "is duplicate";
    }

    omcf->redis_password_set = 1;

    value = cf->args->elts;

    if (cf->args->nelts == 3) {
        omcf->redis.user = value[1];
        omcf->redis.password = value[2];

    } else {
        omcf->redis.password = value[1];
    }

    if (omcf->redis.password.len == 0
        || (cf->args->nelts == 3 && omcf->redis.user.len == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty user or password in "
                           "\"oauth2_redis_password\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth2_check_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_http_oauth2_bounds_t  *b = post;
    ngx_int_t                 *np = data;

    if (*np < b->low || *np > b->high) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" must be between %i and %i",
                           b->name, b->low, b->high);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth2_check_realm(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *realm = data;

    u_char  *p;

    /* the realm goes into a quoted-string of WWW-Authenticate as it is */

    for (p = realm->data; p < realm->data + realm->len; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"oauth2_realm\" \"%V\": quotes, "
                               "backslashes and control characters are "
                               "not allowed", realm);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth2_check_prefix(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *prefix = data;

    if (prefix->len > 128) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_redis_prefix\" \"%V\" is longer "
                           "than 128 bytes", prefix);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Each worker connects to Redis when it starts, if a location can use
 * it: Redis is ready before the first request.
 */

static ngx_int_t
ngx_http_oauth2_init_process(ngx_cycle_t *cycle)
{
    ngx_http_oauth2_main_conf_t  *omcf;

    /* the cache manager and loader run init_process too: no Redis there */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    omcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_oauth2_module);

    if (omcf == NULL) {
        return NGX_OK;
    }

    ngx_oauth2_metrics_init_worker(omcf);

    if (!omcf->used) {
        return NGX_OK;
    }

    ngx_oauth2_lease_init_worker(cycle, omcf);

    return ngx_oauth2_redis_init_worker(cycle, omcf);
}


static void
ngx_http_oauth2_exit_process(ngx_cycle_t *cycle)
{
    ngx_oauth2_redis_exit_worker();
    ngx_oauth2_token_hash_free();
    ngx_oauth2_jwt_free();
}


static ngx_int_t
ngx_http_oauth2_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                 *p;
    time_t                  left;
    ngx_str_t              *s;
    ngx_http_oauth2_ctx_t  *ctx;

    ctx = ngx_http_oauth2_get_ctx(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_OAUTH2_VAR_CLIENT_ID:
        s = &ctx->record.client_id;
        break;

    case NGX_OAUTH2_VAR_SCOPE:
        s = &ctx->record.scope;
        break;

    case NGX_OAUTH2_VAR_PLAN:
        s = &ctx->record.plan;
        break;

    case NGX_OAUTH2_VAR_CONSENT_ID:
        s = &ctx->record.consent_id;
        break;

    case NGX_OAUTH2_VAR_SUB:
        s = &ctx->record.sub;
        break;

    case NGX_OAUTH2_VAR_EXPIRES_IN:
        if (ctx->record.expires == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        left = ctx->record.expires - ngx_time();

        v->len = ngx_sprintf(p, "%T", left > 0 ? left : 0) - p;
        v->data = p;
        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;

        return NGX_OK;

    case NGX_OAUTH2_VAR_RL_REMAINING:
        if (ctx->rl.state == NGX_OAUTH2_RL_NONE) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->len = ngx_sprintf(p, "%i", ctx->rl.remaining) - p;
        v->data = p;
        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;

        return NGX_OK;

    default: /* NGX_OAUTH2_VAR_STATUS */
        s = ngx_oauth2_outcome_name(ctx->outcome);
        break;
    }

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->data = s->data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
