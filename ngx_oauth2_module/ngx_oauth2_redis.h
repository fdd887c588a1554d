
/*
 * ngx_oauth2_module: the Redis layer, inside.
 *
 * Three levels, one file each, each knowing only the one below:
 *
 *   ngx_oauth2_redis.c           calls: what a request (or the module)
 *                                asks, with its timer and the function
 *                                it is answered through; the scripts;
 *                                which connection a call goes to
 *   ngx_oauth2_redis_topology.c  where Redis is: one server (its name
 *                                resolved at run time with a resolver),
 *                                or the primary that Sentinel names
 *   ngx_oauth2_redis_conn.c      one connection: nginx's non-blocking
 *                                connect, nginx's TLS, the RESP protocol
 *                                (hiredis's reader and command format),
 *                                replies matched to calls in order
 *
 * Nothing here blocks, nothing here knows a request: a call is answered
 * through its handler, with a reply or NULL.
 */


#ifndef _NGX_OAUTH2_REDIS_H_INCLUDED_
#define _NGX_OAUTH2_REDIS_H_INCLUDED_


#include "ngx_http_oauth2_module.h"

#include <hiredis/hiredis.h>


#define NGX_OAUTH2_CONN_DOWN         0
#define NGX_OAUTH2_CONN_RESOLVING    1
#define NGX_OAUTH2_CONN_CONNECTING   2
#define NGX_OAUTH2_CONN_SETUP        3      /* AUTH, SELECT, ROLE, ... */
#define NGX_OAUTH2_CONN_READY        4

#define NGX_OAUTH2_CONN_DATA         0      /* the module's commands */
#define NGX_OAUTH2_CONN_SENTINEL     1      /* asks where the primary is */

#define NGX_OAUTH2_BACKOFF_MIN       50
#define NGX_OAUTH2_BACKOFF_MAX       1000


/* a script, as ngx_oauth2_scripts.h holds it */
typedef struct {
    char                        *text;
    size_t                       len;
    u_char                      *sha;            /* hex SHA-1 of text */
} ngx_oauth2_script_t;


/* an address to connect to, and the name TLS checks it against */
typedef struct {
    ngx_addr_t                   addr;
    ngx_str_t                    host;          /* for TLS; may be empty */
} ngx_oauth2_endpoint_t;


struct ngx_oauth2_conn_s {
    ngx_oauth2_redis_t          *redis;
    ngx_uint_t                   kind;           /* NGX_OAUTH2_CONN_* */
    ngx_uint_t                   index;
    ngx_uint_t                   state;
    ngx_peer_connection_t        peer;
    ngx_oauth2_endpoint_t        endpoint;
    u_char                       sockaddr[NGX_SOCKADDRLEN];
    u_char                       text[NGX_SOCKADDR_STRLEN];
    u_char                      *host;           /* endpoint.host's data */
    size_t                       host_size;
    redisReader                 *reader;
    ngx_pool_t                  *replies;        /* the reader's objects */
    ngx_uint_t                   objects;        /* of the reply read */

    /* the bytes to send: [out + sent, out + len) */
    u_char                      *out;
    size_t                       len;
    size_t                       sent;
    size_t                       size;

    ngx_queue_t                  calls;          /* waiting for replies */
    ngx_uint_t                   setup;          /* set-up replies left */

    ngx_event_t                  timer;          /* connect and set-up */
    ngx_event_t                  reconnect;
    ngx_msec_t                   backoff;
    ngx_resolver_ctx_t          *resolving;

    unsigned                     subscribed:1;
    unsigned                     failed:1;       /* the last try failed */
    unsigned                     was_ready:1;    /* when it was closed */
    unsigned                     posted:1;       /* a flush is posted */
    unsigned                     replica:1;      /* ROLE at next set-up */
};


struct ngx_oauth2_redis_s {
    ngx_http_oauth2_main_conf_t *omcf;
    ngx_oauth2_redis_conf_t     *conf;
    ngx_pool_t                  *pool;
    ngx_log_t                   *log;

    ngx_oauth2_conn_t           *conns;          /* the data connections */
    ngx_uint_t                   nconns;
    ngx_uint_t                   next;           /* round robin */

    ngx_queue_t                  free_calls;

    const char                 **argv;           /* a command's, as sent */
    size_t                      *lens;
    ngx_uint_t                   nargv;          /* room in both */

    /* topology */
    ngx_oauth2_endpoint_t        primary;        /* where data goes */
    u_char                       primary_sockaddr[NGX_SOCKADDRLEN];
    u_char                       primary_host[2 * NGX_SOCKADDR_STRLEN];
    ngx_uint_t                   primary_known;  /* Sentinel named it */
    ngx_uint_t                   next_addr;      /* of conf->addrs */
    ngx_oauth2_conn_t           *sentinel;
    ngx_uint_t                   next_sentinel;
    ngx_msec_t                   switched;       /* +switch-master, ms */
    ngx_msec_t                   asked;          /* the Sentinel, ms */

    unsigned                     exiting:1;
};


/* ngx_oauth2_redis.c */
ngx_oauth2_redis_call_t *ngx_oauth2_redis_call_get(ngx_oauth2_redis_t *rd);
void ngx_oauth2_redis_call_done(ngx_oauth2_redis_call_t *call,
    redisReply *reply);
void ngx_oauth2_redis_release(ngx_oauth2_redis_call_t *call);
ngx_int_t ngx_oauth2_redis_setup_calls(ngx_oauth2_conn_t *conn);

/* ngx_oauth2_redis_conn.c */
/* the replies' pool, and the most elements of an array in a reply */
#define NGX_OAUTH2_REPLY_POOL_SIZE     4096
#define NGX_OAUTH2_REPLY_MAX_ELEMENTS  1024
#define NGX_OAUTH2_REPLY_MAX_OBJECTS   16384     /* of one reply */
#define NGX_OAUTH2_REPLY_MAX_BUFFER    1048576   /* of a reply unread */

redisReader *ngx_oauth2_reader_create(void);
int ngx_oauth2_reader_get_reply(redisReader *reader, ngx_pool_t *pool,
    ngx_uint_t *objects, void **reply);
void ngx_oauth2_reader_done(ngx_pool_t **pool, ngx_log_t *log);
void ngx_oauth2_conn_init(ngx_oauth2_redis_t *rd, ngx_oauth2_conn_t *conn,
    ngx_uint_t kind, ngx_uint_t index);
void ngx_oauth2_conn_connect(ngx_oauth2_conn_t *conn,
    ngx_oauth2_endpoint_t *ep);
ngx_int_t ngx_oauth2_conn_send(ngx_oauth2_conn_t *conn,
    ngx_oauth2_redis_call_t *call, ngx_uint_t argc, const char **argv,
    size_t *lens);
void ngx_oauth2_conn_close(ngx_oauth2_conn_t *conn, const char *reason,
    ngx_uint_t failed);
void ngx_oauth2_conn_ready(ngx_oauth2_conn_t *conn);
void ngx_oauth2_conn_retry(ngx_oauth2_conn_t *conn, ngx_msec_t delay);
void ngx_oauth2_conn_exit(ngx_oauth2_conn_t *conn);
u_char *ngx_oauth2_conn_name(ngx_oauth2_conn_t *conn, u_char *buf,
    size_t len);
u_char *ngx_oauth2_conn_strerror(ngx_err_t err, u_char *buf, size_t len);

/* ngx_oauth2_redis_topology.c */
ngx_int_t ngx_oauth2_topology_init(ngx_oauth2_redis_t *rd);
void ngx_oauth2_topology_connect(ngx_oauth2_conn_t *conn);
void ngx_oauth2_topology_lost(ngx_oauth2_conn_t *conn);
void ngx_oauth2_topology_readonly(ngx_oauth2_conn_t *conn);
void ngx_oauth2_topology_message(ngx_oauth2_conn_t *conn, redisReply *rr);
ngx_int_t ngx_oauth2_topology_setup(ngx_oauth2_conn_t *conn);
void ngx_oauth2_topology_setup_reply(ngx_oauth2_redis_call_t *call,
    redisReply *rr);
void ngx_oauth2_topology_exit(ngx_oauth2_redis_t *rd);


#endif /* _NGX_OAUTH2_REDIS_H_INCLUDED_ */
