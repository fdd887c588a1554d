
/*
 * ngx_oauth2_module: the shared-memory cache of token records
 * (oauth2_cache zone=NAME:SIZE [ttl=TIME]).
 *
 * Keyed by the token's SHA-256 (its first bytes are the rbtree key: no
 * other hash is needed); an entry is kept for at most ttl and never past
 * the token's expiry; the least recently used entries make room for new
 * ones.  A zone of ngx_oauth2_zone.c, of its own.
 */


#include "ngx_http_oauth2_module.h"


#define NGX_OAUTH2_CACHE_FIELDS  6


typedef struct {
    ngx_oauth2_zone_node_t       zn;             /* key: the SHA-256 */
    time_t                       valid_until;
    time_t                       expires;
    u_short                      len[NGX_OAUTH2_CACHE_FIELDS];
    unsigned                     consent_valid:1;
    unsigned                     jwt:1;
    u_char                       data[1];        /* the fields */
} ngx_oauth2_cache_node_t;


struct ngx_oauth2_cache_s {
    ngx_oauth2_zone_t           *zone;
    time_t                       ttl;
};


static ngx_uint_t ngx_oauth2_cache_stale(ngx_oauth2_zone_node_t *zn);


/* the record's strings, in the order they are stored in a node */

static ngx_str_t *
ngx_oauth2_cache_field(ngx_oauth2_record_t *rec, ngx_uint_t i)
{
    switch (i) {
    case 0:
        return &rec->client_id;
    case 1:
        return &rec->scope;
    case 2:
        return &rec->plan;
    case 3:
        return &rec->consent_id;
    case 4:
        return &rec->sub;
    default:
        return &rec->consent_status;
    }
}


static ngx_rbtree_key_t
ngx_oauth2_cache_key(u_char *digest)
{
    ngx_rbtree_key_t  key;

    /* a SHA-256's first bytes are as good a hash as any */

    ngx_memcpy(&key, digest, sizeof(ngx_rbtree_key_t));

    return key;
}


char *
ngx_http_oauth2_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth2_main_conf_t *omcf = conf;

    u_char              *p;
    ssize_t              size;
    ngx_str_t           *value, name, s;
    ngx_uint_t           i;
    ngx_oauth2_cache_t  *cache;

    if (omcf->cache) {
        return "is duplicate";
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_oauth2_cache_t));
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    cache->ttl = 30;

    value = cf->args->elts;
    size = 0;
    ngx_str_null(&name);

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            name.data = value[i].data + 5;
            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                goto invalid;
            }

            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (name.len == 0 || size == NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {

            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            cache->ttl = ngx_parse_time(&s, 1);

            if (cache->ttl == (time_t) NGX_ERROR || cache->ttl == 0) {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_cache\" needs zone=NAME:SIZE");
        return NGX_CONF_ERROR;
    }

    cache->zone = ngx_oauth2_zone_add(cf, &name, size, "oauth2_cache",
                                      ngx_oauth2_cache_stale);
    if (cache->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    omcf->cache = cache;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"oauth2_cache\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_uint_t
ngx_oauth2_cache_stale(ngx_oauth2_zone_node_t *zn)
{
    return ((ngx_oauth2_cache_node_t *) zn)->valid_until <= ngx_time();
}


ngx_oauth2_zone_t *
ngx_oauth2_cache_zone(ngx_oauth2_cache_t *cache)
{
    return cache->zone;
}


ngx_int_t
ngx_oauth2_cache_get(ngx_oauth2_cache_t *cache, u_char *digest,
    ngx_pool_t *pool, ngx_oauth2_record_t *rec)
{
    u_char                   *p, *data;
    size_t                    len;
    ngx_str_t                *s;
    ngx_uint_t                i;
    ngx_oauth2_cache_node_t  *cn;

    ngx_oauth2_zone_lock(cache->zone);

    cn = ngx_oauth2_zone_lookup(cache->zone, ngx_oauth2_cache_key(digest),
                                digest, NGX_OAUTH2_DIGEST_LEN);

    if (cn == NULL) {
        ngx_oauth2_zone_unlock(cache->zone);
        ngx_oauth2_metrics_cache(0);
        return NGX_DECLINED;
    }

    if (cn->valid_until <= ngx_time()) {
        ngx_oauth2_zone_free(cache->zone, cn);
        ngx_oauth2_zone_unlock(cache->zone);
        ngx_oauth2_metrics_cache(0);
        return NGX_DECLINED;
    }

    len = 0;
    for (i = 0; i < NGX_OAUTH2_CACHE_FIELDS; i++) {
        len += cn->len[i];
    }

    data = ngx_pnalloc(pool, len ? len : 1);
    if (data == NULL) {
        ngx_oauth2_zone_unlock(cache->zone);
        return NGX_ERROR;
    }

    ngx_memcpy(data, cn->data, len);

    ngx_memzero(rec, sizeof(ngx_oauth2_record_t));

    rec->expires = cn->expires;
    rec->consent_valid = cn->consent_valid;
    rec->jwt = cn->jwt;

    ngx_oauth2_zone_unlock(cache->zone);

    ngx_oauth2_metrics_cache(1);

    p = data;
    for (i = 0; i < NGX_OAUTH2_CACHE_FIELDS; i++) {
        s = ngx_oauth2_cache_field(rec, i);
        s->len = cn->len[i];
        s->data = p;
        p += s->len;
    }

    return NGX_OK;
}


void
ngx_oauth2_cache_put(ngx_oauth2_cache_t *cache, u_char *digest,
    ngx_oauth2_record_t *rec, ngx_log_t *log)
{
    u_char                   *p;
    size_t                    len;
    time_t                    now, until;
    ngx_str_t                *s;
    ngx_uint_t                i;
    ngx_rbtree_key_t          key;
    ngx_oauth2_cache_node_t  *cn;

    now = ngx_time();
    until = now + cache->ttl;

    if (rec->expires && rec->expires < until) {
        until = rec->expires;
    }

    if (until <= now) {
        return;
    }

    len = 0;
    for (i = 0; i < NGX_OAUTH2_CACHE_FIELDS; i++) {
        s = ngx_oauth2_cache_field(rec, i);

        if (s->len > 0xffff) {
            return;
        }

        len += s->len;
    }

    key = ngx_oauth2_cache_key(digest);

    ngx_oauth2_zone_lock(cache->zone);

    cn = ngx_oauth2_zone_lookup(cache->zone, key, digest,
                                NGX_OAUTH2_DIGEST_LEN);
    if (cn) {
        ngx_oauth2_zone_free(cache->zone, cn);
    }

    cn = ngx_oauth2_zone_alloc(cache->zone,
                               offsetof(ngx_oauth2_cache_node_t, data) + len,
                               key, digest, NGX_OAUTH2_DIGEST_LEN, log);
    if (cn == NULL) {
        ngx_oauth2_zone_unlock(cache->zone);
        return;
    }

    cn->valid_until = until;
    cn->expires = rec->expires;
    cn->consent_valid = rec->consent_valid;
    cn->jwt = rec->jwt;

    p = cn->data;
    for (i = 0; i < NGX_OAUTH2_CACHE_FIELDS; i++) {
        s = ngx_oauth2_cache_field(rec, i);
        cn->len[i] = (u_short) s->len;
        p = ngx_cpymem(p, s->data, s->len);
    }

    ngx_oauth2_zone_unlock(cache->zone);
}
