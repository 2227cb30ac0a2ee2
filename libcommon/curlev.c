/* curlev.c — libcurl multi on libevent (see curlev.h). */
#include "curlev.h"

#include <stdlib.h>

typedef struct curlev_xfer {
    struct curlev_xfer *prev, *next;
    CURL *easy;
    curlev_done_fn done;
    void *ud;
} curlev_xfer_t;

typedef struct curlev_sock {
    struct event *ev;
    curlev_t *m;
} curlev_sock_t;

struct curlev {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    curlev_xfer_t *xfers;
    size_t n;
};

static void curlev_unlink(curlev_t *m, curlev_xfer_t *x)
{
    if (x->prev) x->prev->next = x->next;
    else m->xfers = x->next;
    if (x->next) x->next->prev = x->prev;
    m->n--;
}

/* Hand every finished transfer to its owner. */
static void curlev_check(curlev_t *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        curlev_xfer_t *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(m->multi, easy);
        if (!x) continue;
        curlev_unlink(m, x);
        x->done(x->ud, easy, rc);
        free(x);
    }
}

static void curlev_sock_cb(evutil_socket_t fd, short what, void *arg)
{
    curlev_t *m = arg;
    int running, flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(m->multi, fd, flags, &running);
    curlev_check(m);
}

static void curlev_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    curlev_t *m = arg;
    int running;
    (void)fd, (void)what;
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    curlev_check(m);
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what libcurl wants. */
static int curlev_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    curlev_t *m = userp;
    curlev_sock_t *cs = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (cs) {
            event_free(cs->ev);
            free(cs);
        }
        curl_multi_assign(m->multi, s, NULL);
        return 0;
    }
    short kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!cs) {
        if (!(cs = calloc(1, sizeof *cs))) return -1;
        cs->m = m;
        curl_multi_assign(m->multi, s, cs);
    } else {
        event_free(cs->ev);
    }
    cs->ev = event_new(m->base, s, kind, curlev_sock_cb, m);
    return cs->ev && event_add(cs->ev, NULL) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: call back in timeout_ms (-1: no timer). */
static int curlev_timer(CURLM *multi, long timeout_ms, void *userp)
{
    curlev_t *m = userp;
    (void)multi;
    if (timeout_ms < 0) return evtimer_del(m->timer);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    return evtimer_add(m->timer, &tv);
}

curlev_t *curlev_new(struct event_base *base)
{
    static int global;
    if (!global && curl_global_init(CURL_GLOBAL_DEFAULT) == 0) global = 1;
    curlev_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->base = base;
    if (!(m->multi = curl_multi_init()) || !(m->timer = evtimer_new(base, curlev_timer_cb, m))) {
        curlev_free(m);
        return NULL;
    }
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, curlev_socket);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, curlev_timer);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    return m;
}

void curlev_free(curlev_t *m)
{
    if (!m) return;
    while (m->xfers) {
        curlev_xfer_t *x = m->xfers;
        curl_multi_remove_handle(m->multi, x->easy);
        curlev_unlink(m, x);
        x->done(x->ud, x->easy, CURLE_ABORTED_BY_CALLBACK);
        free(x);
    }
    if (m->multi) curl_multi_cleanup(m->multi);
    if (m->timer) event_free(m->timer);
    free(m);
}

int curlev_add(curlev_t *m, CURL *easy, curlev_done_fn done, void *ud)
{
    curlev_xfer_t *x = calloc(1, sizeof *x);
    if (!x) return -1;
    x->easy = easy, x->done = done, x->ud = ud;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)x);
    if (curl_multi_add_handle(m->multi, easy) != CURLM_OK) {
        free(x);
        return -1;
    }
    x->next = m->xfers;
    if (m->xfers) m->xfers->prev = x;
    m->xfers = x;
    m->n++;
    return 0;
}

size_t curlev_running(const curlev_t *m) { return m->n; }
