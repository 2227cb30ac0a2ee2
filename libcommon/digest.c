/* digest.c — SHA-256 through mbedTLS 2.x or 3.x (see digest.h). */
#include "digest.h"

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <string.h>

void digest_sha256(const void *data, size_t len, unsigned char out[32])
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    mbedtls_sha256(data, len, out, 0);
#else
    mbedtls_sha256_ret(data, len, out, 0);
#endif
}

void digest_hex(const char *str, size_t nbytes, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char h[32];
    digest_sha256(str, strlen(str), h);
    if (nbytes > 32) nbytes = 32;
    for (size_t i = 0; i < nbytes; i++) out[2 * i] = hex[h[i] >> 4], out[2 * i + 1] = hex[h[i] & 15];
    out[2 * nbytes] = '\0';
}
