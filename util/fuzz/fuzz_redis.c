
/*
 * Fuzz target: what Redis answers.  The input is bytes on the wire (RESP),
 * read by hiredis's reader, as the worker's connection reads them; each
 * complete reply goes to ngx_oauth2_record_reply() as the reply of the
 * script the first byte chooses (lookup, rate limit only, JWT, a lease's
 * take), on a request of the server the second byte chooses.
 *
 * The reader is the module's (ngx_oauth2_reader_create()): hiredis's, its
 * reply objects from a pool, arrays of more than
 * NGX_OAUTH2_REPLY_MAX_ELEMENTS refused before anything is allocated for
 * them.  The fuzz build has NGX_DEBUG_PALLOC: every pool allocation is a
 * malloc() of its own, so ASan sees a reply used after its pool's reset.
 */


#include "ngx_oauth2_fuzz.h"
#include "ngx_oauth2_redis.h"

#include <hiredis/hiredis.h>




int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


ngx_int_t
ngx_oauth2_fuzz_target_init(void)
{
    return NGX_OK;
}




int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void                   *reply;
    ngx_uint_t              script, server, n;
    ngx_uint_t              objects;
    ngx_pool_t             *replies;
    redisReader            *reader;
    ngx_http_request_t     *r;
    ngx_oauth2_outcome_e    rc;
    ngx_http_oauth2_ctx_t  *ctx;

    if (size < 2) {
        return 0;
    }

    switch (data[0] % 4) {
    case 0:
        script = NGX_OAUTH2_SCRIPT_LOOKUP;
        break;
    case 1:
        script = NGX_OAUTH2_SCRIPT_RATELIMIT;
        break;
    case 2:
        script = NGX_OAUTH2_SCRIPT_JWT;
        break;
    default:
        script = NGX_OAUTH2_SCRIPT_LEASE;
        break;
    }

    server = data[1];

    /* the module's reader: its reply objects from a pool */

    objects = 0;
    reader = ngx_oauth2_reader_create();
    replies = ngx_create_pool(4096, ngx_cycle->log);
    if (reader == NULL || replies == NULL) {
        abort();
    }

    /* fed in two parts, as a reply split across reads */

    n = size > 2 ? 2 + (data[0] >> 2) % (size - 2) : 2;

    if (redisReaderFeed(reader, (const char *) data + 2, n - 2) != REDIS_OK
        || redisReaderFeed(reader, (const char *) data + n, size - n)
           != REDIS_OK)
    {
        abort();
    }

    for ( ;; ) {
        reply = NULL;

        if (ngx_oauth2_reader_get_reply(reader, replies, &objects, &reply)
            != REDIS_OK
            || reply == NULL)
        {
            /* a protocol error: the connection is dropped, nothing parsed */
            break;
        }

        r = ngx_oauth2_fuzz_request(server);
        ctx = ngx_oauth2_fuzz_ctx(r);
        ngx_str_set(&ctx->jti, "fuzz-jti");

        if (script == NGX_OAUTH2_SCRIPT_LEASE) {
            /* a take is always for a plan: the server's default one */
            ctx->rl.plan = ((ngx_http_oauth2_main_conf_t *)
                            ngx_http_get_module_main_conf(r,
                                ngx_http_oauth2_module))->default_plan;
        }

        rc = ngx_oauth2_record_reply(ctx, script, reply);

        if (rc != NGX_OAUTH2_OK
            && rc != NGX_OAUTH2_INVALID_TOKEN
            && rc != NGX_OAUTH2_STORE_UNAVAILABLE)
        {
            /* the parser decides nothing else */
            abort();
        }

        /* an error reply is a 503; only an array is ever accepted */

        if ((((redisReply *) reply)->type == REDIS_REPLY_ERROR
             && rc != NGX_OAUTH2_STORE_UNAVAILABLE)
            || (rc == NGX_OAUTH2_OK
                && ((redisReply *) reply)->type != REDIS_REPLY_ARRAY))
        {
            abort();
        }

        if (rc == NGX_OAUTH2_OK && ctx->rl.plan
            && ctx->rl.limit >= ctx->rl.plan->limits->nelts)
        {
            abort();
        }

        /* a take: permits exactly when allowed, a bounded number */

        if (rc == NGX_OAUTH2_OK && script == NGX_OAUTH2_SCRIPT_LEASE
            && ((ctx->lease_granted > 0)
                != (ctx->rl.state == NGX_OAUTH2_RL_ALLOWED)
                || ctx->lease_granted > 1000000))
        {
            abort();
        }

        /* an accepted record passed the gate: nothing that ends a line */

        if (rc == NGX_OAUTH2_OK && script == NGX_OAUTH2_SCRIPT_LOOKUP
            && (!ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_IDENT,
                                        &ctx->record.client_id)
                || (ctx->record.sub.len
                    && !ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_IDENT,
                                               &ctx->record.sub))
                || (ctx->record.consent_id.len
                    && !ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_IDENT,
                                               &ctx->record.consent_id))
                || !ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_SCOPE,
                                           &ctx->record.scope)
                || (ctx->record.plan.len
                    && !ngx_oauth2_field_valid(NGX_OAUTH2_FIELD_PLAN,
                                               &ctx->record.plan))
                || (ctx->record.consent_valid
                    && ctx->record.consent_id.len == 0)))
        {
            abort();
        }

        ngx_oauth2_reader_done(&replies, ngx_cycle->log);
        objects = 0;
        ngx_oauth2_fuzz_done(r);
    }

    redisReaderFree(reader);
    ngx_destroy_pool(replies);

    return 0;
}
