#include "collector/search/search.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/record.h"
#include "common/base/util.h"

/* A kept hit holds its tag and fields re-packed (the scan's memory is gone
 * by the end): a broad query replaces hits constantly, and copying msgpack
 * into a buffer the slot keeps costs far less than rendering JSON, which
 * is done for the final `limit` only. */
struct hit {
    int64_t time_ns;
    uint64_t seq;
    msgpack_sbuffer rec;       /* [tag, fields], reused when the slot is */
};

/* A bounded heap whose root is the worst kept hit, so a better candidate
 * replaces it in O(log limit) and a worse one costs one comparison. */
struct topk {
    const struct lh_store_scan_req *req;
    struct hit *h;
    size_t n, cap;
    struct lh_store_cut cut;    /* the root, once full: the store skips the rest */
};

/* True when a ranks before b in the requested order. */
static bool better(const struct topk *t, const struct hit *a, const struct hit *b)
{
    return lh_store_ranks_before(t->req->asc, a->time_ns, a->seq, b->time_ns, b->seq);
}

static void swap(struct hit *a, struct hit *b)
{
    struct hit t = *a;
    *a = *b;
    *b = t;
}

static void sift_up(struct topk *t, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!better(t, &t->h[p], &t->h[i]))
            break;
        swap(&t->h[p], &t->h[i]);
        i = p;
    }
}

static void sift_down(struct topk *t, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, worst = i;
        if (l < n && better(t, &t->h[worst], &t->h[l]))
            worst = l;
        if (r < n && better(t, &t->h[worst], &t->h[r]))
            worst = r;
        if (worst == i)
            return;
        swap(&t->h[i], &t->h[worst]);
        i = worst;
    }
}

/* The store has matched ev and checked it beats the cut. */
static int add_hit(void *ud, const struct lh_store_event *ev)
{
    struct topk *t = ud;
    bool grow = t->n < t->cap;
    struct hit *slot = grow ? &t->h[t->n] : &t->h[0];
    slot->time_ns = ev->time_ns;
    slot->seq = ev->seq;
    slot->rec.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &slot->rec, msgpack_sbuffer_write);
    if (msgpack_pack_str(&pk, ev->tag_len) != 0 ||
        msgpack_pack_str_body(&pk, ev->tag, ev->tag_len) != 0 ||
        msgpack_pack_object(&pk, *ev->fields) != 0)
        return LH_ENOMEM;
    /* msgpack's buffer starts at 8 KiB: 100,000 hits of a hundred bytes
     * would hold most of a GiB. */
    if (slot->rec.alloc > 2 * slot->rec.size) {
        char *d = realloc(slot->rec.data, slot->rec.size);
        if (d) {
            slot->rec.data = d;
            slot->rec.alloc = slot->rec.size;
        }
    }
    if (grow)
        sift_up(t, t->n++);
    else
        sift_down(t, t->n, 0);
    t->cut = (struct lh_store_cut){.full = t->n == t->cap, .time_ns = t->h[0].time_ns,
                                   .seq = t->h[0].seq};
    return 0;
}

int lh_search_scan(struct lh_store *store, const struct lh_store_scan_req *req,
                   lh_store_scan_cb cb, void *ud)
{
    struct lh_store_snap *snap;
    if (lh_store_snapshot(store, &snap) != 0)
        return LH_ENOMEM;
    int rc = lh_store_scan(snap, req, cb, ud);
    lh_store_release(snap);
    return rc;
}

/* Pops the worst to the end repeatedly: h[0..n) ends up best first. */
static void heap_sort(struct topk *t)
{
    for (size_t n = t->n; n > 1; n--) {
        swap(&t->h[0], &t->h[n - 1]);
        sift_down(t, n - 1, 0);
    }
}

/* The JSON line of a kept hit. */
static int emit_hit(const struct hit *h, lh_search_emit_cb emit, void *ud)
{
    msgpack_unpacked tag, fields;
    msgpack_unpacked_init(&tag);
    msgpack_unpacked_init(&fields);
    size_t off = 0;
    int rc = LH_ECORRUPT;
    if (msgpack_unpack_next(&tag, h->rec.data, h->rec.size, &off) != MSGPACK_UNPACK_SUCCESS ||
        msgpack_unpack_next(&fields, h->rec.data, h->rec.size, &off) != MSGPACK_UNPACK_SUCCESS ||
        tag.data.type != MSGPACK_OBJECT_STR)
        goto out;
    char *json = lh_record_json(tag.data.via.str.ptr, tag.data.via.str.size, h->time_ns,
                                &fields.data, NULL);
    rc = json ? emit(ud, json, strlen(json)) : LH_ENOMEM;
    free(json);
out:
    msgpack_unpacked_destroy(&tag);
    msgpack_unpacked_destroy(&fields);
    return rc;
}

int lh_search_run(struct lh_store *store, const struct lh_store_scan_req *req,
                  lh_search_emit_cb emit, void *ud)
{
    if (req->limit == 0 || req->limit > LH_SEARCH_MAX_LIMIT)
        return LH_EINVAL;
    struct topk t = {.req = req, .cap = req->limit};
    struct lh_store_scan_req sr = *req;
    sr.cut = &t.cut;
    t.h = calloc(t.cap, sizeof *t.h);
    if (!t.h)
        return LH_ENOMEM;
    int rc = lh_search_scan(store, &sr, add_hit, &t);
    if (rc == 0) {
        heap_sort(&t);
        for (size_t i = 0; i < t.n && rc == 0; i++)
            rc = emit_hit(&t.h[i], emit, ud);
    }
    /* A slot may hold a buffer past t.n when its last pack failed. */
    for (size_t i = 0; i < t.cap; i++)
        msgpack_sbuffer_destroy(&t.h[i].rec);
    free(t.h);
    return rc;
}
