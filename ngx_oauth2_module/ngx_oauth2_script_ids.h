
/*
 * The indexes of the module's Redis scripts (ngx_oauth2_scripts.h):
 * written by util/gen-scripts.pl; do not edit.
 */


#ifndef _NGX_OAUTH2_SCRIPT_IDS_H_INCLUDED_
#define _NGX_OAUTH2_SCRIPT_IDS_H_INCLUDED_


#define NGX_OAUTH2_SCRIPT_NONE       -1
#define NGX_OAUTH2_SCRIPT_LOOKUP     0
#define NGX_OAUTH2_SCRIPT_RATELIMIT  1
#define NGX_OAUTH2_SCRIPT_JWT        2


#endif /* _NGX_OAUTH2_SCRIPT_IDS_H_INCLUDED_ */
