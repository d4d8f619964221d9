/* Store helpers for the unit tests and fuzz harnesses of stores that
 * complete an append before it returns (the reference store does): an
 * append whose outcome is read back at once, and a scan of every event
 * stored now. */
#ifndef LH_STORE_TEST_H
#define LH_STORE_TEST_H

#include <stdint.h>

#include "collector/store/store.h"
#include "common/base/err.h"

static inline void lh_test_store_done(void *ud, int status)
{
    *(int *)ud = status;
}

/* The append's outcome; LH_AGAIN when it had not completed on return. */
static inline int lh_test_store_append(struct lh_store *s, const char *chunk, size_t chunk_len,
                                       int64_t recv_ns, const char *events, size_t events_len,
                                       size_t n_events)
{
    const struct lh_store_batch b = {chunk, chunk_len, recv_ns, events, events_len, n_events};
    int status = LH_AGAIN;
    int rc = lh_store_append(s, &b, lh_test_store_done, &status);
    return rc != 0 ? rc : status;
}

/* Every event, through a snapshot taken now. */
static inline int lh_test_store_scan(struct lh_store *s, lh_store_scan_cb cb, void *ud)
{
    const struct lh_store_scan_req req = {.from_ns = INT64_MIN, .to_ns = INT64_MAX};
    struct lh_store_snap *snap;
    int rc = lh_store_snapshot(s, &snap);
    if (rc != 0)
        return rc;
    rc = lh_store_scan(snap, &req, cb, ud);
    lh_store_release(snap);
    return rc;
}

#endif
