
/*
 * ngx_oauth2_module fuzz targets: what the targets share.
 */


#ifndef _NGX_OAUTH2_FUZZ_H_INCLUDED_
#define _NGX_OAUTH2_FUZZ_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth2_module.h"


/* the servers of util/fuzz/seeds.sh's fuzz.conf, in their order */
#define NGX_OAUTH2_FUZZ_SERVERS  2

/*
 * nginx's clock, pinned for every input (2027-01-15 08:00:00 UTC), so that
 * an input that crashed once crashes again later; seeds.sh signs its
 * seeds' exp and nbf against the same time
 */
#define NGX_OAUTH2_FUZZ_NOW      1800000000


ngx_int_t ngx_oauth2_fuzz_init(int argc, char **argv);
ngx_int_t ngx_oauth2_fuzz_target_init(void);       /* each target's own */
void ngx_oauth2_fuzz_clock(void);
ngx_http_request_t *ngx_oauth2_fuzz_request(ngx_uint_t server);
ngx_http_oauth2_ctx_t *ngx_oauth2_fuzz_ctx(ngx_http_request_t *r);
void ngx_oauth2_fuzz_done(ngx_http_request_t *r);


#endif /* _NGX_OAUTH2_FUZZ_H_INCLUDED_ */
