
/*
 * Runs GCRA vectors through ngx_oauth2_gcra() (the C definition of the
 * rate limit), for t/063-gcra.t, which runs the same vectors through EVAL
 * of lua/gcra.lua and compares.
 *
 *   cc -I <nginx objs and src/core, src/event, src/os/unix> \
 *       util/gcra-vectors.c ngx_oauth2_module/ngx_oauth2_gcra.c -lm
 *
 * stdin, one command a line:
 *   plan COUNT PERIOD_MS [COUNT PERIOD_MS ...]   a plan, TATs reset
 *   at NOW_USEC                                   a request at NOW
 * stdout, for each "at": state limit remaining reset retry tat...
 * (TATs with %.17g, as the script writes them).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <stdio.h>

#include "ngx_oauth2_gcra.h"


int
main(void)
{
    int                 n, k, off;
    char                line[4096];
    double              now, tat[NGX_OAUTH2_MAX_LIMITS];
    ngx_uint_t          i, nlimits;
    unsigned long       count, period;
    ngx_oauth2_rl_t     rl;
    ngx_oauth2_limit_t  limits[NGX_OAUTH2_MAX_LIMITS];

    nlimits = 0;

    while (fgets(line, sizeof(line), stdin)) {

        if (strncmp(line, "plan ", 5) == 0) {
            nlimits = 0;
            off = 5;

            while (nlimits < NGX_OAUTH2_MAX_LIMITS
                   && sscanf(line + off, "%lu %lu%n", &count, &period, &n)
                      == 2)
            {
                limits[nlimits].count = count;
                limits[nlimits].period = period;
                tat[nlimits] = 0;
                nlimits++;
                off += n;
            }

            continue;
        }

        if (sscanf(line, "at %lf", &now) != 1) {
            continue;
        }

        ngx_memzero(&rl, sizeof(ngx_oauth2_rl_t));

        ngx_oauth2_gcra(limits, nlimits, tat, now, &rl);

        k = printf("%d %d %d %d %d", (int) rl.state, (int) rl.limit,
                   (int) rl.remaining, (int) rl.reset, (int) rl.retry);

        for (i = 0; i < nlimits; i++) {
            k += printf(" %.17g", tat[i]);
        }

        printf("\n");
        (void) k;
    }

    return 0;
}
