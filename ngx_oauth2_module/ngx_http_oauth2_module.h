
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


#define NGX_OAUTH2_TOKEN_HASH_LEN    64      /* hex SHA-256 */
#define NGX_OAUTH2_DEFAULT_MAX_TOKEN 4096
#define NGX_OAUTH2_MAX_LIMITS        8       /* per plan */

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


/* one limit of a plan: count requests per period */
typedef struct {
    ngx_uint_t                   count;
    ngx_msec_t                   period;
} ngx_oauth2_limit_t;


/* oauth2_plan NAME LIMIT ... */
typedef struct {
    ngx_str_t                    name;
    ngx_array_t                 *limits;         /* of ngx_oauth2_limit_t */
    ngx_str_t                    spec;           /* "N usec N usec" */
} ngx_oauth2_plan_t;


#define NGX_OAUTH2_RL_NONE       0
#define NGX_OAUTH2_RL_ALLOWED    1
#define NGX_OAUTH2_RL_LIMITED    2

#define NGX_OAUTH2_RL_FALLBACK_LOCAL  0
#define NGX_OAUTH2_RL_FALLBACK_ALLOW  1
#define NGX_OAUTH2_RL_FALLBACK_DENY   2


/* the rate-limit decision of a request, for the response headers */
typedef struct {
    ngx_oauth2_plan_t           *plan;           /* NULL: not limited */
    ngx_uint_t                   state;          /* NGX_OAUTH2_RL_* */
    ngx_uint_t                   limit;          /* the tightest limit */
    ngx_int_t                    remaining;
    ngx_msec_t                   reset;          /* s until it is full */
    ngx_msec_t                   retry;          /* s, when limited */
} ngx_oauth2_rl_t;


typedef struct ngx_oauth2_redis_s    ngx_oauth2_redis_t;
typedef struct ngx_oauth2_jwt_key_s  ngx_oauth2_jwt_key_t;


#define NGX_OAUTH2_TOKEN_OPAQUE  0
#define NGX_OAUTH2_TOKEN_JWT     1
#define NGX_OAUTH2_TOKEN_AUTO    2
typedef struct ngx_oauth2_cache_s  ngx_oauth2_cache_t;


typedef struct {
    /* oauth2_redis */
    ngx_str_t                    redis_addr;     /* as configured */
    ngx_str_t                    redis_host;     /* numeric IP or unix path */
    ngx_int_t                    redis_port;     /* 0: unix socket */
    ngx_str_t                    redis_user;
    ngx_str_t                    redis_password;
    ngx_int_t                    redis_db;
    ngx_msec_t                   redis_timeout;
    ngx_str_t                    prefix;

    ngx_oauth2_cache_t          *cache;          /* oauth2_cache */

    ngx_array_t                 *plans;          /* of ngx_oauth2_plan_t */
    ngx_str_t                    default_plan_name;
    ngx_oauth2_plan_t           *default_plan;
    ngx_str_t                    plans_spec;     /* all plans, for Redis */
    ngx_array_t                 *warned_plans;   /* per worker */
    time_t                       fallback_logged;

    ngx_array_t                 *jwt_keys;       /* ngx_oauth2_jwt_key_t */

    ngx_oauth2_redis_t          *redis;          /* per worker */
} ngx_http_oauth2_main_conf_t;


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
    ngx_flag_t                   subrequests;
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
} ngx_http_oauth2_loc_conf_t;


typedef struct ngx_oauth2_waiter_s  ngx_oauth2_waiter_t;
struct redisReply;                               /* hiredis */


typedef struct {
    ngx_http_request_t          *request;
    ngx_oauth2_outcome_e         outcome;
    ngx_oauth2_record_t          record;
    u_char                       hash[NGX_OAUTH2_TOKEN_HASH_LEN];
    u_char                       name[sizeof("token 1a2b3c")];
    ngx_oauth2_rl_t              rl;
    ngx_oauth2_waiter_t         *waiter;         /* while Redis answers */
    ngx_event_t                  timeout;
    ngx_uint_t                   script;         /* NGX_OAUTH2_SCRIPT_* */
    ngx_str_t                   *args;           /* KEYS and ARGV */
    ngx_uint_t                   nargs;
    ngx_uint_t                   nkeys;
    ngx_pool_cleanup_t          *cleanup;
    void                        *claims;         /* json_t, of a JWT */
    ngx_str_t                    jti;
    time_t                       now;            /* of every check */
    unsigned                     done:1;
    unsigned                     rl_only:1;      /* token from the cache */
    unsigned                     rl_headers:1;   /* added already */
} ngx_http_oauth2_ctx_t;


#define NGX_OAUTH2_SCRIPT_LOOKUP     0
#define NGX_OAUTH2_SCRIPT_RATELIMIT  1
#define NGX_OAUTH2_SCRIPT_JWT        2


extern ngx_module_t  ngx_http_oauth2_module;


/* ngx_http_oauth2_handler.c */
ngx_int_t ngx_http_oauth2_access_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_oauth2_subrequest_handler(ngx_http_request_t *r);
ngx_http_oauth2_ctx_t *ngx_http_oauth2_get_ctx(ngx_http_request_t *r);
void ngx_http_oauth2_lookup_done(ngx_http_oauth2_ctx_t *ctx,
    ngx_oauth2_outcome_e outcome);

/* ngx_oauth2_token.c */
ngx_oauth2_outcome_e ngx_oauth2_token_extract(ngx_http_request_t *r,
    size_t max_len, ngx_str_t *token);
void ngx_oauth2_token_hash(ngx_str_t *token, u_char *hex);

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

/* ngx_oauth2_error.c */
ngx_int_t ngx_oauth2_error_bodies(ngx_conf_t *cf,
    ngx_http_oauth2_loc_conf_t *conf);
char *ngx_oauth2_error_message(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_oauth2_send_error(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_ctx_t *ctx);
ngx_str_t *ngx_oauth2_outcome_name(ngx_oauth2_outcome_e outcome);
ngx_int_t ngx_oauth2_add_header(ngx_http_request_t *r, char *name,
    ngx_str_t *value);

/* ngx_oauth2_redis.c */
ngx_int_t ngx_oauth2_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_oauth2_main_conf_t *omcf);
void ngx_oauth2_redis_exit_worker(ngx_http_oauth2_main_conf_t *omcf);
ngx_int_t ngx_oauth2_redis_call(ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx);
void ngx_oauth2_redis_detach(ngx_http_oauth2_ctx_t *ctx);
/* what a script's reply means; called by util/fuzz too */
ngx_oauth2_outcome_e ngx_oauth2_redis_parse(ngx_http_oauth2_ctx_t *ctx,
    struct redisReply *rr);
void ngx_oauth2_redis_abort(ngx_http_oauth2_main_conf_t *omcf,
    const char *reason);

/* ngx_oauth2_ratelimit.c */
char *ngx_oauth2_plan_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_oauth2_ratelimit_init_main(ngx_conf_t *cf,
    ngx_http_oauth2_main_conf_t *omcf);
ngx_oauth2_plan_t *ngx_oauth2_ratelimit_plan(ngx_http_request_t *r,
    ngx_http_oauth2_main_conf_t *omcf, ngx_str_t *name);
ngx_int_t ngx_oauth2_ratelimit_local(ngx_http_request_t *r,
    ngx_http_oauth2_main_conf_t *omcf, ngx_http_oauth2_ctx_t *ctx);
ngx_int_t ngx_oauth2_ratelimit_headers(ngx_http_request_t *r,
    ngx_http_oauth2_ctx_t *ctx);

/* ngx_oauth2_jwt.c */
char *ngx_oauth2_jwt_key_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_oauth2_jwt_is_compact(ngx_str_t *token);
ngx_int_t ngx_oauth2_jwt_claims(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_ctx_t *ctx,
    ngx_str_t *token);
ngx_oauth2_outcome_e ngx_oauth2_jwt_verify(ngx_http_request_t *r,
    ngx_http_oauth2_loc_conf_t *olcf, ngx_http_oauth2_main_conf_t *omcf,
    ngx_http_oauth2_ctx_t *ctx, ngx_str_t *token);
ngx_int_t ngx_oauth2_jwt_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

/* ngx_oauth2_cache.c */
char *ngx_oauth2_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_oauth2_cache_get(ngx_oauth2_cache_t *cache, u_char *hash,
    ngx_pool_t *pool, ngx_oauth2_record_t *rec);
void ngx_oauth2_cache_put(ngx_oauth2_cache_t *cache, u_char *hash,
    ngx_oauth2_record_t *rec, ngx_log_t *log);
ngx_int_t ngx_oauth2_cache_gcra(ngx_oauth2_cache_t *cache, ngx_str_t *key,
    ngx_oauth2_plan_t *plan, ngx_oauth2_rl_t *rl);


#endif /* _NGX_HTTP_OAUTH2_MODULE_H_INCLUDED_ */
