
/*
 * What a JWT signature check costs in OpenSSL 3, with the context set up
 * for every token (EVP_Digest{Sign,Verify}Init each time, as the module
 * did) and copied from one set up once (EVP_MD_CTX_copy_ex, as it does).
 *
 *   cc -O2 -o /tmp/bench-evp util/bench-evp.c -lcrypto
 *   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out /tmp/rs.key
 *   /tmp/bench-evp /tmp/rs.key
 */


#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>


#define HS_N  200000
#define RS_N  20000


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


int
main(int argc, char **argv)
{
    int            i, ok;
    FILE          *f;
    size_t         mac_len, sig_len;
    double         t0, t1, t2;
    EVP_PKEY      *hs, *rs;
    EVP_MD_CTX    *base, *c;
    unsigned char  secret[32], input[300], mac[EVP_MAX_MD_SIZE], sig[512];

    if (argc != 2 || (f = fopen(argv[1], "r")) == NULL) {
        fprintf(stderr, "usage: bench-evp RSA-PRIVATE-KEY.pem\n");
        return 1;
    }

    rs = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);

    memset(secret, 'k', sizeof(secret));
    memset(input, 'a', sizeof(input));

    hs = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL, secret,
                                      sizeof(secret));
    if (hs == NULL || rs == NULL) {
        fprintf(stderr, "bench-evp: no key\n");
        return 1;
    }

    /* an RS256 signature of the input, to verify */

    c = EVP_MD_CTX_new();
    sig_len = sizeof(sig);

    if (EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, rs) != 1
        || EVP_DigestSign(c, sig, &sig_len, input, sizeof(input)) != 1)
    {
        fprintf(stderr, "bench-evp: cannot sign\n");
        return 1;
    }

    EVP_MD_CTX_free(c);

    /* HS256 */

    t0 = now();

    for (i = 0; i < HS_N; i++) {
        c = EVP_MD_CTX_new();
        mac_len = sizeof(mac);
        EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, hs);
        EVP_DigestSign(c, mac, &mac_len, input, sizeof(input));
        EVP_MD_CTX_free(c);
    }

    t1 = now();

    base = EVP_MD_CTX_new();
    EVP_DigestSignInit(base, NULL, EVP_sha256(), NULL, hs);
    EVP_MD_CTX_set_flags(base, EVP_MD_CTX_FLAG_FINALISE);
    c = EVP_MD_CTX_new();

    for (i = 0; i < HS_N; i++) {
        mac_len = sizeof(mac);

        if (EVP_MD_CTX_copy_ex(c, base) != 1
            || EVP_DigestSign(c, mac, &mac_len, input, sizeof(input)) != 1)
        {
            fprintf(stderr, "bench-evp: HS256 copy failed\n");
            return 1;
        }
    }

    t2 = now();

    printf("HS256  initialised per call %6.2f us   copied %6.2f us\n",
           (t1 - t0) / HS_N * 1e6, (t2 - t1) / HS_N * 1e6);

    /* RS256 */

    ok = 0;
    t0 = now();

    for (i = 0; i < RS_N; i++) {
        c = EVP_MD_CTX_new();
        EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, rs);
        ok += EVP_DigestVerify(c, sig, sig_len, input, sizeof(input)) == 1;
        EVP_MD_CTX_free(c);
    }

    t1 = now();

    EVP_MD_CTX_free(base);
    base = EVP_MD_CTX_new();
    EVP_DigestVerifyInit(base, NULL, EVP_sha256(), NULL, rs);
    EVP_MD_CTX_set_flags(base, EVP_MD_CTX_FLAG_FINALISE);
    c = EVP_MD_CTX_new();

    for (i = 0; i < RS_N; i++) {
        if (EVP_MD_CTX_copy_ex(c, base) != 1) {
            fprintf(stderr, "bench-evp: RS256 copy failed\n");
            return 1;
        }

        ok += EVP_DigestVerify(c, sig, sig_len, input, sizeof(input)) == 1;
    }

    t2 = now();

    printf("RS256  initialised per call %6.2f us   copied %6.2f us"
           "   (%d of %d verified)\n",
           (t1 - t0) / RS_N * 1e6, (t2 - t1) / RS_N * 1e6, ok, 2 * RS_N);

    return ok == 2 * RS_N ? 0 : 1;
}
