
/*
 * The indexes of the module's Redis scripts (ngx_oauth2_scripts.h):
 * written by util/gen-scripts.pl; do not edit.
 */


#ifndef _NGX_OAUTH2_SCRIPT_IDS_H_INCLUDED_
#define _NGX_OAUTH2_SCRIPT_IDS_H_INCLUDED_


#define NGX_OAUTH2_SCRIPT_NONE                  -1
#define NGX_OAUTH2_SCRIPT_LOOKUP                0
#define NGX_OAUTH2_SCRIPT_RATELIMIT             1
#define NGX_OAUTH2_SCRIPT_JWT                   2
#define NGX_OAUTH2_SCRIPT_AUTHZ_PUT             3
#define NGX_OAUTH2_SCRIPT_AUTHZ_DECIDE          4
#define NGX_OAUTH2_SCRIPT_AUTHZ_CODE            5
#define NGX_OAUTH2_SCRIPT_AUTHZ_REFRESH         6
#define NGX_OAUTH2_SCRIPT_AUTHZ_CONSENT_REVOKE  7
#define NGX_OAUTH2_SCRIPT_AUTHZ_REVOKE          8
#define NGX_OAUTH2_SCRIPT_LEASE                 9


#endif /* _NGX_OAUTH2_SCRIPT_IDS_H_INCLUDED_ */
