/* digest.h — SHA-256 (mbedTLS), the one place that knows which mbedTLS
 * API version is installed. For ids and labels, not for passwords. */
#ifndef QT_DIGEST_H
#define QT_DIGEST_H

#include <stddef.h>

void digest_sha256(const void *data, size_t len, unsigned char out[32]);
/* The first nbytes of SHA-256(str) as lowercase hex into out (2*nbytes+1). */
void digest_hex(const char *str, size_t nbytes, char *out);

#endif
