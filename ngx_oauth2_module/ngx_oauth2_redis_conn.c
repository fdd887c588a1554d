
/*
 * ngx_oauth2_module: one connection to Redis (or to a Sentinel).
 *
 * The connection is nginx's own: ngx_event_connect_peer() connects
 * without blocking, nginx's SSL layer does TLS (as proxy_ssl_* does for
 * upstreams), nginx's read and write events drive it.  hiredis does the
 * RESP protocol only: redisFormatSdsCommandArgv() writes a command from its
 * arguments and their lengths, a redisReader reads replies.  Replies come
 * in the order the commands were sent; each goes to the call at the head
 * of the connection's queue.  A subscribed (Sentinel) connection also gets
 * messages nobody asked for: they go to the topology.
 *
 * A connection that fails is closed, every call waiting on it answered
 * with NULL at once, and tried again after a backoff (50 ms doubling up to
 * 1 s); while it is down, calls are not accepted, so that requests get
 * their 503 at once instead of waiting.
 */


#include "ngx_oauth2_redis.h"


/* queued bytes that leave at once: a few calls (a lookup is 225 bytes) */
#define NGX_OAUTH2_CONN_EARLY_WRITE  1024


static void ngx_oauth2_conn_connected(ngx_oauth2_conn_t *conn);
#if (NGX_HTTP_SSL)
static void ngx_oauth2_conn_ssl_handshake(ngx_connection_t *c);
static ngx_int_t ngx_oauth2_conn_ssl_verify(ngx_oauth2_conn_t *conn,
    ngx_connection_t *c);
static ngx_uint_t ngx_oauth2_conn_is_address(ngx_str_t *host);
#endif
static void ngx_oauth2_conn_read_handler(ngx_event_t *ev);
static void ngx_oauth2_conn_write_handler(ngx_event_t *ev);
static void ngx_oauth2_conn_flush(ngx_oauth2_conn_t *conn);
static void ngx_oauth2_conn_write_early(ngx_oauth2_conn_t *conn);
static void ngx_oauth2_conn_reply(ngx_oauth2_conn_t *conn, redisReply *rr);
static void ngx_oauth2_conn_timeout(ngx_event_t *ev);
static void ngx_oauth2_conn_reconnect(ngx_event_t *ev);
static ngx_int_t ngx_oauth2_conn_append(ngx_oauth2_conn_t *conn,
    u_char *data, size_t len);


void
ngx_oauth2_conn_init(ngx_oauth2_redis_t *rd, ngx_oauth2_conn_t *conn,
    ngx_uint_t kind, ngx_uint_t index)
{
    ngx_memzero(conn, sizeof(ngx_oauth2_conn_t));

    conn->redis = rd;
    conn->kind = kind;
    conn->index = index;
    conn->state = NGX_OAUTH2_CONN_DOWN;

    ngx_queue_init(&conn->calls);

    conn->timer.handler = ngx_oauth2_conn_timeout;
    conn->timer.data = conn;
    conn->timer.log = rd->log;
    conn->timer.cancelable = 1;

    conn->reconnect.handler = ngx_oauth2_conn_reconnect;
    conn->reconnect.data = conn;
    conn->reconnect.log = rd->log;
    conn->reconnect.cancelable = 1;
}


/* "redis 127.0.0.1:6379" or "sentinel 127.0.0.1:26379", for log lines */

u_char *
ngx_oauth2_conn_name(ngx_oauth2_conn_t *conn, u_char *buf, size_t len)
{
    u_char  *p;

    p = ngx_snprintf(buf, len - 1, "%s %V",
                     conn->kind == NGX_OAUTH2_CONN_SENTINEL ? "sentinel"
                                                            : "redis",
                     conn->endpoint.addr.name.len
                     ? &conn->endpoint.addr.name
                     : &conn->redis->conf->addr);
    *p = '\0';

    return buf;
}


/* connect to ep (copied: it may change while the connection lives) */

void
ngx_oauth2_conn_connect(ngx_oauth2_conn_t *conn, ngx_oauth2_endpoint_t *ep)
{
    u_char                    name[NGX_SOCKADDR_STRLEN + 16];
    u_char                    buf[NGX_MAX_ERROR_STR];
    ngx_err_t                 err;
    ngx_int_t                 rc;
    ngx_connection_t         *c;
    ngx_oauth2_redis_t       *rd;
    ngx_oauth2_redis_conf_t  *rcf;

    rd = conn->redis;
    rcf = rd->conf;

    if (rd->exiting) {
        return;
    }

    ngx_memcpy(conn->sockaddr, ep->addr.sockaddr, ep->addr.socklen);
    conn->endpoint.addr.sockaddr = (struct sockaddr *) conn->sockaddr;
    conn->endpoint.addr.socklen = ep->addr.socklen;
    conn->endpoint.addr.name.data = conn->text;
    conn->endpoint.addr.name.len = ngx_min(ep->addr.name.len,
                                           NGX_SOCKADDR_STRLEN);
    ngx_memcpy(conn->text, ep->addr.name.data, conn->endpoint.addr.name.len);

    if (conn->host_size < ep->host.len + 1) {
        conn->host = ngx_palloc(rd->pool, ep->host.len + 1);
        if (conn->host == NULL) {
            ngx_oauth2_conn_retry(conn, NGX_OAUTH2_BACKOFF_MAX);
            return;
        }

        conn->host_size = ep->host.len + 1;
    }

    ngx_memcpy(conn->host, ep->host.data, ep->host.len);
    conn->host[ep->host.len] = '\0';
    conn->endpoint.host.data = conn->host;
    conn->endpoint.host.len = ep->host.len;

    ngx_memzero(&conn->peer, sizeof(ngx_peer_connection_t));

    conn->peer.sockaddr = conn->endpoint.addr.sockaddr;
    conn->peer.socklen = conn->endpoint.addr.socklen;
    conn->peer.name = &conn->endpoint.addr.name;
    conn->peer.get = ngx_event_get_peer;
    conn->peer.log = rd->log;
    conn->peer.log_error = NGX_ERROR_ERR;

    if (conn->replies == NULL) {
        /* kept across connections: a reply lives as long as its handler */
        conn->replies = ngx_create_pool(NGX_OAUTH2_REPLY_POOL_SIZE, rd->log);
        if (conn->replies == NULL) {
            ngx_oauth2_conn_retry(conn, NGX_OAUTH2_BACKOFF_MAX);
            return;
        }
    }

    if (conn->reader == NULL) {
        conn->reader = ngx_oauth2_reader_create();
        if (conn->reader == NULL) {
            ngx_log_error(NGX_LOG_ALERT, rd->log, 0,
                          "oauth2: redisReaderCreate() failed");
            ngx_oauth2_conn_retry(conn, NGX_OAUTH2_BACKOFF_MAX);
            return;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rd->log, 0, "oauth2: connecting to %s",
                   ngx_oauth2_conn_name(conn, name, sizeof(name)));

    rc = ngx_event_connect_peer(&conn->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        err = ngx_socket_errno;
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "oauth2: cannot connect to %s: %s",
                      ngx_oauth2_conn_name(conn, name, sizeof(name)),
                      ngx_oauth2_conn_strerror(err, buf, sizeof(buf)));

        if (conn->peer.connection) {
            ngx_close_connection(conn->peer.connection);
            conn->peer.connection = NULL;
        }

        conn->failed = 1;
        ngx_oauth2_metrics_redis_close(conn, 1);
        ngx_oauth2_topology_lost(conn);
        return;
    }

    c = conn->peer.connection;
    c->data = conn;
    c->read->handler = ngx_oauth2_conn_read_handler;
    c->write->handler = ngx_oauth2_conn_write_handler;

    /* pipelined calls must not wait for the ACK of the previous write */

    if (conn->peer.sockaddr->sa_family != AF_UNIX
        && ngx_tcp_nodelay(c) != NGX_OK)
    {
        ngx_oauth2_conn_close(conn, "cannot set TCP_NODELAY", 1);
        return;
    }

    /* the connection's own: TLS allocates from it */

    c->pool = ngx_create_pool(1024, rd->log);
    if (c->pool == NULL) {
        ngx_oauth2_conn_close(conn, "out of memory", 1);
        return;
    }

    conn->state = NGX_OAUTH2_CONN_CONNECTING;
    conn->len = 0;
    conn->sent = 0;

    /* the set-up commands go first, before any call */

    if (ngx_oauth2_topology_setup(conn) != NGX_OK) {
        ngx_oauth2_conn_close(conn, "cannot queue its set-up", 1);
        return;
    }

    ngx_add_timer(&conn->timer, rcf->connect_timeout);

    if (rc == NGX_OK) {
        ngx_oauth2_conn_connected(conn);
    }

    /* NGX_AGAIN: the write event says when the connect is done */
}


/* TCP is up: TLS first, if configured, then the set-up commands */

static void
ngx_oauth2_conn_connected(ngx_oauth2_conn_t *conn)
{
    int                err;
    u_char             name[NGX_SOCKADDR_STRLEN + 16];
    u_char             buf[NGX_MAX_ERROR_STR];
    socklen_t          len;
    ngx_connection_t  *c;

    c = conn->peer.connection;

    if (conn->state == NGX_OAUTH2_CONN_CONNECTING) {

        /* did the non-blocking connect() succeed */

        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }

        if (err) {
            ngx_log_error(NGX_LOG_ERR, conn->redis->log, 0,
                          "oauth2: cannot connect to %s: %s",
                          ngx_oauth2_conn_name(conn, name, sizeof(name)),
                          ngx_oauth2_conn_strerror(err, buf, sizeof(buf)));
            ngx_oauth2_conn_close(conn, NULL, 1);
            return;
        }
    }

    conn->state = NGX_OAUTH2_CONN_SETUP;

    /* connected: TLS and the set-up's answers have handshake_timeout= */

    ngx_add_timer(&conn->timer, conn->redis->conf->handshake_timeout);

#if (NGX_HTTP_SSL)

    if (conn->redis->conf->ssl && c->ssl == NULL) {
        ngx_int_t                 rc;
        ngx_oauth2_redis_conf_t  *rcf;

        rcf = conn->redis->conf;

        if (ngx_ssl_create_connection(rcf->ssl_ctx, c,
                                      NGX_SSL_BUFFER|NGX_SSL_CLIENT)
            != NGX_OK)
        {
            ngx_oauth2_conn_close(conn, "cannot start TLS", 1);
            return;
        }

        /* no address as SNI (RFC 6066), bracketed or not, v4 or v6 */

        if (rcf->ssl_server_name && rcf->ssl_name.len == 0
            && conn->endpoint.host.len
            && !ngx_oauth2_conn_is_address(&conn->endpoint.host))
        {
            if (SSL_set_tlsext_host_name(c->ssl->connection,
                                         (char *) conn->endpoint.host.data)
                == 0)
            {
                ngx_ssl_error(NGX_LOG_ERR, c->log, 0,
                              "SSL_set_tlsext_host_name(\"%s\") failed",
                              conn->endpoint.host.data);
                ngx_oauth2_conn_close(conn, "cannot set its TLS name", 1);
                return;
            }

        } else if (rcf->ssl_server_name && rcf->ssl_name.len) {
            if (SSL_set_tlsext_host_name(c->ssl->connection,
                                         (char *) rcf->ssl_name.data)
                == 0)
            {
                ngx_ssl_error(NGX_LOG_ERR, c->log, 0,
                              "SSL_set_tlsext_host_name(\"%V\") failed",
                              &rcf->ssl_name);
                ngx_oauth2_conn_close(conn, "cannot set its TLS name", 1);
                return;
            }
        }

        c->log->action = "TLS handshaking to redis";

        rc = ngx_ssl_handshake(c);

        if (rc == NGX_AGAIN) {
            c->ssl->handler = ngx_oauth2_conn_ssl_handshake;
            return;
        }

        ngx_oauth2_conn_ssl_handshake(c);
        return;
    }

#endif

    c->log->action = NULL;

    ngx_oauth2_conn_flush(conn);
}


#if (NGX_HTTP_SSL)

static void
ngx_oauth2_conn_ssl_handshake(ngx_connection_t *c)
{
    ngx_oauth2_conn_t  *conn = c->data;

    c->log->action = NULL;

    if (!c->ssl->handshaked) {
        ngx_oauth2_conn_close(conn, c->write->timedout
                                    ? "TLS handshake timed out"
                                    : "TLS handshake failed", 1);
        return;
    }

    if (ngx_oauth2_conn_ssl_verify(conn, c) != NGX_OK) {
        ngx_oauth2_conn_close(conn, "its certificate does not verify", 1);
        return;
    }

    c->read->handler = ngx_oauth2_conn_read_handler;
    c->write->handler = ngx_oauth2_conn_write_handler;

    ngx_oauth2_conn_flush(conn);
}


/* an IPv4 address, or an IPv6 one with or without its brackets */

static ngx_uint_t
ngx_oauth2_conn_is_address(ngx_str_t *host)
{
    return ngx_inet_addr(host->data, host->len) != INADDR_NONE
           || (host->len && host->data[0] == '[')
           || ngx_strlchr(host->data, host->data + host->len, ':') != NULL;
}


/* the certificate chain and the name, as proxy_ssl_verify checks them */

static ngx_int_t
ngx_oauth2_conn_ssl_verify(ngx_oauth2_conn_t *conn, ngx_connection_t *c)
{
    long                      rc;
    u_char                    name[NGX_SOCKADDR_STRLEN + 16];
    u_char                    ip[NGX_SOCKADDR_STRLEN + 1], *p;
    size_t                    n;
    X509                     *cert;
    ngx_str_t                *host;
    ngx_oauth2_redis_conf_t  *rcf;

    rcf = conn->redis->conf;

    if (!rcf->ssl_verify) {
        return NGX_OK;
    }

    rc = SSL_get_verify_result(c->ssl->connection);

    if (rc != X509_V_OK) {
        ngx_log_error(NGX_LOG_ERR, conn->redis->log, 0,
                      "oauth2: the TLS certificate of %s does not verify: "
                      "(%l:%s)", ngx_oauth2_conn_name(conn, name, sizeof(name)),
                      rc, X509_verify_cert_error_string(rc));
        return NGX_ERROR;
    }

    host = rcf->ssl_name.len ? &rcf->ssl_name : &conn->endpoint.host;

    if (host->len == 0) {
        return NGX_OK;
    }

    /* an address is checked against the certificate's IP names */

    if (ngx_oauth2_conn_is_address(host)) {
        p = host->data;
        n = host->len;

        if (n > 2 && p[0] == '[' && p[n - 1] == ']') {
            p++;
            n -= 2;
        }

        rc = 0;

        if (n < sizeof(ip)) {
            ngx_cpystrn(ip, p, n + 1);

            cert = SSL_get_peer_certificate(c->ssl->connection);
            rc = cert ? X509_check_ip_asc(cert, (char *) ip, 0) : 0;
            X509_free(cert);
        }

        if (rc == 1) {
            return NGX_OK;
        }

    } else if (ngx_ssl_check_host(c, host) == NGX_OK) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ERR, conn->redis->log, 0,
                  "oauth2: the TLS certificate of %s does not match \"%V\"",
                  ngx_oauth2_conn_name(conn, name, sizeof(name)), host);

    return NGX_ERROR;
}

#endif


/*
 * Queues a call's command.  The bytes are written when the event loop
 * comes back to the connection (a posted write), so that the calls of
 * many requests leave in one write; but once NGX_OAUTH2_CONN_EARLY_WRITE
 * bytes wait, they leave at once, so that Redis runs the first calls
 * while the worker still reads the next requests instead of both taking
 * turns (docs/performance.md: 8-15 % more requests/s on the opaque path
 * than one write per loop, where 3 KB or more gained nothing and a write
 * per call cost more than it gained).
 */

ngx_int_t
ngx_oauth2_conn_send(ngx_oauth2_conn_t *conn, ngx_oauth2_redis_call_t *call,
    ngx_uint_t argc, const char **argv, size_t *lens)
{
    int   n;
    sds   cmd;

    /*
     * the sds flavour of hiredis's formatter: the same RESP bytes, its
     * lengths written by sdscatfmt() instead of libc's sprintf(), which
     * cost a quarter of the worker's instructions on the opaque path
     */

    cmd = NULL;
    n = redisFormatSdsCommandArgv(&cmd, (int) argc, argv, lens);

    if (n < 0 || cmd == NULL) {
        return NGX_ERROR;
    }

    if (ngx_oauth2_conn_append(conn, (u_char *) cmd, n) != NGX_OK) {
        sdsfree(cmd);
        return NGX_ERROR;
    }

    sdsfree(cmd);

    call->conn = conn;
    ngx_queue_insert_tail(&conn->calls, &call->queue);

    ngx_oauth2_metrics_redis_send(conn, call);

    if (conn->state == NGX_OAUTH2_CONN_READY
        && conn->len - conn->sent >= NGX_OAUTH2_CONN_EARLY_WRITE)
    {
        ngx_oauth2_conn_write_early(conn);
    }

    if (conn->state >= NGX_OAUTH2_CONN_SETUP && !conn->posted
        && conn->peer.connection)
    {
        conn->posted = 1;
        ngx_post_event(conn->peer.connection->write, &ngx_posted_events);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_oauth2_conn_append(ngx_oauth2_conn_t *conn, u_char *data, size_t len)
{
    u_char  *p;
    size_t   size;

    if (conn->sent && conn->sent == conn->len) {
        conn->sent = 0;
        conn->len = 0;
    }

    if (conn->len + len > conn->size) {

        if (conn->sent) {
            /* what was sent makes room first */
            ngx_memmove(conn->out, conn->out + conn->sent,
                        conn->len - conn->sent);
            conn->len -= conn->sent;
            conn->sent = 0;
        }

        if (conn->len + len > conn->size) {
            size = ngx_max(conn->size * 2, ngx_align(conn->len + len, 4096));

            p = ngx_alloc(size, conn->redis->log);
            if (p == NULL) {
                return NGX_ERROR;
            }

            if (conn->out) {
                ngx_memcpy(p, conn->out, conn->len);
                ngx_free(conn->out);
            }

            conn->out = p;
            conn->size = size;
        }
    }

    ngx_memcpy(conn->out + conn->len, data, len);
    conn->len += len;

    return NGX_OK;
}


static void
ngx_oauth2_conn_write_handler(ngx_event_t *wev)
{
    ngx_connection_t   *c;
    ngx_oauth2_conn_t  *conn;

    c = wev->data;
    conn = c->data;

    conn->posted = 0;

    if (wev->timedout) {
        /* only the connect and the handshake have write timers */
        ngx_oauth2_conn_close(conn, "timed out", 1);
        return;
    }

    if (conn->state == NGX_OAUTH2_CONN_CONNECTING) {
        ngx_oauth2_conn_connected(conn);
        return;
    }

    ngx_oauth2_conn_flush(conn);
}


/*
 * What can be written now, from inside a request's handler: an error is
 * left to the posted write (ngx_oauth2_conn_flush), which closes the
 * connection and fails its calls from the event loop, not under the
 * request that is queueing one.
 */

static void
ngx_oauth2_conn_write_early(ngx_oauth2_conn_t *conn)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = conn->peer.connection;

    while (conn->sent < conn->len) {

        n = c->send(c, conn->out + conn->sent, conn->len - conn->sent);

        if (n <= 0) {
            return;
        }

        conn->sent += n;
    }
}


static void
ngx_oauth2_conn_flush(ngx_oauth2_conn_t *conn)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = conn->peer.connection;

    while (conn->sent < conn->len) {

        n = c->send(c, conn->out + conn->sent, conn->len - conn->sent);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_oauth2_conn_close(conn, "could not be written to", 1);
            return;
        }

        conn->sent += n;
    }

    if (conn->sent == conn->len) {
        conn->sent = 0;
        conn->len = 0;
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        ngx_oauth2_conn_close(conn, "cannot be watched", 1);
        return;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_oauth2_conn_close(conn, "cannot be watched", 1);
    }
}


/* everything there is to read, every reply it completes, in order */

static void
ngx_oauth2_conn_read_handler(ngx_event_t *rev)
{
    u_char              buf[16384];
    void               *reply;
    ssize_t             n;
    ngx_connection_t   *c;
    ngx_oauth2_conn_t  *conn;

    c = rev->data;
    conn = c->data;

    if (conn->state == NGX_OAUTH2_CONN_CONNECTING) {
        ngx_oauth2_conn_connected(conn);
        return;
    }

    for ( ;; ) {

        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_oauth2_conn_close(conn, n == 0 ? "closed by the server"
                                               : "could not be read", 1);
            return;
        }

        if (redisReaderFeed(conn->reader, (char *) buf, n) != REDIS_OK) {
            ngx_oauth2_conn_close(conn, "out of memory", 1);
            return;
        }

        for ( ;; ) {
            reply = NULL;

            if (ngx_oauth2_reader_get_reply(conn->reader, conn->replies,
                                            &conn->objects, &reply)
                != REDIS_OK)
            {
                ngx_log_error(NGX_LOG_ERR, conn->redis->log, 0,
                              "oauth2: redis protocol error: %s",
                              conn->reader->errstr);
                ngx_oauth2_conn_close(conn, "sent what is not RESP", 1);
                return;
            }

            if (reply == NULL) {
                break;
            }

            ngx_oauth2_conn_reply(conn, reply);

            /* the reply handled (it may have closed the connection) */

            ngx_oauth2_reader_done(&conn->replies, conn->redis->log);
            conn->objects = 0;

            if (conn->state == NGX_OAUTH2_CONN_DOWN) {
                /* the reply closed it (READONLY, a failed set-up, ...) */
                return;
            }
        }

        /* what is left is a part of one reply: a few kilobytes at most */

        if (conn->reader->len - conn->reader->pos
            > NGX_OAUTH2_REPLY_MAX_BUFFER)
        {
            ngx_log_error(NGX_LOG_ERR, conn->redis->log, 0,
                          "oauth2: redis sent more than %d bytes of one "
                          "reply", NGX_OAUTH2_REPLY_MAX_BUFFER);
            ngx_oauth2_conn_close(conn, "sent a reply too long", 1);
            return;
        }
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_oauth2_conn_close(conn, "cannot be watched", 1);
    }
}


static void
ngx_oauth2_conn_reply(ngx_oauth2_conn_t *conn, redisReply *rr)
{
    ngx_queue_t              *q;
    ngx_oauth2_redis_call_t  *call;

    if (ngx_queue_empty(&conn->calls)) {

        if (conn->subscribed) {
            ngx_oauth2_topology_message(conn, rr);
            return;
        }

        ngx_oauth2_conn_close(conn, "sent a reply nobody asked for", 1);
        return;
    }

    if (conn->subscribed && rr->type == REDIS_REPLY_ARRAY
        && rr->elements == 3 && rr->element[0]->type == REDIS_REPLY_STRING
        && rr->element[0]->len == 7
        && ngx_strncmp(rr->element[0]->str, "message", 7) == 0)
    {
        ngx_oauth2_topology_message(conn, rr);
        return;
    }

    q = ngx_queue_head(&conn->calls);
    ngx_queue_remove(q);
    call = ngx_queue_data(q, ngx_oauth2_redis_call_t, queue);
    call->conn = NULL;

    ngx_oauth2_metrics_redis_reply(conn, call, rr);

    if (rr->type == REDIS_REPLY_ERROR
        && ((rr->len >= 8 && ngx_strncmp(rr->str, "READONLY", 8) == 0)
            || ngx_strnstr((u_char *) rr->str, "-READONLY ", rr->len)))
    {
        /*
         * a replica now: Sentinel (or an admin) moved the primary; Redis 6
         * wraps the error of a script's write as "ERR Error running script
         * ... -READONLY You can't write ..."
         */

        ngx_oauth2_redis_call_done(call, rr);
        ngx_oauth2_topology_readonly(conn);
        return;
    }

    ngx_oauth2_redis_call_done(call, rr);
}


/* the set-up commands were answered: calls may go */

void
ngx_oauth2_conn_ready(ngx_oauth2_conn_t *conn)
{
    u_char  name[NGX_SOCKADDR_STRLEN + 16];

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    if (conn->failed || conn->backoff) {
        ngx_log_error(NGX_LOG_NOTICE, conn->redis->log, 0,
                      "oauth2: connected to %s again",
                      ngx_oauth2_conn_name(conn, name, sizeof(name)));
    }

    ngx_oauth2_metrics_redis_ready(conn);

    conn->state = NGX_OAUTH2_CONN_READY;
    conn->failed = 0;
    conn->backoff = 0;
}


static void
ngx_oauth2_conn_timeout(ngx_event_t *ev)
{
    ngx_oauth2_conn_t  *conn = ev->data;

    u_char  name[NGX_SOCKADDR_STRLEN + 16];

    if (conn->state == NGX_OAUTH2_CONN_RESOLVING) {
        /* the resolver's own timer answers */
        return;
    }

    ngx_log_error(NGX_LOG_ERR, conn->redis->log, 0,
                  "oauth2: connecting to %s timed out%s",
                  ngx_oauth2_conn_name(conn, name, sizeof(name)),
                  conn->state == NGX_OAUTH2_CONN_SETUP
                  ? " (connected: no TLS handshake, or no answer to its "
                    "set-up, in handshake_timeout)" : "");

    ngx_oauth2_conn_close(conn, NULL, 1);
}


/* strerror() of a socket error, NUL-terminated, for "%s" */

u_char *
ngx_oauth2_conn_strerror(ngx_err_t err, u_char *buf, size_t len)
{
    u_char  *p;

    p = ngx_strerror(err, buf, len - 1);
    *p = '\0';

    return buf;
}


/*
 * Closes the connection: every call waiting on it is answered with NULL
 * (its request gets its 503 at once), the topology decides what next.
 * "failed": it was an error (logged), not a planned move.
 */

void
ngx_oauth2_conn_close(ngx_oauth2_conn_t *conn, const char *reason,
    ngx_uint_t failed)
{
    u_char                    name[NGX_SOCKADDR_STRLEN + 16];
    ngx_queue_t              *q, calls;
    ngx_connection_t         *c;
    ngx_oauth2_redis_call_t  *call;

    if (conn->state == NGX_OAUTH2_CONN_DOWN && conn->peer.connection == NULL)
    {
        return;
    }

    if (reason && failed && !conn->redis->exiting) {
        ngx_log_error(NGX_LOG_ERR, conn->redis->log, 0,
                      "oauth2: connection to %s %s: %s",
                      ngx_oauth2_conn_name(conn, name, sizeof(name)),
                      conn->state == NGX_OAUTH2_CONN_READY
                      ? "lost" : "failed", reason);
    }

    ngx_oauth2_metrics_redis_close(conn, failed);

    conn->was_ready = (conn->state == NGX_OAUTH2_CONN_READY);
    conn->state = NGX_OAUTH2_CONN_DOWN;
    conn->subscribed = 0;
    conn->posted = 0;
    conn->failed = failed;
    conn->setup = 0;

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    c = conn->peer.connection;
    conn->peer.connection = NULL;

    if (c) {
#if (NGX_HTTP_SSL)
        if (c->ssl) {
            c->ssl->no_wait_shutdown = 1;
            c->ssl->no_send_shutdown = 1;
            (void) ngx_ssl_shutdown(c);
        }
#endif
        if (c->pool) {
            ngx_destroy_pool(c->pool);
            c->pool = NULL;
        }

        ngx_close_connection(c);
    }

    if (conn->reader) {
        redisReaderFree(conn->reader);
        conn->reader = NULL;
    }

    conn->objects = 0;

    conn->len = 0;
    conn->sent = 0;

    /* answered after the state is down: a handler cannot send here again */

    ngx_queue_init(&calls);

    if (!ngx_queue_empty(&conn->calls)) {
        calls = conn->calls;
        calls.next->prev = &calls;
        calls.prev->next = &calls;
        ngx_queue_init(&conn->calls);
    }

    while (!ngx_queue_empty(&calls)) {
        q = ngx_queue_head(&calls);
        ngx_queue_remove(q);
        call = ngx_queue_data(q, ngx_oauth2_redis_call_t, queue);
        call->conn = NULL;

        ngx_oauth2_redis_call_done(call, NULL);
    }

    ngx_oauth2_topology_lost(conn);
}


/* tried again after "delay" ms, or after the backoff when delay is 0 */

void
ngx_oauth2_conn_retry(ngx_oauth2_conn_t *conn, ngx_msec_t delay)
{
    if (conn->redis->exiting || conn->reconnect.timer_set) {
        return;
    }

    if (delay == 0) {
        conn->backoff = conn->backoff ? ngx_min(conn->backoff * 2,
                                                NGX_OAUTH2_BACKOFF_MAX)
                                      : NGX_OAUTH2_BACKOFF_MIN;
        delay = conn->backoff;
    }

    ngx_add_timer(&conn->reconnect, delay);
}


static void
ngx_oauth2_conn_reconnect(ngx_event_t *ev)
{
    ngx_oauth2_conn_t  *conn = ev->data;

    if (conn->redis->exiting || conn->state != NGX_OAUTH2_CONN_DOWN) {
        return;
    }

    ngx_oauth2_topology_connect(conn);
}


/* the worker exits: no more reconnects, every call answered */

void
ngx_oauth2_conn_exit(ngx_oauth2_conn_t *conn)
{
    if (conn->reconnect.timer_set) {
        ngx_del_timer(&conn->reconnect);
    }

    if (conn->resolving) {
        ngx_resolve_name_done(conn->resolving);
        conn->resolving = NULL;
    }

    ngx_oauth2_conn_close(conn, "exiting", 0);

    if (conn->replies) {
        ngx_destroy_pool(conn->replies);
        conn->replies = NULL;
    }

    if (conn->out) {
        ngx_free(conn->out);
        conn->out = NULL;
        conn->size = 0;
    }
}


/*
 * The RESP reader: hiredis's, with its reply objects from a pool instead
 * of malloc() (hiredis's redisReplyObjectFunctions).  The caller resets
 * the pool once it has handled a reply, as it called freeReplyObject()
 * before.  The reader makes one reply at a time and returns it as soon as
 * it is whole, so a reset frees that reply and no part of the next; the
 * part of a reply left when its connection closes goes at the next reset.
 * Objects are made while ngx_oauth2_reader_get_reply() runs: from
 * ngx_oauth2_reply_pool, its pool.
 */

static ngx_pool_t  *ngx_oauth2_reply_pool;
static ngx_uint_t  *ngx_oauth2_reply_objects;


/*
 * An object, linked into its parent once it is whole, as hiredis's own
 * functions do; NULL when there is no memory (hiredis then stops, "out
 * of memory", and the connection is closed).
 */

static redisReply *
ngx_oauth2_reply_object(int type)
{
    redisReply  *r;

    /* nested arrays of 1024 each: a bound on the whole reply too */

    if (++*ngx_oauth2_reply_objects > NGX_OAUTH2_REPLY_MAX_OBJECTS) {
        ngx_log_error(NGX_LOG_ERR, ngx_oauth2_reply_pool->log, 0,
                      "oauth2: redis sent a reply of more than %d values",
                      NGX_OAUTH2_REPLY_MAX_OBJECTS);
        return NULL;
    }

    r = ngx_pcalloc(ngx_oauth2_reply_pool, sizeof(redisReply));
    if (r == NULL) {
        return NULL;
    }

    r->type = type;

    return r;
}


static void *
ngx_oauth2_reply_link(const redisReadTask *task, redisReply *r)
{
    redisReply  *parent;

    if (task->parent) {
        parent = task->parent->obj;
        parent->element[task->idx] = r;
    }

    return r;
}


static void *
ngx_oauth2_reply_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply  *r;

    r = ngx_oauth2_reply_object(task->type);
    if (r == NULL) {
        return NULL;
    }

    r->str = ngx_pnalloc(ngx_oauth2_reply_pool, len + 1);
    if (r->str == NULL) {
        return NULL;
    }

    ngx_memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;

    return ngx_oauth2_reply_link(task, r);
}


/*
 * No reply the module asks for has more than a few elements (a ROLE
 * names the replicas): an array announced with more is refused before
 * anything is allocated for it, so that a few bytes from a hostile
 * server cannot make the worker allocate gigabytes (hiredis itself takes
 * up to INT_MAX)
 */

static void *
ngx_oauth2_reply_array(const redisReadTask *task, int elements)
{
    redisReply  *r;

    if (elements > NGX_OAUTH2_REPLY_MAX_ELEMENTS) {
        ngx_log_error(NGX_LOG_ERR, ngx_oauth2_reply_pool->log, 0,
                      "oauth2: redis announced an array of %d elements, "
                      "more than %d", elements,
                      NGX_OAUTH2_REPLY_MAX_ELEMENTS);
        return NULL;
    }

    r = ngx_oauth2_reply_object(REDIS_REPLY_ARRAY);
    if (r == NULL) {
        return NULL;
    }

    if (elements > 0) {
        /* every element is set before the reply is returned */
        r->element = ngx_palloc(ngx_oauth2_reply_pool,
                                elements * sizeof(redisReply *));
        if (r->element == NULL) {
            return NULL;
        }
    }

    r->elements = elements;

    return ngx_oauth2_reply_link(task, r);
}


static void *
ngx_oauth2_reply_integer(const redisReadTask *task, long long value)
{
    redisReply  *r;

    r = ngx_oauth2_reply_object(REDIS_REPLY_INTEGER);
    if (r == NULL) {
        return NULL;
    }

    r->integer = value;

    return ngx_oauth2_reply_link(task, r);
}


static void *
ngx_oauth2_reply_nil(const redisReadTask *task)
{
    redisReply  *r;

    r = ngx_oauth2_reply_object(REDIS_REPLY_NIL);
    if (r == NULL) {
        return NULL;
    }

    return ngx_oauth2_reply_link(task, r);
}


static void
ngx_oauth2_reply_free(void *reply)
{
    /* the pool's: freed when it is reset */
}


static redisReplyObjectFunctions  ngx_oauth2_reply_functions = {
    ngx_oauth2_reply_string,
    ngx_oauth2_reply_array,
    ngx_oauth2_reply_integer,
    ngx_oauth2_reply_nil,
    ngx_oauth2_reply_free
};


redisReader *
ngx_oauth2_reader_create(void)
{
    return redisReaderCreateWithFunctions(&ngx_oauth2_reply_functions);
}


int
ngx_oauth2_reader_get_reply(redisReader *reader, ngx_pool_t *pool,
    ngx_uint_t *objects, void **reply)
{
    int  rc;

    ngx_oauth2_reply_pool = pool;
    ngx_oauth2_reply_objects = objects;

    rc = redisReaderGetReply(reader, reply);

    ngx_oauth2_reply_pool = NULL;
    ngx_oauth2_reply_objects = NULL;

    return rc;
}


/*
 * A reply handled: its objects go.  A reply that took more than the
 * pool's first block leaves the blocks it added in the pool until the
 * pool is destroyed: such a pool is made anew, so that one big reply does
 * not keep its memory for the worker's life.
 */

void
ngx_oauth2_reader_done(ngx_pool_t **pool, ngx_log_t *log)
{
    ngx_pool_t  *p;

    if ((*pool)->d.next == NULL) {
        ngx_reset_pool(*pool);
        return;
    }

    p = ngx_create_pool(NGX_OAUTH2_REPLY_POOL_SIZE, log);

    if (p == NULL) {
        ngx_reset_pool(*pool);
        return;
    }

    ngx_destroy_pool(*pool);
    *pool = p;
}
