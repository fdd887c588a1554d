
/*
 * ngx_oauth2_module: the local rate-limit counters, for
 * oauth2_rate_limit_fallback local: while Redis cannot count, each node
 * counts alone, in a zone of its own (oauth2_rate_limit_zone, 1m by
 * default, made as soon as there is an oauth2_plan), with the GCRA of
 * ngx_oauth2_gcra.c.  The least recently used clients make room.
 */


#include "ngx_http_oauth2_module.h"


typedef struct {
    ngx_oauth2_zone_node_t       zn;             /* key: client, plan, */
    double                       tat[NGX_OAUTH2_MAX_LIMITS];  /* limits */
} ngx_oauth2_counter_t;


/* oauth2_rate_limit_zone SIZE */

char *
ngx_http_oauth2_rate_limit_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_main_conf_t *omcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (omcf->counters_size != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\" in "
                           "\"oauth2_rate_limit_zone\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    omcf->counters_size = size;

    return NGX_CONF_OK;
}


/* the zone, when there are plans to count */

char *
ngx_oauth2_counters_init_conf(ngx_conf_t *cf,
    ngx_http_oauth2_main_conf_t *omcf)
{
    static ngx_str_t  name = ngx_string("oauth2_rate_limit");

    if (omcf->plans == NULL) {
        return NGX_CONF_OK;
    }

    if (omcf->counters_size == NGX_CONF_UNSET_SIZE) {
        omcf->counters_size = 1024 * 1024;
    }

    omcf->counters = ngx_oauth2_zone_add(cf, &name, omcf->counters_size,
                                         "oauth2_rate_limit_zone", NULL);
    if (omcf->counters == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Counts a request of the client whose key is "key" (client, plan and the
 * plan's limits: a reload that changes them starts anew).  Sets rl;
 * NGX_DECLINED when there is no room to count (not limited then).
 */

ngx_int_t
ngx_oauth2_counters_gcra(ngx_oauth2_counters_t *counters, ngx_str_t *key,
    ngx_oauth2_plan_t *plan, ngx_oauth2_rl_t *rl)
{
    double                 now;
    ngx_time_t            *tp;
    ngx_rbtree_key_t       hash;
    ngx_oauth2_counter_t  *cn;

    tp = ngx_timeofday();
    now = ((double) tp->sec * 1000 + tp->msec) * 1000;

    hash = ngx_crc32_short(key->data, key->len);

    ngx_oauth2_zone_lock(counters);

    cn = ngx_oauth2_zone_lookup(counters, hash, key->data, key->len);

    if (cn == NULL) {
        cn = ngx_oauth2_zone_alloc(counters, sizeof(ngx_oauth2_counter_t),
                                   hash, key->data, key->len,
                                   ngx_cycle->log);
        if (cn == NULL) {
            ngx_oauth2_zone_unlock(counters);
            return NGX_DECLINED;
        }

        ngx_memzero(cn->tat, sizeof(cn->tat));
    }

    ngx_oauth2_gcra(plan->limits->elts, plan->limits->nelts, cn->tat, now,
                    rl);

    ngx_oauth2_zone_unlock(counters);

    return NGX_OK;
}
