
/*
 * ngx_oauth2_module: the shared-memory cache of token records
 * (oauth2_cache zone=NAME:SIZE [ttl=TIME]).
 *
 * Keyed by the token's SHA-256; an entry is kept for at most ttl and never
 * past the token's expiry; the least recently used entries make room for
 * new ones.  One slab pool and one rbtree shared by all workers, as
 * ngx_http_limit_req_module does.
 */


#include "ngx_http_oauth2_module.h"

#include <math.h>


#define NGX_OAUTH2_CACHE_FIELDS  6


typedef struct {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  queue;

    /* the local rate-limit counters (oauth2_rate_limit_fallback local) */
    ngx_rbtree_t                 rl_rbtree;
    ngx_rbtree_node_t            rl_sentinel;
    ngx_queue_t                  rl_queue;
} ngx_oauth2_cache_sh_t;


typedef struct {
    ngx_rbtree_node_t            node;       /* key: crc32 of the key */
    ngx_queue_t                  queue;
    double                       tat[NGX_OAUTH2_MAX_LIMITS];  /* usec */
    u_short                      len;
    u_char                       key[1];
} ngx_oauth2_rl_node_t;


typedef struct {
    ngx_rbtree_node_t            node;       /* key: crc32 of the hash */
    ngx_queue_t                  queue;
    time_t                       valid_until;
    time_t                       expires;
    u_char                       hash[NGX_OAUTH2_TOKEN_HASH_LEN];
    u_short                      len[NGX_OAUTH2_CACHE_FIELDS];
    unsigned                     consent_valid:1;
    unsigned                     jwt:1;
    u_char                       data[1];
} ngx_oauth2_cache_node_t;


struct ngx_oauth2_cache_s {
    ngx_shm_zone_t              *shm_zone;
    ngx_oauth2_cache_sh_t       *sh;
    ngx_slab_pool_t             *shpool;
    time_t                       ttl;
};


static ngx_int_t ngx_oauth2_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_oauth2_cache_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_oauth2_rl_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_oauth2_cache_node_t *ngx_oauth2_cache_lookup(
    ngx_oauth2_cache_t *cache, u_char *hash, uint32_t key);
static void ngx_oauth2_cache_expire(ngx_oauth2_cache_t *cache,
    ngx_uint_t force);
static void ngx_oauth2_cache_delete(ngx_oauth2_cache_t *cache,
    ngx_oauth2_cache_node_t *cn);


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


char *
ngx_oauth2_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
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

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"oauth2_cache\" zone \"%V\" is too "
                                   "small, 32k at least", &value[i]);
                return NGX_CONF_ERROR;
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

    cache->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                            &ngx_http_oauth2_module);
    if (cache->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cache->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth2_cache\" zone \"%V\" is already used",
                           &name);
        return NGX_CONF_ERROR;
    }

    cache->shm_zone->init = ngx_oauth2_cache_init_zone;
    cache->shm_zone->data = cache;

    omcf->cache = cache;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"oauth2_cache\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_oauth2_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_oauth2_cache_t  *ocache = data;

    size_t               len;
    ngx_oauth2_cache_t  *cache;

    cache = shm_zone->data;

    if (ocache) {
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    cache->sh = ngx_slab_alloc(cache->shpool, sizeof(ngx_oauth2_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_oauth2_cache_insert_value);
    ngx_queue_init(&cache->sh->queue);

    ngx_rbtree_init(&cache->sh->rl_rbtree, &cache->sh->rl_sentinel,
                    ngx_oauth2_rl_insert_value);
    ngx_queue_init(&cache->sh->rl_queue);

    len = sizeof(" in oauth2_cache zone \"\"") + shm_zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx, " in oauth2_cache zone \"%V\"%Z",
                &shm_zone->shm.name);

    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_int_t
ngx_oauth2_cache_get(ngx_oauth2_cache_t *cache, u_char *hash,
    ngx_pool_t *pool, ngx_oauth2_record_t *rec)
{
    u_char                   *p, *data;
    size_t                    len;
    ngx_str_t                *s;
    ngx_uint_t                i;
    ngx_oauth2_cache_node_t  *cn;

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_oauth2_cache_lookup(cache, hash,
                                 ngx_crc32_short(hash,
                                                 NGX_OAUTH2_TOKEN_HASH_LEN));

    if (cn == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    if (cn->valid_until <= ngx_time()) {
        ngx_oauth2_cache_delete(cache, cn);
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    len = 0;
    for (i = 0; i < NGX_OAUTH2_CACHE_FIELDS; i++) {
        len += cn->len[i];
    }

    data = ngx_pnalloc(pool, len ? len : 1);
    if (data == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_ERROR;
    }

    ngx_memcpy(data, cn->data, len);

    rec->expires = cn->expires;
    rec->consent_valid = cn->consent_valid;
    rec->jwt = cn->jwt;

    ngx_queue_remove(&cn->queue);
    ngx_queue_insert_head(&cache->sh->queue, &cn->queue);

    p = data;
    for (i = 0; i < NGX_OAUTH2_CACHE_FIELDS; i++) {
        s = ngx_oauth2_cache_field(rec, i);
        s->len = cn->len[i];
        s->data = p;
        p += s->len;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return NGX_OK;
}


void
ngx_oauth2_cache_put(ngx_oauth2_cache_t *cache, u_char *hash,
    ngx_oauth2_record_t *rec, ngx_log_t *log)
{
    u_char                   *p;
    size_t                    len;
    time_t                    now, until;
    uint32_t                  key;
    ngx_str_t                *s;
    ngx_uint_t                i;
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

    key = ngx_crc32_short(hash, NGX_OAUTH2_TOKEN_HASH_LEN);

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_oauth2_cache_lookup(cache, hash, key);
    if (cn) {
        ngx_oauth2_cache_delete(cache, cn);
    }

    ngx_oauth2_cache_expire(cache, 0);

    cn = ngx_slab_alloc_locked(cache->shpool,
                               offsetof(ngx_oauth2_cache_node_t, data) + len);
    if (cn == NULL) {
        ngx_oauth2_cache_expire(cache, 1);

        cn = ngx_slab_alloc_locked(cache->shpool,
                                   offsetof(ngx_oauth2_cache_node_t, data)
                                   + len);
        if (cn == NULL) {
            ngx_shmtx_unlock(&cache->shpool->mutex);
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "oauth2: no room in oauth2_cache zone \"%V\"",
                          &cache->shm_zone->shm.name);
            return;
        }
    }

    cn->node.key = key;
    cn->valid_until = until;
    cn->expires = rec->expires;
    cn->consent_valid = rec->consent_valid;
    cn->jwt = rec->jwt;
    ngx_memcpy(cn->hash, hash, NGX_OAUTH2_TOKEN_HASH_LEN);

    p = cn->data;
    for (i = 0; i < NGX_OAUTH2_CACHE_FIELDS; i++) {
        s = ngx_oauth2_cache_field(rec, i);
        cn->len[i] = (u_short) s->len;
        p = ngx_cpymem(p, s->data, s->len);
    }

    ngx_rbtree_insert(&cache->sh->rbtree, &cn->node);
    ngx_queue_insert_head(&cache->sh->queue, &cn->queue);

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* ordered by crc32, then by the hash itself */

static void
ngx_oauth2_cache_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t        **p;
    ngx_oauth2_cache_node_t   *cn, *ct;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            cn = (ngx_oauth2_cache_node_t *) node;
            ct = (ngx_oauth2_cache_node_t *) temp;

            p = (ngx_memcmp(cn->hash, ct->hash, NGX_OAUTH2_TOKEN_HASH_LEN)
                 < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_oauth2_cache_node_t *
ngx_oauth2_cache_lookup(ngx_oauth2_cache_t *cache, u_char *hash,
    uint32_t key)
{
    ngx_int_t                 rc;
    ngx_rbtree_node_t        *node, *sentinel;
    ngx_oauth2_cache_node_t  *cn;

    node = cache->sh->rbtree.root;
    sentinel = cache->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        cn = (ngx_oauth2_cache_node_t *) node;

        rc = ngx_memcmp(hash, cn->hash, NGX_OAUTH2_TOKEN_HASH_LEN);

        if (rc == 0) {
            return cn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* drops up to two stale entries from the tail; "force": one in any case */

static void
ngx_oauth2_cache_expire(ngx_oauth2_cache_t *cache, ngx_uint_t force)
{
    time_t                    now;
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_oauth2_cache_node_t  *cn;

    now = ngx_time();

    for (n = 0; n < 3; n++) {

        if (ngx_queue_empty(&cache->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&cache->sh->queue);
        cn = ngx_queue_data(q, ngx_oauth2_cache_node_t, queue);

        if (cn->valid_until > now && !(force && n == 0)) {
            return;
        }

        ngx_oauth2_cache_delete(cache, cn);
    }
}


static void
ngx_oauth2_cache_delete(ngx_oauth2_cache_t *cache, ngx_oauth2_cache_node_t *cn)
{
    ngx_queue_remove(&cn->queue);
    ngx_rbtree_delete(&cache->sh->rbtree, &cn->node);
    ngx_slab_free_locked(cache->shpool, cn);
}


/*
 * GCRA in shared memory: the same algorithm as the Redis script, for one
 * node while Redis cannot be reached.  Sets rl; NGX_DECLINED when there is
 * no room to count (the request is not limited then).
 */

ngx_int_t
ngx_oauth2_cache_gcra(ngx_oauth2_cache_t *cache, ngx_str_t *key,
    ngx_oauth2_plan_t *plan, ngx_oauth2_rl_t *rl)
{
    double                 now, t, tau, tat, wait, retry, best_reset,
                           deny_reset, next[NGX_OAUTH2_MAX_LIMITS];
    uint32_t               hash;
    ngx_int_t              rc, rem, best_rem;
    ngx_uint_t             i, n, best, deny;
    ngx_time_t            *tp;
    ngx_queue_t           *q;
    ngx_rbtree_node_t     *node, *sentinel;
    ngx_oauth2_limit_t    *limit;
    ngx_oauth2_rl_node_t  *rn;

    if (key->len > 0xffff) {
        return NGX_DECLINED;
    }

    tp = ngx_timeofday();
    now = ((double) tp->sec * 1000 + tp->msec) * 1000;

    hash = ngx_crc32_short(key->data, key->len);
    limit = plan->limits->elts;
    n = plan->limits->nelts;

    ngx_shmtx_lock(&cache->shpool->mutex);

    node = cache->sh->rl_rbtree.root;
    sentinel = cache->sh->rl_rbtree.sentinel;
    rn = NULL;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        rn = (ngx_oauth2_rl_node_t *) node;

        rc = ngx_memn2cmp(key->data, rn->key, key->len, (size_t) rn->len);

        if (rc == 0) {
            break;
        }

        rn = NULL;
        node = (rc < 0) ? node->left : node->right;
    }

    if (rn == NULL) {
        for (i = 0; i < 2; i++) {
            rn = ngx_slab_alloc_locked(cache->shpool,
                                       offsetof(ngx_oauth2_rl_node_t, key)
                                       + key->len);
            if (rn || ngx_queue_empty(&cache->sh->rl_queue)) {
                break;
            }

            q = ngx_queue_last(&cache->sh->rl_queue);
            ngx_queue_remove(q);
            rn = ngx_queue_data(q, ngx_oauth2_rl_node_t, queue);
            ngx_rbtree_delete(&cache->sh->rl_rbtree, &rn->node);
            ngx_slab_free_locked(cache->shpool, rn);
            rn = NULL;
        }

        if (rn == NULL) {
            ngx_shmtx_unlock(&cache->shpool->mutex);
            return NGX_DECLINED;
        }

        rn->node.key = hash;
        rn->len = (u_short) key->len;
        ngx_memcpy(rn->key, key->data, key->len);
        ngx_memzero(rn->tat, sizeof(rn->tat));

        ngx_rbtree_insert(&cache->sh->rl_rbtree, &rn->node);

    } else {
        ngx_queue_remove(&rn->queue);
    }

    ngx_queue_insert_head(&cache->sh->rl_queue, &rn->queue);

    best = 0;
    best_rem = -1;
    best_reset = 0;
    deny = n;
    retry = 0;
    deny_reset = 0;

    for (i = 0; i < n; i++) {
        t = (double) limit[i].period * 1000 / limit[i].count;
        tau = (double) limit[i].period * 1000 - t;
        tat = rn->tat[i] > now ? rn->tat[i] : now;
        wait = tat - now - tau;

        if (wait > 0) {
            if (deny == n || wait > retry) {
                retry = wait;
                deny = i;
                deny_reset = tat - now;
            }

            continue;
        }

        rem = (ngx_int_t) (-wait / t);
        next[i] = tat + t;

        if (best_rem < 0 || rem < best_rem) {
            best = i;
            best_rem = rem;
            best_reset = next[i] - now;
        }
    }

    if (deny < n) {
        rl->state = NGX_OAUTH2_RL_LIMITED;
        rl->limit = deny;
        rl->remaining = 0;
        rl->reset = (ngx_msec_t) ceil(deny_reset / 1000000);
        rl->retry = (ngx_msec_t) ceil(retry / 1000000);

    } else {
        for (i = 0; i < n; i++) {
            rn->tat[i] = next[i];
        }

        rl->state = NGX_OAUTH2_RL_ALLOWED;
        rl->limit = best;
        rl->remaining = best_rem;
        rl->reset = (ngx_msec_t) ceil(best_reset / 1000000);
        rl->retry = 0;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return NGX_OK;
}


static void
ngx_oauth2_rl_insert_value(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t     **p;
    ngx_oauth2_rl_node_t   *rn, *rt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            rn = (ngx_oauth2_rl_node_t *) node;
            rt = (ngx_oauth2_rl_node_t *) temp;

            p = (ngx_memn2cmp(rn->key, rt->key, rn->len, rt->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}
