/* The store interface: calls go to the implementation behind the handle. */
#include "collector/store/store.h"

#include "collector/store/store_impl.h"
#include "common/base/err.h"
#include "common/base/util.h"

int lh_store_open(const struct lh_store_opts *o, struct lh_store **out, char *err,
                  size_t errlen)
{
    const struct lh_store_ops *ops = o->impl ? o->impl : &lh_store_segments;
    return ops->open(o, out, err, errlen);
}

void lh_store_close(struct lh_store *s)
{
    if (s)
        s->ops->close(s);
}

int lh_store_append(struct lh_store *s, const struct lh_store_batch *b, lh_store_done_cb done,
                    void *ud)
{
    return s->ops->append(s, b, done, ud);
}

int lh_store_snapshot(struct lh_store *s, struct lh_store_snap **out)
{
    return s->ops->snapshot(s, out);
}

void lh_store_release(struct lh_store_snap *snap)
{
    if (snap)
        snap->store->ops->release(snap);
}

int lh_store_scan(struct lh_store_snap *snap, const struct lh_store_scan_req *req,
                  lh_store_scan_cb cb, void *ud)
{
    return snap->store->ops->scan(snap, req, cb, ud);
}

int lh_store_retain(struct lh_store *s, int64_t now_ns)
{
    return s->ops->retain(s, now_ns);
}

void lh_store_stats(const struct lh_store *s, struct lh_store_stats *st)
{
    s->ops->stats(s, st);
}

int lh_store_tail(struct lh_store *s, const struct lh_store_pos *from, lh_store_chunk_cb cb,
                  void *ud, struct lh_store_pos *end)
{
    return s->ops->tail(s, from, cb, ud, end);
}

static bool past_deadline(void *ud)
{
    const struct lh_store_filter *f = ud;
    return lh_mono_ms() > f->req->deadline_ms;
}

void lh_store_filter_init(struct lh_store_filter *f, const struct lh_store_scan_req *req)
{
    *f = (struct lh_store_filter){.req = req};
    if (req->deadline_ms) {
        f->budget.every = LH_STORE_CLOCK_COST;
        f->budget.spent = past_deadline;
        f->budget.ud = f;
    } else {
        f->budget.every = f->budget.left = UINT64_MAX;
    }
}

int lh_store_filter_test(struct lh_store_filter *f, const struct lh_store_event *ev)
{
    const struct lh_store_scan_req *r = f->req;
    if (lh_query_charge(&f->budget, LH_STORE_EVENT_COST + ev->bytes))
        return LH_ETIMEDOUT;
    if (ev->time_ns < r->from_ns || ev->time_ns > r->to_ns)
        return 0;
    const struct lh_store_cut *c = r->cut;
    if (c && c->full && !lh_store_ranks_before(r->asc, ev->time_ns, ev->seq, c->time_ns, c->seq))
        return 0;
    if (!r->query)
        return 1;
    struct lh_query_record qr = {.tag = ev->tag, .tag_len = ev->tag_len,
                                 .time_ns = ev->time_ns, .fields = ev->fields};
    return lh_query_match_within(r->query, &qr, &f->budget);
}
