
/*
 * ngx_oauth2_module: where Redis is.
 *
 * One server (oauth2_redis): its addresses, known at configuration time,
 * are tried in turn; a name with a "resolver" in the http block is
 * resolved by nginx's resolver each time a connection is made (the
 * resolver keeps an answer for its TTL), so that a managed endpoint whose
 * address changes on failover is followed.
 *
 * Sentinel (oauth2_redis_sentinel): one connection to a Sentinel asks
 * where the primary is (SENTINEL get-master-addr-by-name) and stays
 * subscribed to +switch-master.  Data connections go to the primary it
 * names, and confirm it with ROLE before any call goes out: a replica is
 * never written to.  A failover message moves every data connection to
 * the new primary at once; a lost connection or a READONLY reply makes
 * the Sentinel connection ask again.
 */


#include "ngx_oauth2_redis.h"


static ngx_int_t ngx_oauth2_topology_command(ngx_oauth2_conn_t *conn,
    const char *name, ngx_oauth2_redis_handler_pt handler, ngx_uint_t argc,
    const char **argv, size_t *lens);
static void ngx_oauth2_topology_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_oauth2_topology_role(ngx_oauth2_redis_call_t *call,
    redisReply *rr);
static void ngx_oauth2_topology_master(ngx_oauth2_redis_call_t *call,
    redisReply *rr);
static void ngx_oauth2_topology_subscribed(ngx_oauth2_redis_call_t *call,
    redisReply *rr);
static ngx_int_t ngx_oauth2_topology_primary(ngx_oauth2_redis_t *rd,
    u_char *host, size_t hlen, u_char *port, size_t plen);
static void ngx_oauth2_topology_move(ngx_oauth2_redis_t *rd);
static void ngx_oauth2_topology_reask(ngx_oauth2_redis_t *rd);


ngx_int_t
ngx_oauth2_topology_init(ngx_oauth2_redis_t *rd)
{
    ngx_uint_t  i;

    if (rd->conf->sentinels) {
        rd->sentinel = ngx_palloc(rd->pool, sizeof(ngx_oauth2_conn_t));
        if (rd->sentinel == NULL) {
            return NGX_ERROR;
        }

        ngx_oauth2_conn_init(rd, rd->sentinel, NGX_OAUTH2_CONN_SENTINEL, 0);

        /* the data connections wait for the primary's address */

        ngx_oauth2_topology_connect(rd->sentinel);

        return NGX_OK;
    }

    for (i = 0; i < rd->nconns; i++) {
        ngx_oauth2_topology_connect(&rd->conns[i]);
    }

    return NGX_OK;
}


/* a connection is down and its time to try again has come */

void
ngx_oauth2_topology_connect(ngx_oauth2_conn_t *conn)
{
    ngx_uint_t                  n;
    ngx_resolver_ctx_t         *ctx;
    ngx_oauth2_endpoint_t       ep;
    ngx_oauth2_redis_t         *rd;
    ngx_oauth2_redis_conf_t    *rcf;
    ngx_oauth2_redis_server_t  *s;

    rd = conn->redis;
    rcf = rd->conf;

    if (rd->exiting) {
        return;
    }

    if (conn->kind == NGX_OAUTH2_CONN_SENTINEL) {
        s = rcf->sentinels->elts;
        s = &s[rd->next_sentinel % rcf->sentinels->nelts];

        ep.addr = s->addrs[0];
        ngx_str_null(&ep.host);

        if (rcf->ssl_name.len == 0) {
            /* the name as configured, without the port */
            ep.host = s->name;
            n = ep.host.len;

            while (n && ep.host.data[n - 1] >= '0'
                   && ep.host.data[n - 1] <= '9')
            {
                n--;
            }

            if (n && n < ep.host.len && ep.host.data[n - 1] == ':') {
                ep.host.len = n - 1;
            }
        }

        ngx_oauth2_conn_connect(conn, &ep);
        return;
    }

    if (rcf->sentinels) {
        if (!rd->primary_known) {
            /* the Sentinel connection connects us once it knows */
            return;
        }

        ngx_oauth2_conn_connect(conn, &rd->primary);
        return;
    }

    ep.host = rcf->host;

    if (rcf->addrs) {
        ep.addr = rcf->addrs[rd->next_addr % rcf->naddrs];
        ngx_oauth2_conn_connect(conn, &ep);
        return;
    }

    /* a name, resolved now by nginx's resolver (it caches the answer) */

    ctx = ngx_resolve_start(rcf->resolver, NULL);

    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "oauth2: cannot resolve redis host \"%V\"%s",
                      &rcf->host, ctx ? ": no resolver defined" : "");
        conn->failed = 1;
        ngx_oauth2_conn_retry(conn, 0);
        return;
    }

    ctx->name = rcf->host;
    ctx->handler = ngx_oauth2_topology_resolved;
    ctx->data = conn;
    ctx->timeout = rcf->resolver_timeout;
    ctx->cancelable = 1;       /* a graceful exit need not wait for it */

    conn->state = NGX_OAUTH2_CONN_RESOLVING;
    conn->resolving = ctx;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        conn->resolving = NULL;
        conn->state = NGX_OAUTH2_CONN_DOWN;
        conn->failed = 1;
        ngx_oauth2_conn_retry(conn, 0);
    }
}


static void
ngx_oauth2_topology_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_oauth2_conn_t *conn = ctx->data;

    u_char                    text[NGX_SOCKADDR_STRLEN];
    u_char                    sa[NGX_SOCKADDRLEN];
    ngx_uint_t                n;
    ngx_oauth2_endpoint_t     ep;
    ngx_oauth2_redis_t       *rd;
    ngx_oauth2_redis_conf_t  *rcf;

    rd = conn->redis;
    rcf = rd->conf;
    conn->resolving = NULL;
    conn->state = NGX_OAUTH2_CONN_DOWN;

    if (ctx->state || ctx->naddrs == 0) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "oauth2: redis host \"%V\" could not be resolved "
                      "(%i: %s)", &ctx->name, ctx->state,
                      ngx_resolver_strerror(ctx->state));
        ngx_resolve_name_done(ctx);
        conn->failed = 1;
        ngx_oauth2_conn_retry(conn, 0);
        return;
    }

    n = rd->next_addr % ctx->naddrs;

    ngx_memcpy(sa, ctx->addrs[n].sockaddr, ctx->addrs[n].socklen);
    ep.addr.sockaddr = (struct sockaddr *) sa;
    ep.addr.socklen = ctx->addrs[n].socklen;
    ngx_inet_set_port(ep.addr.sockaddr, rcf->port);

    ep.addr.name.data = text;
    ep.addr.name.len = ngx_sock_ntop(ep.addr.sockaddr, ep.addr.socklen,
                                     text, NGX_SOCKADDR_STRLEN, 1);
    ep.host = rcf->host;

    ngx_resolve_name_done(ctx);

    ngx_oauth2_conn_connect(conn, &ep);
}


/* the commands a new connection sends before any call */

ngx_int_t
ngx_oauth2_topology_setup(ngx_oauth2_conn_t *conn)
{
    u_char                    db[NGX_INT_T_LEN];
    size_t                    lens[3];
    ngx_str_t                *user, *password;
    ngx_uint_t                n;
    const char               *argv[3];
    ngx_oauth2_redis_conf_t  *rcf;

    rcf = conn->redis->conf;
    conn->setup = 0;

    if (conn->kind == NGX_OAUTH2_CONN_SENTINEL) {
        user = &rcf->sentinel_user;
        password = &rcf->sentinel_password;

    } else {
        user = &rcf->user;
        password = &rcf->password;
    }

    if (password->len) {
        n = 0;
        argv[n] = "AUTH";
        lens[n++] = 4;

        if (user->len) {
            argv[n] = (const char *) user->data;
            lens[n++] = user->len;
        }

        argv[n] = (const char *) password->data;
        lens[n++] = password->len;

        if (ngx_oauth2_topology_command(conn,
                                        conn->kind == NGX_OAUTH2_CONN_SENTINEL
                                        ? "oauth2_redis_sentinel's password"
                                        : rcf->url_password.len
                                          ? "the password of the "
                                            "oauth2_redis URL"
                                          : "oauth2_redis_password",
                                        ngx_oauth2_topology_setup_reply,
                                        n, argv, lens)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (conn->kind == NGX_OAUTH2_CONN_SENTINEL) {
        argv[0] = "SENTINEL";
        lens[0] = 8;
        argv[1] = "get-master-addr-by-name";
        lens[1] = 23;
        argv[2] = (const char *) rcf->master.data;
        lens[2] = rcf->master.len;

        if (ngx_oauth2_topology_command(conn, "SENTINEL get-master-addr-"
                                        "by-name",
                                        ngx_oauth2_topology_master,
                                        3, argv, lens)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        argv[0] = "SUBSCRIBE";
        lens[0] = 9;
        argv[1] = "+switch-master";
        lens[1] = 14;

        return ngx_oauth2_topology_command(conn, "SUBSCRIBE",
                                           ngx_oauth2_topology_subscribed,
                                           2, argv, lens);
    }

    if (rcf->db) {
        argv[0] = "SELECT";
        lens[0] = 6;
        argv[1] = (const char *) db;
        lens[1] = ngx_sprintf(db, "%i", rcf->db) - db;

        if (ngx_oauth2_topology_command(conn, "oauth2_redis_db",
                                        ngx_oauth2_topology_setup_reply,
                                        2, argv, lens)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /*
     * with Sentinel always; with one server after it answered READONLY,
     * so that a replica fails the set-up (and the backoff grows) instead
     * of being connected to again and again
     */

    if (rcf->sentinels || conn->replica) {
        argv[0] = "ROLE";
        lens[0] = 4;

        if (ngx_oauth2_topology_command(conn, "ROLE",
                                        ngx_oauth2_topology_role,
                                        1, argv, lens)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_oauth2_redis_setup_calls(conn);
}


static ngx_int_t
ngx_oauth2_topology_command(ngx_oauth2_conn_t *conn, const char *name,
    ngx_oauth2_redis_handler_pt handler, ngx_uint_t argc, const char **argv,
    size_t *lens)
{
    ngx_oauth2_redis_call_t  *call;

    call = ngx_oauth2_redis_call_get(conn->redis);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->handler = handler;
    call->data = conn;
    call->name = name;

    if (ngx_oauth2_conn_send(conn, call, argc, argv, lens) != NGX_OK) {
        ngx_oauth2_redis_release(call);
        return NGX_ERROR;
    }

    conn->setup++;

    return NGX_OK;
}


/* the reply to a set-up command: the last one makes the connection ready */

void
ngx_oauth2_topology_setup_reply(ngx_oauth2_redis_call_t *call,
    redisReply *rr)
{
    ngx_oauth2_conn_t *conn = call->data;

    u_char     name[NGX_SOCKADDR_STRLEN + 16];
    ngx_str_t  s, esc;
    u_char     buf[NGX_OAUTH2_ESCAPE_LEN];

    if (rr == NULL) {
        /* the connection is closing; it says why */
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        s.data = (u_char *) rr->str;
        s.len = rr->len;
        esc.data = buf;
        esc.len = ngx_oauth2_escape(buf, &s);

        ngx_log_error(NGX_LOG_ERR, conn->redis->log, 0,
                      "oauth2: %s refused %s: %V",
                      ngx_oauth2_conn_name(conn, name, sizeof(name)),
                      call->name ? call->name : "SCRIPT LOAD", &esc);

        ngx_oauth2_conn_close(conn, "its set-up was refused", 1);
        return;
    }

    if (conn->setup && --conn->setup == 0) {
        ngx_oauth2_conn_ready(conn);
    }
}


/* ROLE: only a primary takes the module's commands */

static void
ngx_oauth2_topology_role(ngx_oauth2_redis_call_t *call, redisReply *rr)
{
    ngx_oauth2_conn_t *conn = call->data;

    u_char      name[NGX_SOCKADDR_STRLEN + 16];
    ngx_str_t   role;

    if (rr == NULL) {
        return;
    }

    if (rr->type == REDIS_REPLY_ARRAY && rr->elements
        && rr->element[0]->type == REDIS_REPLY_STRING
        && rr->element[0]->len == 6
        && ngx_strncmp(rr->element[0]->str, "master", 6) == 0)
    {
        conn->replica = 0;
        ngx_oauth2_topology_setup_reply(call, rr);
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_oauth2_topology_setup_reply(call, rr);
        return;
    }

    ngx_str_set(&role, "?");

    if (rr->type == REDIS_REPLY_ARRAY && rr->elements
        && rr->element[0]->type == REDIS_REPLY_STRING
        && rr->element[0]->len < 16)
    {
        role.data = (u_char *) rr->element[0]->str;
        role.len = rr->element[0]->len;
    }

    ngx_log_error(NGX_LOG_ERR, conn->redis->log, 0,
                  "oauth2: %s is not the primary (ROLE \"%V\"), %s",
                  ngx_oauth2_conn_name(conn, name, sizeof(name)), &role,
                  conn->redis->conf->sentinels ? "asking Sentinel again"
                                               : "trying again later");

    ngx_oauth2_conn_close(conn, "not the primary", 1);
}


/* SENTINEL get-master-addr-by-name: {host, port} or nil */

static void
ngx_oauth2_topology_master(ngx_oauth2_redis_call_t *call, redisReply *rr)
{
    ngx_oauth2_conn_t *conn = call->data;

    u_char               name[NGX_SOCKADDR_STRLEN + 16];
    ngx_oauth2_redis_t  *rd;

    rd = conn->redis;

    if (rr == NULL) {
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        /* e.g. NOAUTH: said as a refusal, with the Sentinel's words */
        ngx_oauth2_topology_setup_reply(call, rr);
        return;
    }

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 2
        || rr->element[0]->type != REDIS_REPLY_STRING
        || rr->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "oauth2: %s does not name a primary for master "
                      "\"%V\"", ngx_oauth2_conn_name(conn, name, sizeof(name)),
                      &rd->conf->master);
        ngx_oauth2_conn_close(conn, "no primary", 1);
        return;
    }

    if (ngx_oauth2_topology_primary(rd, (u_char *) rr->element[0]->str,
                                    rr->element[0]->len,
                                    (u_char *) rr->element[1]->str,
                                    rr->element[1]->len)
        != NGX_OK)
    {
        ngx_oauth2_conn_close(conn, "an address that is not one", 1);
        return;
    }

    ngx_oauth2_topology_setup_reply(call, rr);
}


static void
ngx_oauth2_topology_subscribed(ngx_oauth2_redis_call_t *call,
    redisReply *rr)
{
    ngx_oauth2_conn_t *conn = call->data;

    if (rr && rr->type == REDIS_REPLY_ARRAY) {
        conn->subscribed = 1;
    }

    ngx_oauth2_topology_setup_reply(call, rr);
}


/* a message on the Sentinel connection: +switch-master */

void
ngx_oauth2_topology_message(ngx_oauth2_conn_t *conn, redisReply *rr)
{
    u_char              *p, *end, *f[5];
    size_t               len[5];
    ngx_uint_t           n;
    ngx_oauth2_redis_t  *rd;

    rd = conn->redis;

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 3
        || rr->element[2]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    /* "<master name> <old ip> <old port> <new ip> <new port>" */

    p = (u_char *) rr->element[2]->str;
    end = p + rr->element[2]->len;

    for (n = 0; n < 5 && p < end; n++) {
        f[n] = p;

        while (p < end && *p != ' ') {
            p++;
        }

        len[n] = p - f[n];

        while (p < end && *p == ' ') {
            p++;
        }
    }

    if (n != 5 || len[0] != rd->conf->master.len
        || ngx_strncmp(f[0], rd->conf->master.data, len[0]) != 0)
    {
        return;
    }

    rd->switched = ngx_current_msec;

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "oauth2: Sentinel moved the primary of \"%V\" from "
                  "%*s:%*s to %*s:%*s", &rd->conf->master,
                  len[1], f[1], len[2], f[2], len[3], f[3], len[4], f[4]);

    if (ngx_oauth2_topology_primary(rd, f[3], len[3], f[4], len[4])
        != NGX_OK)
    {
        ngx_oauth2_topology_reask(rd);
    }
}


/* the primary Sentinel named: data connections go there */

static ngx_int_t
ngx_oauth2_topology_primary(ngx_oauth2_redis_t *rd, u_char *host,
    size_t hlen, u_char *port, size_t plen)
{
    ngx_int_t    p, rc;
    ngx_addr_t   addr;
    ngx_pool_t  *pool;

    p = ngx_atoi(port, plen);

    /*
     * the address is parsed in a pool of its own, gone when it is copied:
     * the worker's pool would grow with every answer of a Sentinel
     */

    pool = ngx_create_pool(256, rd->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (p < 1 || p > 65535 || hlen == 0 || hlen >= NGX_SOCKADDR_STRLEN
        || ngx_parse_addr(pool, &addr, host, hlen) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "oauth2: Sentinel named the primary \"%*s:%*s\", "
                      "which is not an address", hlen, host, plen, port);
        goto done;
    }

    ngx_inet_set_port(addr.sockaddr, (in_port_t) p);

    if (rd->primary_known
        && rd->primary.addr.socklen == addr.socklen
        && ngx_cmp_sockaddr(rd->primary.addr.sockaddr,
                            rd->primary.addr.socklen,
                            addr.sockaddr, addr.socklen, 1)
           == NGX_OK)
    {
        /* the same: connections that are down keep their backoff */
        rc = NGX_OK;
        goto done;
    }

    /* the address without the port (for TLS), then with it (for logs) */

    ngx_memcpy(rd->primary_sockaddr, addr.sockaddr, addr.socklen);
    rd->primary.addr.sockaddr = (struct sockaddr *) rd->primary_sockaddr;
    rd->primary.addr.socklen = addr.socklen;

    rd->primary.host.data = rd->primary_host;
    rd->primary.host.len = ngx_sock_ntop(addr.sockaddr, addr.socklen,
                                         rd->primary_host,
                                         NGX_SOCKADDR_STRLEN, 0);

    rd->primary.addr.name.data = rd->primary_host + rd->primary.host.len;
    rd->primary.addr.name.len = ngx_sock_ntop(addr.sockaddr, addr.socklen,
                                              rd->primary.addr.name.data,
                                              sizeof(rd->primary_host)
                                              - rd->primary.host.len, 1);

    if (rd->primary_known) {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "oauth2: the primary of \"%V\" is now %V",
                      &rd->conf->master, &rd->primary.addr.name);
    }

    rd->primary_known = 1;

    ngx_destroy_pool(pool);

    ngx_oauth2_topology_move(rd);

    return NGX_OK;

done:

    ngx_destroy_pool(pool);

    return rc;
}


/* every data connection to the primary: now */

static void
ngx_oauth2_topology_move(ngx_oauth2_redis_t *rd)
{
    ngx_uint_t          i;
    ngx_oauth2_conn_t  *conn;

    for (i = 0; i < rd->nconns; i++) {
        conn = &rd->conns[i];

        if (conn->state != NGX_OAUTH2_CONN_DOWN
            && conn->peer.sockaddr
            && ngx_cmp_sockaddr(conn->peer.sockaddr, conn->peer.socklen,
                                rd->primary.addr.sockaddr,
                                rd->primary.addr.socklen, 1)
               == NGX_OK)
        {
            continue;
        }

        if (conn->state != NGX_OAUTH2_CONN_DOWN) {
            /* planned: the calls on it get NULL, it reconnects at once */
            ngx_oauth2_conn_close(conn, "moved", 0);
            continue;
        }

        if (conn->reconnect.timer_set) {
            ngx_del_timer(&conn->reconnect);
        }

        conn->backoff = 0;
        ngx_oauth2_topology_connect(conn);
    }
}


/*
 * A connection is closed (or could not be made): when to try again.  A
 * data connection that was up, or was moved, tries at once; one that
 * failed waits the backoff, on the next address.  With Sentinel, a data
 * connection that failed makes the Sentinel connection ask again.
 */

void
ngx_oauth2_topology_lost(ngx_oauth2_conn_t *conn)
{
    ngx_oauth2_redis_t  *rd;

    rd = conn->redis;

    if (rd->exiting) {
        return;
    }

    if (conn->kind == NGX_OAUTH2_CONN_SENTINEL) {
        if (conn->failed) {
            rd->next_sentinel++;
        }

        ngx_oauth2_conn_retry(conn, conn->failed && !conn->was_ready
                                    ? 0 : 1);
        return;
    }

    if (!conn->failed) {
        ngx_oauth2_conn_retry(conn, 1);
        return;
    }

    if (rd->conf->sentinels) {
        ngx_oauth2_topology_reask(rd);

    } else if (!conn->was_ready) {
        rd->next_addr++;
    }

    ngx_oauth2_conn_retry(conn, conn->was_ready ? 1 : 0);
}


/* a READONLY reply: the server is a replica now */

void
ngx_oauth2_topology_readonly(ngx_oauth2_conn_t *conn)
{
    u_char  name[NGX_SOCKADDR_STRLEN + 16];

    ngx_log_error(NGX_LOG_ERR, conn->redis->log, 0,
                  "oauth2: %s answered READONLY: it is a replica now",
                  ngx_oauth2_conn_name(conn, name, sizeof(name)));

    conn->replica = 1;
    ngx_oauth2_conn_close(conn, "READONLY", 1);
}


/* the Sentinel connection asks again, once, unless it is asking already */

static void
ngx_oauth2_topology_reask(ngx_oauth2_redis_t *rd)
{
    if (rd->sentinel == NULL
        || rd->sentinel->state != NGX_OAUTH2_CONN_READY
        || ngx_current_msec - rd->asked < NGX_OAUTH2_BACKOFF_MAX)
    {
        return;
    }

    rd->asked = ngx_current_msec;

    ngx_oauth2_conn_close(rd->sentinel, "asking again", 0);
}


void
ngx_oauth2_topology_exit(ngx_oauth2_redis_t *rd)
{
    if (rd->sentinel) {
        ngx_oauth2_conn_exit(rd->sentinel);
    }
}
