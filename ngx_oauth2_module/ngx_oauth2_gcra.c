
/*
 * ngx_oauth2_module: GCRA, the generic cell rate algorithm, for every
 * limit of a plan at once: the one definition.  lua/gcra.lua is the same
 * algorithm in Redis; t/063-gcra.t runs one table of vectors (arrival
 * times, limits, decisions, TATs) through this function and through EVAL
 * of the Lua file.
 *
 * A limit of "count" requests per "period" lets a burst of count through,
 * then one every period / count.  Each limit keeps a theoretical arrival
 * time (TAT, in microseconds); a request is allowed when every limit lets
 * it through, and only then do the TATs move on.
 *
 * Pure: no clock, no memory, no locks, so that it can be compiled and
 * tested on its own.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <math.h>

#include "ngx_oauth2_gcra.h"


void
ngx_oauth2_gcra(ngx_oauth2_limit_t *limits, ngx_uint_t n, double *tat,
    double now, ngx_oauth2_rl_t *rl)
{
    double      t, tau, at, wait, retry, best_reset, deny_reset,
                next[NGX_OAUTH2_MAX_LIMITS];
    ngx_int_t   rem, best_rem;
    ngx_uint_t  i, best, deny;

    best = 0;
    best_rem = -1;
    best_reset = 0;
    deny = n;
    retry = 0;
    deny_reset = 0;

    for (i = 0; i < n && i < NGX_OAUTH2_MAX_LIMITS; i++) {
        t = (double) limits[i].period * 1000 / limits[i].count;
        tau = (double) limits[i].period * 1000 - t;
        at = tat[i] > now ? tat[i] : now;
        wait = at - now - tau;

        if (wait > 0) {
            if (deny == n || wait > retry) {
                retry = wait;
                deny = i;
                deny_reset = at - now;
            }

            continue;
        }

        rem = (ngx_int_t) (-wait / t);      /* -wait >= 0: floor */
        next[i] = at + t;

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
        return;
    }

    for (i = 0; i < n && i < NGX_OAUTH2_MAX_LIMITS; i++) {
        tat[i] = next[i];
    }

    rl->state = NGX_OAUTH2_RL_ALLOWED;
    rl->limit = best;
    rl->remaining = best_rem;
    rl->reset = (ngx_msec_t) ceil(best_reset / 1000000);
    rl->retry = 0;
}
