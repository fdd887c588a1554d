
/*
 * ngx_oauth2_module: the authorization server half (ngx_http_oauth2_authz
 * module): the authorize, decision, token, consent details and revocation
 * endpoints, each a content handler.  They write the records the gateway
 * half reads (docs/redis-schema.md), through the gateway's Redis layer
 * and its oauth2_redis_prefix.
 *
 *   ngx_http_oauth2_authz.c            directives, configuration, the
 *                                      request's ctx, the request body,
 *                                      Redis calls, clients, responses
 *   ngx_http_oauth2_authz_form.c       the form and HTTP Basic parsers,
 *                                      the grammars of the parameters
 *   ngx_http_oauth2_authz_authorize.c  oauth2_authorize,
 *                                      oauth2_authorize_decision
 *   ngx_http_oauth2_authz_token.c      oauth2_token
 *   ngx_http_oauth2_authz_jwt.c        JWT access tokens (RFC 9068)
 *   ngx_http_oauth2_authz_consent.c    oauth2_consent_api, oauth2_revoke
 */


#ifndef _NGX_HTTP_OAUTH2_AUTHZ_H_INCLUDED_
#define _NGX_HTTP_OAUTH2_AUTHZ_H_INCLUDED_


#include "ngx_http_oauth2_module.h"


/* a request body is read into memory, this long at most */
#define NGX_HTTP_OAUTH2_BODY_MAX          16384

/* a pending authorization request lives 10 minutes */
#define NGX_HTTP_OAUTH2_AUTHZ_TTL         600

/* a consent stays readable (status invalid) this long after it expired */
#define NGX_HTTP_OAUTH2_CONSENT_KEEP      (30 * 86400)

/* random values: bytes before base64url */
#define NGX_HTTP_OAUTH2_TOKEN_BYTES       32     /* tokens, codes, requests */
#define NGX_HTTP_OAUTH2_ID_BYTES          16     /* consent ids, jti */


/* the endpoint a location serves */
#define NGX_HTTP_OAUTH2_EP_NONE           0
#define NGX_HTTP_OAUTH2_EP_AUTHORIZE      1
#define NGX_HTTP_OAUTH2_EP_DECISION       2
#define NGX_HTTP_OAUTH2_EP_TOKEN          3
#define NGX_HTTP_OAUTH2_EP_CONSENT        4
#define NGX_HTTP_OAUTH2_EP_REVOKE         5

/* oauth2_token_client_auth: a bitmask */
#define NGX_HTTP_OAUTH2_AUTH_BASIC        0x0002
#define NGX_HTTP_OAUTH2_AUTH_POST         0x0004

/* oauth2_token_errors */
#define NGX_HTTP_OAUTH2_ERRORS_GUIDE      0
#define NGX_HTTP_OAUTH2_ERRORS_RFC6749    1

/* oauth2_access_token_format */
#define NGX_HTTP_OAUTH2_FORMAT_OPAQUE     0
#define NGX_HTTP_OAUTH2_FORMAT_JWT        1


/* the parameters of every endpoint, in the query string or the form */
enum {
    NGX_HTTP_OAUTH2_P_RESPONSE_TYPE = 0,
    NGX_HTTP_OAUTH2_P_CLIENT_ID,
    NGX_HTTP_OAUTH2_P_REDIRECT_URI,
    NGX_HTTP_OAUTH2_P_SCOPE,
    NGX_HTTP_OAUTH2_P_STATE,
    NGX_HTTP_OAUTH2_P_CODE_CHALLENGE,
    NGX_HTTP_OAUTH2_P_CODE_CHALLENGE_METHOD,
    NGX_HTTP_OAUTH2_P_REQUEST,
    NGX_HTTP_OAUTH2_P_USER,
    NGX_HTTP_OAUTH2_P_DECISION,
    NGX_HTTP_OAUTH2_P_GRANT_TYPE,
    NGX_HTTP_OAUTH2_P_CODE,
    NGX_HTTP_OAUTH2_P_CODE_VERIFIER,
    NGX_HTTP_OAUTH2_P_REFRESH_TOKEN,
    NGX_HTTP_OAUTH2_P_CLIENT_SECRET,
    NGX_HTTP_OAUTH2_P_TOKEN,
    NGX_HTTP_OAUTH2_P_TOKEN_TYPE_HINT,
    NGX_HTTP_OAUTH2_P_LAST
};

/* what the parser saw of a parameter */
#define NGX_HTTP_OAUTH2_SEEN              0x01
#define NGX_HTTP_OAUTH2_DUP               0x02   /* sent more than once */
#define NGX_HTTP_OAUTH2_BAD               0x04   /* not UTF-8 text */


/*
 * A form (application/x-www-form-urlencoded) or a query string, decoded.
 * A parameter sent without a value is one that was not sent (RFC 6749
 * 3.1); parameters the endpoints do not know are ignored, but every name
 * and value must be percent-encoded UTF-8 without control characters.
 */
typedef struct {
    ngx_str_t                    value[NGX_HTTP_OAUTH2_P_LAST];
    u_char                       flags[NGX_HTTP_OAUTH2_P_LAST];
    unsigned                     bad:1;          /* any name or value */
    unsigned                     dup:1;          /* any known parameter */
} ngx_http_oauth2_form_t;


/* the grammars of ngx_http_oauth2_authz_valid() */
#define NGX_HTTP_OAUTH2_G_STATE           0   /* VSCHAR, 1 to 1024 */
#define NGX_HTTP_OAUTH2_G_PKCE            1   /* 43 to 128 unreserved */
#define NGX_HTTP_OAUTH2_G_HANDLE          2   /* %x21-7E, 1 to 512 */
#define NGX_HTTP_OAUTH2_G_REDIRECT_URI    3   /* %x21-7E, no "#" */
#define NGX_HTTP_OAUTH2_G_SECRET          4   /* %x20-7E, 1 to 255 */
#define NGX_HTTP_OAUTH2_G_TEXT            5   /* UTF-8 text, 1 to 255 */


typedef struct ngx_http_oauth2_signer_s  ngx_http_oauth2_signer_t;


typedef struct {
    ngx_uint_t                   endpoint;       /* not inherited */
    ngx_uint_t                   pkce;           /* 1: required */
    ngx_str_t                    login;
    ngx_http_complex_value_t    *decision_user;
    time_t                       consent_ttl;
    time_t                       code_ttl;
    ngx_flag_t                   code_ttl_set;   /* here or above */
    ngx_str_t                    code_max_age;   /* "" or its seconds */
    ngx_uint_t                   client_auth;
    ngx_uint_t                   errors;
    time_t                       access_ttl;
    time_t                       refresh_ttl;
    ngx_uint_t                   format;
    ngx_http_oauth2_signer_t    *signer;         /* format jwt */
    off_t                        body_max;       /* client_max_body_size */
} ngx_http_oauth2_authz_loc_conf_t;


/* a client record: <prefix>client:<client_id> */
typedef struct {
    ngx_str_t                    id;
    ngx_str_t                    secret_sha256;
    ngx_str_t                    redirect_uris;
    ngx_str_t                    subscribed;
    ngx_str_t                    scopes;
    ngx_str_t                    plan;
    ngx_str_t                    name;
    ngx_str_t                    grant_types;
} ngx_http_oauth2_client_t;


typedef struct ngx_http_oauth2_authz_ctx_s  ngx_http_oauth2_authz_ctx_t;

/* what to do with Redis's reply (never NULL, never an error reply) */
typedef ngx_int_t (*ngx_http_oauth2_authz_step_pt)(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, struct redisReply *reply);


struct ngx_http_oauth2_authz_ctx_s {
    ngx_http_request_t                *request;
    ngx_http_oauth2_authz_loc_conf_t  *alcf;
    ngx_oauth2_redis_call_t           *call;     /* while Redis answers */
    ngx_http_oauth2_authz_step_pt      next;
    time_t                             now;

    ngx_http_oauth2_form_t             form;

    /* the client that authenticated, and its record */
    ngx_str_t                          client_id;
    ngx_str_t                          secret;
    ngx_http_oauth2_client_t           client;

    /* what an endpoint keeps between its Redis calls */
    ngx_str_t                          id;       /* request, consent */
    ngx_str_t                          scope;
    ngx_str_t                          redirect_uri;
    ngx_str_t                          state;
    ngx_str_t                          access_token;
    ngx_str_t                          refresh_token;
    ngx_str_t                          code;
    ngx_str_t                          jti;
    ngx_uint_t                         grant;
};


extern ngx_module_t  ngx_http_oauth2_authz_module;


/* ngx_http_oauth2_authz.c */
ngx_http_oauth2_authz_ctx_t *ngx_http_oauth2_authz_ctx(ngx_http_request_t *r);
ngx_int_t ngx_http_oauth2_authz_read_form(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt handler);
ngx_int_t ngx_http_oauth2_authz_body(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx);
ngx_int_t ngx_http_oauth2_authz_call(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, ngx_int_t script, ngx_str_t *args,
    ngx_uint_t nargs, ngx_uint_t nkeys, ngx_http_oauth2_authz_step_pt next);
void ngx_http_oauth2_authz_finish(ngx_http_request_t *r, ngx_int_t rc);
ngx_int_t ngx_http_oauth2_authz_key(ngx_http_request_t *r, ngx_str_t *key,
    char *kind, ngx_str_t *id, ngx_uint_t hashed);
ngx_int_t ngx_http_oauth2_authz_random(ngx_http_request_t *r, size_t n,
    ngx_str_t *out);
ngx_int_t ngx_http_oauth2_authz_reply_str(ngx_http_request_t *r,
    struct redisReply *rr, ngx_str_t *s);
u_char *ngx_http_oauth2_authz_name(u_char *buf, ngx_str_t *secret);
ngx_int_t ngx_http_oauth2_authz_fetch_client(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, ngx_str_t *client_id,
    ngx_http_oauth2_authz_step_pt next);
ngx_int_t ngx_http_oauth2_authz_client(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, struct redisReply *reply,
    ngx_uint_t authenticate);
ngx_int_t ngx_http_oauth2_authz_credentials(ngx_http_request_t *r,
    ngx_http_oauth2_authz_ctx_t *ctx, ngx_uint_t methods);
ngx_int_t ngx_http_oauth2_authz_json(ngx_http_request_t *r,
    ngx_uint_t status, void *obj, ngx_uint_t basic);
ngx_int_t ngx_http_oauth2_authz_error(ngx_http_request_t *r,
    ngx_uint_t status, char *error, char *description, ngx_uint_t basic);
ngx_int_t ngx_http_oauth2_authz_not_allowed(ngx_http_request_t *r,
    char *allow);
ngx_int_t ngx_http_oauth2_authz_unavailable(ngx_http_request_t *r);
ngx_int_t ngx_http_oauth2_authz_redirect(ngx_http_request_t *r,
    ngx_str_t *uri, ngx_str_t *names, ngx_str_t *values, ngx_uint_t n);

/* ngx_http_oauth2_authz_form.c */
ngx_int_t ngx_http_oauth2_authz_parse_form(ngx_pool_t *pool, ngx_str_t *in,
    ngx_http_oauth2_form_t *form);
ngx_int_t ngx_http_oauth2_authz_parse_basic(ngx_pool_t *pool,
    ngx_str_t *header, ngx_str_t *id, ngx_str_t *secret);
ngx_uint_t ngx_http_oauth2_authz_valid(ngx_uint_t grammar, ngx_str_t *s);
ngx_int_t ngx_http_oauth2_authz_scope(ngx_pool_t *pool, ngx_str_t *in,
    ngx_str_t *out);
ngx_uint_t ngx_http_oauth2_authz_scope_subset(ngx_str_t *scope,
    ngx_str_t *allowed);
ngx_uint_t ngx_http_oauth2_authz_word(ngx_str_t *list, ngx_str_t *word);
ngx_int_t ngx_http_oauth2_authz_pkce(ngx_pool_t *pool, ngx_str_t *verifier,
    ngx_str_t *challenge);

/* ngx_http_oauth2_authz_authorize.c */
ngx_int_t ngx_http_oauth2_authorize_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_oauth2_decision_handler(ngx_http_request_t *r);

/* ngx_http_oauth2_authz_token.c */
ngx_int_t ngx_http_oauth2_token_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_oauth2_token_error(ngx_http_request_t *r,
    ngx_http_oauth2_authz_loc_conf_t *alcf, ngx_uint_t err);
ngx_int_t ngx_http_oauth2_token_endpoint(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt body);
void ngx_http_oauth2_token_client_body(ngx_http_request_t *r,
    ngx_http_oauth2_authz_step_pt next);

/* the errors of the token endpoint, named by oauth2_token_errors */
#define NGX_HTTP_OAUTH2_TE_INVALID_CLIENT       0
#define NGX_HTTP_OAUTH2_TE_INVALID_REQUEST      1
#define NGX_HTTP_OAUTH2_TE_INPUT                2   /* "unknown" */
#define NGX_HTTP_OAUTH2_TE_GRANT_TYPE           3   /* "unknown" */
#define NGX_HTTP_OAUTH2_TE_CODE                 4   /* invalid_grant 400 */
#define NGX_HTTP_OAUTH2_TE_REFRESH              5   /* invalid_grant 401 */
#define NGX_HTTP_OAUTH2_TE_SCOPE                6
#define NGX_HTTP_OAUTH2_TE_UNAUTHORIZED_CLIENT  7
#define NGX_HTTP_OAUTH2_TE_TOO_LARGE            8   /* 413 */
#define NGX_HTTP_OAUTH2_TE_LENGTH               9   /* 411 */

/* ngx_http_oauth2_authz_jwt.c */
char *ngx_http_oauth2_token_format(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_oauth2_jwt_claims(ngx_http_request_t *r,
    ngx_http_oauth2_signer_t *signer, ngx_str_t *client_id,
    ngx_str_t *sub, ngx_str_t *scope, ngx_str_t *plan,
    ngx_str_t *consent_id, ngx_str_t *jti, time_t iat, time_t exp,
    ngx_str_t *token);
ngx_int_t ngx_http_oauth2_jwt_jti(ngx_http_request_t *r, ngx_str_t *token,
    ngx_str_t *jti);

/* ngx_http_oauth2_authz_consent.c */
ngx_int_t ngx_http_oauth2_consent_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_oauth2_revoke_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_OAUTH2_AUTHZ_H_INCLUDED_ */
