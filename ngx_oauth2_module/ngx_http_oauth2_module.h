
/*
 * ngx_oauth2_module: OAuth 2.0 bearer token enforcement for nginx.
 *
 * Shared declarations: configuration and request context structures, and
 * the functions the files of the module call in one another.
 */


#ifndef _NGX_HTTP_OAUTH2_MODULE_H_INCLUDED_
#define _NGX_HTTP_OAUTH2_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_oauth2_gcra.h"


#define NGX_OAUTH2_DIGEST_LEN        32      /* SHA-256 */
#define NGX_OAUTH2_DEFAULT_MAX_TOKEN 4096

/* a value from outside in a log line: 64 bytes of it at most, escaped */
#define NGX_OAUTH2_ESCAPE_MAX        64
#define NGX_OAUTH2_ESCAPE_LEN        (4 * NGX_OAUTH2_ESCAPE_MAX + 3)

/* the grammars of ngx_oauth2_field_valid() */
#define NGX_OAUTH2_FIELD_IDENT       0       /* client_id, sub, ... */
#define NGX_OAUTH2_FIELD_SCOPE       1       /* scope-tokens and SP */
#define NGX_OAUTH2_FIELD_SCOPE_TOKEN 2
#define NGX_OAUTH2_FIELD_PLAN        3


/* what happened to a request: $oauth2_status and the response */
typedef enum {
    NGX_OAUTH2_PENDING = 0,
    NGX_OAUTH2_OK,
    NGX_OAUTH2_MISSING_TOKEN,
    NGX_OAUTH2_INVALID_TOKEN,
    NGX_OAUTH2_INVALID_REQUEST,
    NGX_OAUTH2_INSUFFICIENT_SCOPE,
    NGX_OAUTH2_CONSENT_INVALID,
    NGX_OAUTH2_RATE_LIMITED,
    NGX_OAUTH2_STORE_UNAVAILABLE,
    NGX_OAUTH2_INTERNAL_ERROR
} ngx_oauth2_outcome_e;


/* the error responses the module sends, one body per status */
typedef enum {
    NGX_OAUTH2_ERR_400 = 0,
    NGX_OAUTH2_ERR_401,
    NGX_OAUTH2_ERR_403,
    NGX_OAUTH2_ERR_429,
    NGX_OAUTH2_ERR_503,
    NGX_OAUTH2_ERR_LAST
} ngx_oauth2_err_e;


/* a token record, as the store (or the cache) returned it */
typedef struct {
    ngx_str_t                    name;       /* "token 1a2b3c" or "JWT" */
    ngx_str_t                    client_id;
    ngx_str_t                    scope;
    ngx_str_t                    plan;
    ngx_str_t                    consent_id;
    ngx_str_t                    sub;
    ngx_str_t                    consent_status;
    time_t                       expires;    /* absolute, 0: unknown */
    unsigned                     consent_valid:1;
    unsigned                     jwt:1;
} ngx_oauth2_record_t;


/* oauth2_plan NAME LIMIT ... */
struct ngx_oauth2_plan_s {
    ngx_str_t                    name;
    ngx_array_t                 *limits;         /* of ngx_oauth2_limit_t */
    ngx_str_t                    spec;           /* "N usec N usec" */
    ngx_str_t                   *args;           /* n, count, period.. */
    ngx_uint_t                   nargs;
    ngx_uint_t                   first;          /* of args, in */
};                                               /* plans_args */


#define NGX_OAUTH2_RL_FALLBACK_LOCAL  0
#define NGX_OAUTH2_RL_FALLBACK_ALLOW  1
#define NGX_OAUTH2_RL_FALLBACK_DENY   2


typedef struct ngx_oauth2_redis_s       ngx_oauth2_redis_t;
typedef struct ngx_oauth2_redis_call_s  ngx_oauth2_redis_call_t;
typedef struct ngx_oauth2_conn_s        ngx_oauth2_conn_t;
typedef struct ngx_oauth2_jwt_key_s     ngx_oauth2_jwt_key_t;
typedef struct ngx_oauth2_cache_s       ngx_oauth2_cache_t;
typedef struct ngx_oauth2_zone_s        ngx_oauth2_zone_t;
typedef ngx_oauth2_zone_t               ngx_oauth2_counters_t;
typedef struct ngx_oauth2_metrics_s     ngx_oauth2_metrics_t;
struct redisReply;                                /* hiredis */


#define NGX_OAUTH2_TOKEN_OPAQUE  0
#define NGX_OAUTH2_TOKEN_JWT     1
#define NGX_OAUTH2_TOKEN_AUTO    2


/* a Sentinel of oauth2_redis_sentinel */
typedef struct {
    ngx_str_t                    name;           /* as configured */
    ngx_addr_t                  *addrs;
    ngx_uint_t                   naddrs;
} ngx_oauth2_redis_server_t;


/* where Redis is and how to talk to it: the oauth2_redis* directives */
typedef struct {
    ngx_str_t                    addr;           /* as configured */
    ngx_str_t                    host;           /* name, address, path */
    in_port_t                    port;
    ngx_addr_t                  *addrs;          /* NULL: resolve at run */
    ngx_uint_t                   naddrs;         /* time (resolver) */
    ngx_str_t                    user;
    ngx_str_t                    password;
    ngx_int_t                    db;
    ngx_msec_t                   timeout;        /* of each command */
    ngx_msec_t                   connect_timeout;
    ngx_msec_t                   handshake_timeout;
    unsigned                     timeout_set:1;
    ngx_uint_t                   connections;    /* per worker */

    ngx_resolver_t              *resolver;
    ngx_msec_t                   resolver_timeout;

    ngx_flag_t                   ssl;
    ngx_flag_t                   ssl_verify;
    ngx_uint_t                   ssl_verify_depth;
    ngx_str_t                    ssl_trusted_certificate;
    ngx_str_t                    ssl_certificate;
    ngx_str_t                    ssl_certificate_key;
    ngx_str_t                    ssl_ciphers;
    ngx_uint_t                   ssl_protocols;
    ngx_str_t                    ssl_name;
    ngx_flag_t                   ssl_server_name;
#if (NGX_HTTP_SSL)
    ngx_ssl_t                   *ssl_ctx;
#endif

    ngx_array_t                 *sentinels;      /* redis_server_t */
    ngx_str_t                    master;         /* master=NAME */
    ngx_str_t                    sentinel_user;
    ngx_str_t                    sentinel_password;

    /* what an oauth2_redis URL says, checked against the directives */
    ngx_str_t                    url_user;
    ngx_str_t                    url_password;
    ngx_int_t                    url_db;         /* -1: none */
    unsigned                     url_ssl:1;      /* rediss:// */
    unsigned                     url_plain:1;    /* redis:// */
} ngx_oauth2_redis_conf_t;


typedef struct {
    ngx_oauth2_redis_conf_t      redis;
    ngx_str_t                    prefix;
    ngx_uint_t                   used;           /* a location uses Redis */
    ngx_uint_t                   redis_password_set;

    ngx_oauth2_cache_t          *cache;          /* oauth2_cache */
    ngx_oauth2_counters_t       *counters;       /* local rate limits */
    size_t                       counters_size;
    ngx_oauth2_zone_t           *leases;         /* rate-limit leases */

    ngx_array_t                 *plans;          /* of ngx_oauth2_plan_t */
    ngx_str_t                    default_plan_name;
    ngx_oauth2_plan_t           *default_plan;
    ngx_array_t                 *plans_args;     /* all, for the scripts */
    ngx_uint_t                   want_ttl;       /* the key's, of Redis */

    ngx_array_t                 *jwt_keys;       /* ngx_oauth2_jwt_key_t */

    ngx_oauth2_metrics_t        *metrics;        /* oauth2_metrics's zone */
    ngx_array_t                 *metrics_labels; /* of ngx_str_t */
} ngx_http_oauth2_main_conf_t;


/* an entry of a zone (ngx_oauth2_zone.c); its key's bytes follow it */
typedef struct {
    ngx_rbtree_node_t            node;
    ngx_queue_t                  queue;          /* least recently used */
    u_char                      *data;           /* the key */
    u_short                      len;
} ngx_oauth2_zone_node_t;


typedef struct {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  queue;
    ngx_uint_t                   entries;
    ngx_uint_t                   evicted;
    ngx_uint_t                   nomem;          /* no room, even so */
} ngx_oauth2_zone_sh_t;


/* an entry that may go before any other, not only when room is needed */
typedef ngx_uint_t (*ngx_oauth2_zone_stale_pt)(ngx_oauth2_zone_node_t *zn);

struct ngx_oauth2_zone_s {
    ngx_shm_zone_t              *shm_zone;
    ngx_oauth2_zone_sh_t        *sh;
    ngx_slab_pool_t             *shpool;
    char                        *directive;      /* for log lines */
    ngx_oauth2_zone_stale_pt     stale;
    void                        *data;           /* the zone user's */
};


/* what a worker keeps between requests (not configuration, not shared) */
typedef struct {
    ngx_oauth2_redis_t          *redis;
    ngx_array_t                 *warned_plans;   /* logged once */
    time_t                       fallback_logged;
} ngx_oauth2_worker_t;


typedef struct {
    ngx_flag_t                   enable;
    ngx_flag_t                   consent;
    ngx_array_t                 *scope_all;      /* of ngx_str_t */
    ngx_array_t                 *scope_any;      /* of ngx_str_t */
    ngx_str_t                    scope_required; /* for WWW-Authenticate */
    ngx_str_t                    realm;
    size_t                       max_token;
    ngx_str_t                    scope_all_arg;  /* space-separated */
    ngx_str_t                    scope_any_arg;
    ngx_flag_t                   rate_limit;
    ngx_uint_t                   rl_fallback;
    ngx_flag_t                   rl_headers;
    ngx_uint_t                   lease_max;      /* 0: no leases */
    ngx_msec_t                   lease_time;
    ngx_flag_t                   subrequests;
    ngx_flag_t                   dry_run;
    ngx_uint_t                   token_type;
    ngx_str_t                    jwt_issuer;
    ngx_array_t                 *jwt_audience;   /* of ngx_str_t */
    time_t                       jwt_leeway;
    ngx_str_t                    jwt_claim_client_id;
    ngx_str_t                    jwt_claim_scope;
    ngx_str_t                    jwt_claim_plan;
    ngx_str_t                    jwt_claim_consent_id;
    ngx_flag_t                   jwt_revocation;
    ngx_array_t                 *messages;       /* oauth2_error_message */
    ngx_str_t                   *bodies;         /* NGX_OAUTH2_ERR_LAST */
    ngx_uint_t                   metrics;        /* NGX_OAUTH2_METRICS_* */
    ngx_uint_t                   metrics_label;  /* 1 + its index, or 0 */
} ngx_http_oauth2_loc_conf_t;


/*
 * A call to Redis: the caller fills the first part and is answered
 * through "handler", once, with the reply or with NULL (timed out,
 * connection lost); the Redis layer owns the rest, the timer included.
 */

typedef void (*ngx_oauth2_redis_handler_pt)(ngx_oauth2_redis_call_t *call,
    struct redisReply *reply);

struct ngx_oauth2_redis_call_s {
    ngx_oauth2_redis_handler_pt  handler;        /* NULL: cancelled */
    void                        *data;
    ngx_log_t                   *log;
    const char                  *name;           /* for log lines */
    ngx_int_t                    script;         /* or NONE: a command */
    ngx_str_t                   *args;           /* KEYS and ARGV */
    ngx_uint_t                   nargs;
    ngx_uint_t                   nkeys;

    ngx_oauth2_redis_t          *redis;
    ngx_oauth2_conn_t           *conn;           /* waiting on it */
    ngx_event_t                  timer;
    ngx_queue_t                  queue;
    uint64_t                     sent;           /* usec, for metrics */
    unsigned                     evaled:1;
};


/* where the record came from, and what Redis is needed for */
#define NGX_OAUTH2_FROM_NONE         0
#define NGX_OAUTH2_FROM_CACHE        1
#define NGX_OAUTH2_FROM_JWT          2
#define NGX_OAUTH2_FROM_REDIS        3

#define NGX_OAUTH2_NEED_NONE         0
#define NGX_OAUTH2_NEED_VALIDATE     1   /* the record: 503 without it */
#define NGX_OAUTH2_NEED_COUNT        2   /* the rate limit: the fallback */


typedef struct {
    ngx_http_request_t          *request;
    ngx_oauth2_outcome_e         outcome;
    ngx_uint_t                   source;         /* NGX_OAUTH2_FROM_* */
    ngx_uint_t                   need;           /* NGX_OAUTH2_NEED_* */
    ngx_oauth2_record_t          record;
    u_char                       digest[NGX_OAUTH2_DIGEST_LEN];
    u_char                       name[sizeof("token 1a2b3c")];
    ngx_oauth2_rl_t              rl;
    ngx_oauth2_redis_call_t     *call;           /* while Redis answers */
    void                        *claims;         /* json_t, of a JWT */
    ngx_str_t                    jti;
    time_t                       now;            /* of every check */
    ngx_http_oauth2_loc_conf_t  *checked;        /* the last checks' */
    ngx_uint_t                   status;         /* refused with */
    ngx_uint_t                   uri_changes;    /* when refused */
    ngx_str_t                   *body;           /* the refusal's JSON */
    ngx_str_t                    lease_key;      /* leases: client, plan */
    ngx_uint_t                   lease_want;     /* permits asked, or 0 */
    ngx_uint_t                   lease_granted;  /* permits taken */
    int64_t                      lease_tat[NGX_OAUTH2_MAX_LIMITS];
    ngx_msec_t                   lease_sent;     /* ngx_current_msec */
    ngx_msec_t                   lease_inflight; /* its take's mark */
    ngx_msec_t                   lease_time;     /* time= */
    unsigned                     rl_headers:1;   /* added already */
    unsigned                     dry_logged:1;
    unsigned                     replace:1;      /* ours for nginx's page */
    unsigned                     replaced:1;
    unsigned                     counted:1;      /* in the metrics */
    unsigned                     lease_refill:1; /* the take in flight */
} ngx_http_oauth2_ctx_t;


#include "ngx_oauth2_script_ids.h"


extern ngx_module_t  ngx_http_oauth2_module;


/* ngx_http_oauth2_module.c */
extern ngx_oauth2_worker_t  ngx_oauth2_worker;

/* ngx_http_oauth2_handler.c */
ngx_int_t ngx_http_oauth2_access_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_oauth2_subrequest_handler(ngx_http_request_t *r);
ngx_http_oauth2_ctx_t *ngx_http_oauth2_get_ctx(ngx_http_request_t *r);

/* ngx_oauth2_token.c */
ngx_oauth2_outcome_e ngx_oauth2_token_extract(ngx_http_request_t *r,
    size_t max_len, ngx_str_t *token);
ngx_int_t ngx_oauth2_jwt_secret(ngx_conf_t *cf, char *directive,
    ngx_str_t *value, ngx_str_t *secret);
ngx_int_t ngx_oauth2_token_hash(ngx_str_t *token, u_char *digest);
void ngx_oauth2_token_hash_free(void);
void ngx_oauth2_jwt_free(void);

/* ngx_oauth2_record.c */
ngx_uint_t ngx_oauth2_field_valid(ngx_uint_t grammar, ngx_str_t *s);
ngx_int_t ngx_oauth2_record_gate(ngx_oauth2_record_t *rec, ngx_log_t *log);
void ngx_oauth2_record_consent(ngx_oauth2_record_t *rec);
ngx_int_t ngx_oauth2_record_exp(ngx_str_t *value, time_t *exp);
ngx_oauth2_outcome_e ngx_oauth2_record_check(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_oauth2_record_t *rec, time_t now);
ngx_int_t ngx_oauth2_scope_has(ngx_str_t *granted, ngx_str_t *scope);
size_t ngx_oauth2_escape(u_char *dst, ngx_str_t *src);
ngx_int_t ngx_oauth2_escape_pool(ngx_pool_t *pool, ngx_str_t *src,
    ngx_str_t *dst);
/* what a script's reply means; called by util/fuzz too */
ngx_oauth2_outcome_e ngx_oauth2_record_reply(ngx_http_oauth2_ctx_t *ctx,
    ngx_int_t script, struct redisReply *rr);
ngx_int_t ngx_oauth2_reply_lease(struct redisReply *rr, ngx_oauth2_rl_t *rl,
    ngx_uint_t nlimits, ngx_uint_t *granted, int64_t *tat);

/* ngx_oauth2_error.c */
ngx_int_t ngx_http_oauth2_error_bodies(ngx_conf_t *cf,
    ngx_http_oauth2_loc_conf_t *conf);
char *ngx_http_oauth2_error_message(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_oauth2_refuse(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_ctx_t *ctx);
ngx_int_t ngx_http_oauth2_filter_init(ngx_conf_t *cf);
ngx_str_t *ngx_oauth2_outcome_name(ngx_oauth2_outcome_e outcome);
ngx_int_t ngx_oauth2_add_header(ngx_http_request_t *r, char *name,
    ngx_str_t *value, ngx_table_elt_t **hp);

/* ngx_oauth2_redis.c */
char *ngx_http_oauth2_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_oauth2_sentinel_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_oauth2_redis_timeout_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_oauth2_redis_init_conf(ngx_conf_t *cf,
    ngx_http_oauth2_main_conf_t *omcf);
ngx_int_t ngx_oauth2_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_oauth2_main_conf_t *omcf);
void ngx_oauth2_redis_exit_worker(void);
ngx_oauth2_redis_call_t *ngx_oauth2_redis_call_create(void);
ngx_int_t ngx_oauth2_redis_send(ngx_oauth2_redis_call_t *call);
void ngx_oauth2_redis_cancel(ngx_oauth2_redis_call_t *call);

/* ngx_oauth2_ratelimit.c */
char *ngx_http_oauth2_plan_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_oauth2_ratelimit_init_main(ngx_conf_t *cf,
    ngx_http_oauth2_main_conf_t *omcf);
ngx_oauth2_plan_t *ngx_oauth2_ratelimit_plan(ngx_http_request_t *r,
    ngx_http_oauth2_main_conf_t *omcf, ngx_str_t *name);
ngx_int_t ngx_oauth2_ratelimit_local(ngx_http_request_t *r,
    ngx_http_oauth2_main_conf_t *omcf, ngx_http_oauth2_ctx_t *ctx);
ngx_int_t ngx_oauth2_ratelimit_headers(ngx_http_request_t *r,
    ngx_http_oauth2_ctx_t *ctx);

/* ngx_oauth2_lease.c */
void ngx_oauth2_lease_abandon(ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx);
char *ngx_http_oauth2_rate_limit_lease_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_oauth2_lease_init_conf(ngx_conf_t *cf,
    ngx_http_oauth2_main_conf_t *omcf, ngx_http_oauth2_loc_conf_t *olcf);
void ngx_oauth2_lease_init_worker(ngx_cycle_t *cycle,
    ngx_http_oauth2_main_conf_t *omcf);
ngx_int_t ngx_oauth2_lease_spend(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx);
ngx_int_t ngx_oauth2_lease_args(ngx_http_request_t *r,
    ngx_http_oauth2_main_conf_t *omcf, ngx_http_oauth2_ctx_t *ctx,
    ngx_oauth2_redis_call_t *call);
void ngx_oauth2_lease_taken(ngx_http_request_t *r,
    ngx_http_oauth2_main_conf_t *omcf, ngx_http_oauth2_ctx_t *ctx,
    ngx_oauth2_outcome_e outcome);

/* ngx_oauth2_counters.c */
char *ngx_http_oauth2_rate_limit_zone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_oauth2_counters_init_conf(ngx_conf_t *cf,
    ngx_http_oauth2_main_conf_t *omcf);
ngx_int_t ngx_oauth2_counters_gcra(ngx_oauth2_counters_t *counters,
    ngx_str_t *key, ngx_oauth2_plan_t *plan, ngx_oauth2_rl_t *rl);

/* ngx_oauth2_jwt.c */
char *ngx_http_oauth2_jwt_key_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_oauth2_jwt_is_compact(ngx_str_t *token);
ngx_int_t ngx_oauth2_jwt_claims(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_ctx_t *ctx,
    ngx_str_t *token);
ngx_oauth2_outcome_e ngx_oauth2_jwt_verify(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx, ngx_str_t *token);
ngx_int_t ngx_http_oauth2_jwt_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
char *ngx_http_oauth2_jwt_claim_variable_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);

/* ngx_oauth2_cache.c */
char *ngx_http_oauth2_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_oauth2_zone_t *ngx_oauth2_cache_zone(ngx_oauth2_cache_t *cache);
ngx_int_t ngx_oauth2_cache_get(ngx_oauth2_cache_t *cache, u_char *digest,
    ngx_pool_t *pool, ngx_oauth2_record_t *rec);
void ngx_oauth2_cache_put(ngx_oauth2_cache_t *cache, u_char *digest,
    ngx_oauth2_record_t *rec, ngx_log_t *log);

/* ngx_oauth2_zone.c */
ngx_oauth2_zone_t *ngx_oauth2_zone_add(ngx_conf_t *cf, ngx_str_t *name,
    size_t size, char *directive, ngx_oauth2_zone_stale_pt stale);
void ngx_oauth2_zone_lock(ngx_oauth2_zone_t *zone);
void ngx_oauth2_zone_unlock(ngx_oauth2_zone_t *zone);
void *ngx_oauth2_zone_lookup(ngx_oauth2_zone_t *zone, ngx_rbtree_key_t key,
    u_char *data, size_t len);
void *ngx_oauth2_zone_alloc(ngx_oauth2_zone_t *zone, size_t size,
    ngx_rbtree_key_t key, u_char *data, size_t len, ngx_log_t *log);
void ngx_oauth2_zone_free(ngx_oauth2_zone_t *zone, void *node);

/* ngx_oauth2_metrics.c: each a no-op without an oauth2_metrics location */
#define NGX_OAUTH2_METRICS_TEXT      1
#define NGX_OAUTH2_METRICS_JSON      2

char *ngx_http_oauth2_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_oauth2_metrics_label_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_oauth2_metrics_init_conf(ngx_conf_t *cf,
    ngx_http_oauth2_main_conf_t *omcf);
void ngx_oauth2_metrics_init_worker(ngx_http_oauth2_main_conf_t *omcf);
void ngx_oauth2_metrics_decision(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_ctx_t *ctx);
void ngx_oauth2_metrics_fallback(ngx_uint_t mode);
void ngx_oauth2_metrics_cache(ngx_uint_t hit);
void ngx_oauth2_metrics_jwt(ngx_str_t *alg, ngx_int_t rc);
void ngx_oauth2_metrics_redis_send(ngx_oauth2_conn_t *conn,
    ngx_oauth2_redis_call_t *call);
void ngx_oauth2_metrics_redis_reply(ngx_oauth2_conn_t *conn,
    ngx_oauth2_redis_call_t *call, struct redisReply *reply);
void ngx_oauth2_metrics_redis_timeout(void);
void ngx_oauth2_metrics_redis_ready(ngx_oauth2_conn_t *conn);
void ngx_oauth2_metrics_redis_close(ngx_oauth2_conn_t *conn,
    ngx_uint_t failed);


#endif /* _NGX_HTTP_OAUTH2_MODULE_H_INCLUDED_ */
