/* curlev.h — libcurl's multi interface on a libevent loop: HTTP transfers
 * run side by side and none blocks the loop (the exchange client's calls,
 * so a slow order never delays another symbol's stop-loss).
 *
 * The caller configures an easy handle as for curl_easy_perform and hands
 * it over with curlev_add(); done(ud, easy, result) runs on the loop once
 * the transfer ended (result as curl_easy_perform would have returned it),
 * exactly once. The easy handle stays the caller's: it may be cleaned up or
 * reused inside done. */
#ifndef QT_CURLEV_H
#define QT_CURLEV_H

#include <curl/curl.h>
#include <event2/event.h>
#include <stddef.h>

typedef struct curlev curlev_t;
typedef void (*curlev_done_fn)(void *ud, CURL *easy, CURLcode result);

/* NULL when libcurl or libevent cannot set it up. */
curlev_t *curlev_new(struct event_base *base);
/* Transfers still running are stopped and their done is called with
 * CURLE_ABORTED_BY_CALLBACK before this returns. */
void curlev_free(curlev_t *m);
/* Start easy; -1 when it cannot be started (done is then not called). */
int curlev_add(curlev_t *m, CURL *easy, curlev_done_fn done, void *ud);
/* Transfers started and not done. */
size_t curlev_running(const curlev_t *m);

#endif
