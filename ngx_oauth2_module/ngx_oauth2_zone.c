
/*
 * ngx_oauth2_module: a shared-memory zone of entries found by a key, as
 * ngx_http_limit_req_module keeps its own: a slab pool, an rbtree, a
 * least-recently-used queue, the slab pool's mutex.  The token cache
 * (ngx_oauth2_cache.c) and the local rate-limit counters
 * (ngx_oauth2_counters.c) are each a zone of their own: one store, one
 * eviction, one insert function for both.
 *
 * An entry starts with an ngx_oauth2_zone_node_t; its key's bytes follow
 * the entry.  The rbtree is ordered by node.key (a number the caller
 * derives from the key: the first bytes of a digest, a CRC), then by the
 * key's bytes.  Every function but ngx_oauth2_zone_lock() and _unlock()
 * expects the zone locked.
 */


#include "ngx_http_oauth2_module.h"


/* the most entries one insert evicts, the lock held */
#define NGX_OAUTH2_ZONE_EVICT_MAX  64


static ngx_int_t ngx_oauth2_zone_init(ngx_shm_zone_t *shm_zone, void *data);
static void ngx_oauth2_zone_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


/* a zone for "directive" (oauth2_cache, oauth2_rate_limit_zone) */

ngx_oauth2_zone_t *
ngx_oauth2_zone_add(ngx_conf_t *cf, ngx_str_t *name, size_t size,
    char *directive, ngx_oauth2_zone_stale_pt stale)
{
    ngx_oauth2_zone_t  *zone;

    if (size < 8 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" zone \"%V\" of %uz bytes is too small: "
                           "%uz bytes at least (8 memory pages)", directive,
                           name, size, 8 * ngx_pagesize);
        return NULL;
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_oauth2_zone_t));
    if (zone == NULL) {
        return NULL;
    }

    zone->directive = directive;
    zone->stale = stale;

    zone->shm_zone = ngx_shared_memory_add(cf, name, size,
                                           &ngx_http_oauth2_module);
    if (zone->shm_zone == NULL) {
        return NULL;
    }

    if (zone->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\": zone \"%V\" is already used",
                           directive, name);
        return NULL;
    }

    zone->shm_zone->init = ngx_oauth2_zone_init;
    zone->shm_zone->data = zone;

    return zone;
}


static ngx_int_t
ngx_oauth2_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_oauth2_zone_t  *ozone = data;

    size_t              len;
    ngx_oauth2_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {
        /* a reload: the entries stay */
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh = ngx_slab_alloc(zone->shpool, sizeof(ngx_oauth2_zone_sh_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    ngx_rbtree_init(&zone->sh->rbtree, &zone->sh->sentinel,
                    ngx_oauth2_zone_insert);
    ngx_queue_init(&zone->sh->queue);
    zone->sh->entries = 0;

    len = sizeof(" in  zone \"\"") + ngx_strlen(zone->directive)
          + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in %s zone \"%V\"%Z",
                zone->directive, &shm_zone->shm.name);

    zone->shpool->log_nomem = 0;

    return NGX_OK;
}


void
ngx_oauth2_zone_lock(ngx_oauth2_zone_t *zone)
{
    ngx_shmtx_lock(&zone->shpool->mutex);
}


void
ngx_oauth2_zone_unlock(ngx_oauth2_zone_t *zone)
{
    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* the entry with the key, made the most recently used; or NULL */

void *
ngx_oauth2_zone_lookup(ngx_oauth2_zone_t *zone, ngx_rbtree_key_t key,
    u_char *data, size_t len)
{
    ngx_int_t                rc;
    ngx_rbtree_node_t       *node, *sentinel;
    ngx_oauth2_zone_node_t  *zn;

    node = zone->sh->rbtree.root;
    sentinel = zone->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        zn = (ngx_oauth2_zone_node_t *) node;

        rc = ngx_memn2cmp(data, zn->data, len, zn->len);

        if (rc == 0) {
            ngx_queue_remove(&zn->queue);
            ngx_queue_insert_head(&zone->sh->queue, &zn->queue);
            return zn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * A new entry of "size" bytes (an ngx_oauth2_zone_node_t first) for the
 * key, which must not be in the zone.  Up to two stale entries at the end
 * of the queue are dropped first; when there is no room, the least
 * recently used entries make room, NGX_OAUTH2_ZONE_EVICT_MAX of them at
 * most: entries of another size free a slab page only once all of its
 * slots are free, and every worker waits on the lock meanwhile.  NULL
 * when nothing fits.
 */

void *
ngx_oauth2_zone_alloc(ngx_oauth2_zone_t *zone, size_t size,
    ngx_rbtree_key_t key, u_char *data, size_t len, ngx_log_t *log)
{
    ngx_uint_t               n, evicted;
    ngx_queue_t             *q;
    ngx_oauth2_zone_node_t  *zn;

    if (len > 0xffff) {
        return NULL;
    }

    for (n = 0; n < 2 && zone->stale && !ngx_queue_empty(&zone->sh->queue);
         n++)
    {
        q = ngx_queue_last(&zone->sh->queue);
        zn = ngx_queue_data(q, ngx_oauth2_zone_node_t, queue);

        if (!zone->stale(zn)) {
            break;
        }

        ngx_oauth2_zone_free(zone, zn);
    }

    evicted = 0;

    for ( ;; ) {
        zn = ngx_slab_alloc_locked(zone->shpool, size + len);

        if (zn) {
            break;
        }

        if (ngx_queue_empty(&zone->sh->queue)
            || evicted == NGX_OAUTH2_ZONE_EVICT_MAX)
        {
            zone->sh->evicted += evicted;
            zone->sh->nomem++;

            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "oauth2: no room in %s zone \"%V\" for an entry "
                          "of %uz bytes", zone->directive,
                          &zone->shm_zone->shm.name, size + len);
            return NULL;
        }

        q = ngx_queue_last(&zone->sh->queue);
        ngx_oauth2_zone_free(zone,
                             ngx_queue_data(q, ngx_oauth2_zone_node_t, queue));
        evicted++;
    }

    if (evicted) {
        zone->sh->evicted += evicted;

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                       "oauth2: %s zone full: %ui least recently used "
                       "entries evicted, %ui left", zone->directive, evicted,
                       zone->sh->entries);
    }

    zn->node.key = key;
    zn->data = (u_char *) zn + size;
    zn->len = (u_short) len;
    ngx_memcpy(zn->data, data, len);

    ngx_rbtree_insert(&zone->sh->rbtree, &zn->node);
    ngx_queue_insert_head(&zone->sh->queue, &zn->queue);
    zone->sh->entries++;

    return zn;
}


void
ngx_oauth2_zone_free(ngx_oauth2_zone_t *zone, void *node)
{
    ngx_oauth2_zone_node_t  *zn = node;

    ngx_queue_remove(&zn->queue);
    ngx_rbtree_delete(&zone->sh->rbtree, &zn->node);
    ngx_slab_free_locked(zone->shpool, zn);
    zone->sh->entries--;
}


/* ordered by node.key, then by the key's bytes */

static void
ngx_oauth2_zone_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t       **p;
    ngx_oauth2_zone_node_t   *zn, *zt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            zn = (ngx_oauth2_zone_node_t *) node;
            zt = (ngx_oauth2_zone_node_t *) temp;

            p = (ngx_memn2cmp(zn->data, zt->data, zn->len, zt->len) < 0)
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
