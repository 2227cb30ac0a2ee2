/* httpc.c — see httpc.h. */
#include "httpc.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTPC_MAX_JSON (1 << 20)

size_t httpc_body_write(char *p, size_t size, size_t n, void *ud)
{
    httpc_body_t *b = ud;
    size_t len = size * n;
    if (b->len + len + 1 > b->max) {
        b->over = 1;
        return 0;
    }
    if (b->len + len + 1 > b->cap) {
        size_t cap = (b->len + len + 1) * 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) return 0;
        b->buf = nb, b->cap = cap;
    }
    memcpy(b->buf + b->len, p, len);
    b->len += len;
    b->buf[b->len] = '\0';
    return len;
}

long httpc_json(const char *method, const char *url, const char *bearer, const char *body, long timeout_ms,
                json_t **reply, char *err, size_t errlen)
{
    char curlerr[CURL_ERROR_SIZE] = "", auth[600];
    httpc_body_t got = {.max = HTTPC_MAX_JSON};
    struct curl_slist *hdr = NULL;
    long code = 0;
    CURL *c = curl_easy_init();
    *reply = NULL;
    if (!c) return snprintf(err, errlen, "curl init failed"), 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, httpc_body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curlerr);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "quantum-trader/1");
    if (bearer) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        hdr = curl_slist_append(hdr, auth);
    }
    if (body) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) snprintf(err, errlen, "%s %s: %s", method, url, got.over ? "reply over 1 MiB" : *curlerr ? curlerr : curl_easy_strerror(cc));
    else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        *reply = got.buf ? json_loadb(got.buf, got.len, 0, NULL) : NULL;
    }
    free(got.buf);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return code;
}
