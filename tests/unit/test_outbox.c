/* Unit tests: the bus's outbox and ack gate without Redis — order, resends
 * after an error or a lost link, acks held until what was published before
 * them is confirmed, a DLQ copy's entry acked once the copy is. */
#include "check.h"
#include "outbox.h"

#include <stdlib.h>
#include <string.h>

static char *cmd(const char *s) { return strdup(s); }

TEST(items_go_out_in_order_and_leave_only_when_confirmed)
{
    outbox_t o = {0};
    CHECK_EQ(outbox_append(&o, cmd("a"), 1, -1, NULL, NULL), 0);
    CHECK_EQ(outbox_append(&o, cmd("b"), 1, -1, NULL, NULL), 0);
    CHECK_EQ(outbox_append(&o, cmd("c"), 1, -1, NULL, NULL), 0);
    CHECK_EQ(o.count, 3);
    CHECK_EQ(o.pubs, 3);
    outbox_item_t *a = outbox_cursor(&o);
    CHECK_STR(a->cmd, "a");
    a->inflight = 1;
    outbox_advance(&o);
    outbox_item_t *b = outbox_cursor(&o);
    CHECK_STR(b->cmd, "b");
    b->inflight = 1;
    outbox_advance(&o);
    CHECK_EQ(outbox_floor(&o), 0);
    outbox_confirmed(&o, b); /* out of order: the floor waits for a */
    CHECK_EQ(outbox_floor(&o), 0);
    outbox_confirmed(&o, a);
    CHECK_EQ(outbox_floor(&o), 2);
    CHECK_EQ(o.count, 1);
    CHECK_STR(outbox_cursor(&o)->cmd, "c");
    outbox_free(&o);
    CHECK_EQ(o.count, 0);
}

TEST(a_refused_item_goes_again_before_anything_after_it)
{
    outbox_t o = {0};
    for (int i = 0; i < 3; i++) outbox_append(&o, cmd(i == 0 ? "a" : i == 1 ? "b" : "c"), 1, -1, NULL, NULL);
    outbox_item_t *a = outbox_cursor(&o), *b;
    a->inflight = 1, outbox_advance(&o);
    b = outbox_cursor(&o);
    b->inflight = 1, outbox_advance(&o);
    outbox_advance(&o); /* c sent too */
    CHECK(outbox_cursor(&o) == NULL);
    outbox_failed(&o, b);
    CHECK(outbox_cursor(&o) == b);
    CHECK_EQ(b->inflight, 0);
    outbox_failed(&o, a); /* an older one failing too: it goes first */
    CHECK(outbox_cursor(&o) == a);
    outbox_rewind(&o);
    CHECK(outbox_cursor(&o) == a);
    outbox_free(&o);
}

TEST(an_ack_waits_for_what_was_published_before_it)
{
    outbox_t o = {0};
    const outbox_ack_t *first;
    int sub;
    outbox_append(&o, cmd("pub"), 3, -1, NULL, NULL);
    outbox_ack(&o, 0, "1-1", outbox_issued(&o)); /* its handler published "pub" */
    outbox_ack(&o, 0, "1-2", 0);                 /* skipped unread: nothing to wait for, but behind 1-1 */
    CHECK_EQ(outbox_acks_ready(&o, 10, &sub, &first), 0);
    outbox_item_t *p = outbox_cursor(&o);
    p->inflight = 1, outbox_advance(&o);
    outbox_confirmed(&o, p);
    CHECK_EQ(outbox_acks_ready(&o, 10, &sub, &first), 2);
    CHECK_EQ(sub, 0);
    CHECK_STR(first[0].id, "1-1");
    CHECK_STR(first[1].id, "1-2");
    outbox_acks_taken(&o, 2);
    CHECK_EQ(o.ack_len, 0);
    outbox_free(&o);
}

TEST(acks_go_one_stream_at_a_time_and_at_most_max)
{
    outbox_t o = {0};
    const outbox_ack_t *first;
    int sub;
    char id[16];
    for (int i = 0; i < 5; i++) snprintf(id, sizeof id, "1-%d", i), outbox_ack(&o, 0, id, 0);
    outbox_ack(&o, 1, "2-0", 0);
    CHECK_EQ(outbox_acks_ready(&o, 3, &sub, &first), 3);
    outbox_acks_taken(&o, 3);
    CHECK_EQ(outbox_acks_ready(&o, 10, &sub, &first), 2);
    CHECK_EQ(sub, 0);
    outbox_acks_taken(&o, 2);
    CHECK_EQ(outbox_acks_ready(&o, 10, &sub, &first), 1);
    CHECK_EQ(sub, 1);
    outbox_acks_taken(&o, 1);
    CHECK_EQ(outbox_acks_ready(&o, 10, &sub, &first), 0);
    outbox_free(&o);
}

TEST(a_dlq_copy_acks_its_entry_once_confirmed)
{
    outbox_t o = {0};
    const outbox_ack_t *first;
    int sub;
    int tag;
    CHECK_EQ(outbox_append(&o, cmd("xadd dlq"), 8, 2, "5-7", &tag), 0);
    CHECK_EQ(o.dlqs, 1);
    CHECK_EQ(o.pubs, 0);
    outbox_item_t *d = outbox_cursor(&o);
    CHECK(d->tag == &tag);
    CHECK_EQ(outbox_acks_ready(&o, 10, &sub, &first), 0);
    outbox_confirmed(&o, d);
    CHECK_EQ(o.dlqs, 0);
    CHECK_EQ(outbox_acks_ready(&o, 10, &sub, &first), 1);
    CHECK_EQ(sub, 2);
    CHECK_STR(first->id, "5-7");
    outbox_free(&o);
}

TEST(the_ack_queue_grows_and_compacts_without_losing_order)
{
    outbox_t o = {0};
    const outbox_ack_t *first;
    int sub;
    char id[16];
    long next = 0, taken = 0;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 900; i++) snprintf(id, sizeof id, "1-%ld", next++), outbox_ack(&o, 0, id, 0);
        size_t n = outbox_acks_ready(&o, 700, &sub, &first);
        for (size_t k = 0; k < n; k++) {
            snprintf(id, sizeof id, "1-%ld", taken + (long)k);
            if (strcmp(first[k].id, id) != 0) CHECK_STR(first[k].id, id);
        }
        outbox_acks_taken(&o, n);
        taken += (long)n;
    }
    CHECK_EQ(taken, 3500);
    CHECK_EQ(o.ack_len, 4500 - 3500);
    outbox_free(&o);
}

CHECK_MAIN()
