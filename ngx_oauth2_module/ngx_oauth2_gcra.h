
/*
 * ngx_oauth2_module: the rate limit's algorithm (ngx_oauth2_gcra.c) and
 * what it decides.  Needs nginx's core headers only, so that the
 * algorithm can be compiled and tested on its own (t/063-gcra.t).
 */


#ifndef _NGX_OAUTH2_GCRA_H_INCLUDED_
#define _NGX_OAUTH2_GCRA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_OAUTH2_MAX_LIMITS    8               /* per plan */

#define NGX_OAUTH2_RL_NONE       0
#define NGX_OAUTH2_RL_ALLOWED    1
#define NGX_OAUTH2_RL_LIMITED    2


typedef struct ngx_oauth2_plan_s  ngx_oauth2_plan_t;


/* one limit of a plan: count requests per period */
typedef struct {
    ngx_uint_t                   count;
    ngx_msec_t                   period;
} ngx_oauth2_limit_t;


/* the rate-limit decision of a request, for the response headers */
typedef struct {
    ngx_oauth2_plan_t           *plan;           /* NULL: not limited */
    ngx_uint_t                   state;          /* NGX_OAUTH2_RL_* */
    ngx_uint_t                   limit;          /* the tightest limit */
    ngx_int_t                    remaining;
    ngx_msec_t                   reset;          /* s until it is full */
    ngx_msec_t                   retry;          /* s, when limited */
} ngx_oauth2_rl_t;


/*
 * tat[i]: the TAT of limit i in microseconds (0: none), moved on when the
 * request is allowed; now: in microseconds.  Sets every field of rl but
 * plan.
 */
void ngx_oauth2_gcra(ngx_oauth2_limit_t *limits, ngx_uint_t n, double *tat,
    double now, ngx_oauth2_rl_t *rl);


#endif /* _NGX_OAUTH2_GCRA_H_INCLUDED_ */
