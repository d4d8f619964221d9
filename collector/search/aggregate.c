#include "collector/search/aggregate.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/search/search.h"
#include "common/base/err.h"
#include "common/codec/record.h"
#include "common/base/util.h"

/* Floor division: bucket starts for times before 1970 stay aligned. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- histogram ---------------------------------------------------------- */

struct hist {
    const struct lh_hist_req *req;
    int64_t first_s;   /* start of the first bucket */
    int64_t *counts;
};

int64_t lh_hist_buckets(const struct lh_hist_req *req)
{
    int64_t first = floor_div(floor_div(req->from_ns, LH_NS_PER_SEC), req->step_s);
    int64_t last = floor_div(floor_div(req->to_ns, LH_NS_PER_SEC), req->step_s);
    return last - first + 1;
}

static int hist_event(void *ud, const struct lh_store_event *ev)
{
    struct hist *h = ud;
    int64_t t = floor_div(ev->time_ns, LH_NS_PER_SEC);
    h->counts[(floor_div(t, h->req->step_s) * h->req->step_s - h->first_s) / h->req->step_s]++;
    return 0;
}

static json_t *hist_json(const struct hist *h, int64_t n)
{
    json_t *arr = json_array();
    for (int64_t i = 0; arr && i < n; i++) {
        json_t *b = json_pack("{s:I, s:I}", "t", (json_int_t)(h->first_s + i * h->req->step_s),
                              "count", (json_int_t)h->counts[i]);
        if (json_array_append_new(arr, b) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

int lh_hist_run(struct lh_store *store, const struct lh_hist_req *req, json_t **out)
{
    if (req->step_s < 1 || req->from_ns > req->to_ns)
        return LH_EINVAL;
    int64_t n = lh_hist_buckets(req);
    if (n > LH_HIST_MAX_BUCKETS)
        return LH_ETOOBIG;
    struct hist h = {.req = req,
                     .first_s = floor_div(floor_div(req->from_ns, LH_NS_PER_SEC), req->step_s) *
                                req->step_s};
    h.counts = calloc((size_t)n, sizeof *h.counts);
    if (!h.counts)
        return LH_ENOMEM;
    struct lh_store_scan_req sr = {.from_ns = req->from_ns, .to_ns = req->to_ns,
                                   .query = req->query, .deadline_ms = req->deadline_ms};
    int rc = lh_search_scan(store, &sr, hist_event, &h);
    if (rc == 0 && !(*out = hist_json(&h, n)))
        rc = LH_ENOMEM;
    free(h.counts);
    return rc;
}

void lh_hist_merge(json_t *mine, const json_t *theirs)
{
    size_t n = json_array_size(mine);
    if (n == 0)
        return;
    json_int_t first = json_integer_value(json_object_get(json_array_get(mine, 0), "t"));
    json_int_t step = n > 1 ? json_integer_value(json_object_get(json_array_get(mine, 1), "t")) -
                                  first : 1;
    size_t i;
    const json_t *b;
    json_array_foreach(theirs, i, b)
    {
        const json_t *t = json_object_get(b, "t"), *c = json_object_get(b, "count");
        if (!json_is_integer(t) || !json_is_integer(c) || step <= 0)
            continue;
        json_int_t off = json_integer_value(t) - first;
        if (off < 0 || off % step != 0 || (size_t)(off / step) >= n)
            continue;
        json_t *mc = json_object_get(json_array_get(mine, (size_t)(off / step)), "count");
        json_integer_set(mc, json_integer_value(mc) + json_integer_value(c));
    }
}

/* ---- stats: local groups ------------------------------------------------ */

struct stats {
    const struct lh_stats_req *req;
    json_t *groups;          /* msgpack bytes of the values -> count */
    msgpack_sbuffer key;     /* reused per event */
};

/* A field as queries see it: tag, message falling back to log, a literal
 * key, then a dotted path into nested maps. NULL when missing. */
static const msgpack_object *field_value(const struct lh_store_event *ev, const char *name,
                                         msgpack_object *tmp)
{
    if (strcmp(name, "tag") == 0) {
        tmp->type = MSGPACK_OBJECT_STR;
        tmp->via.str.ptr = ev->tag;
        tmp->via.str.size = (uint32_t)ev->tag_len;
        return tmp;
    }
    const msgpack_object *v = lh_map_get(ev->fields, name);
    if (!v && strcmp(name, "message") == 0)
        return lh_map_get(ev->fields, "log");
    if (v || !strchr(name, '.'))
        return v;
    char part[256];
    const msgpack_object *cur = ev->fields;
    for (const char *p = name; cur && *p;) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof part || cur->type != MSGPACK_OBJECT_MAP)
            return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        cur = lh_map_get(cur, part);
        p += n + (p[n] == '.');
    }
    return cur;
}

static int stats_event(void *ud, const struct lh_store_event *ev)
{
    struct stats *s = ud;
    const struct lh_stats_req *r = s->req;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->key, msgpack_sbuffer_write);
    s->key.size = 0;
    for (size_t i = 0; i < r->n_by; i++) {
        msgpack_object tmp;
        const msgpack_object *v = field_value(ev, r->by[i], &tmp);
        if ((v ? msgpack_pack_object(&pk, *v) : msgpack_pack_nil(&pk)) != 0)
            return LH_ENOMEM;
    }
    json_t *c = json_object_getn(s->groups, s->key.data ? s->key.data : "", s->key.size);
    if (c)
        return json_integer_set(c, json_integer_value(c) + 1) == 0 ? 0 : LH_ENOMEM;
    if (json_object_size(s->groups) >= LH_STATS_MAX_GROUPS)
        return LH_ETOOBIG;
    return json_object_setn_new_nocheck(s->groups, s->key.data ? s->key.data : "", s->key.size,
                                        json_integer(1)) == 0 ? 0 : LH_ENOMEM;
}

/* The JSON values of one group key. The record renderer is the one place
 * that turns msgpack into JSON (UTF-8 repair, bin, nested maps), so the
 * values are wrapped as fields "0", "1", ... of a record and read back. */
static json_t *group_values(const char *key, size_t len, size_t n_by)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n_by);
    size_t off = 0;
    json_t *vals = NULL;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    for (size_t i = 0; i < n_by; i++) {
        char name[24];
        snprintf(name, sizeof name, "%zu", i);
        if (msgpack_unpack_next(&u, key, len, &off) != MSGPACK_UNPACK_SUCCESS ||
            lh_pack_cstr(&pk, name) != 0 || msgpack_pack_object(&pk, u.data) != 0)
            goto out;
    }
    msgpack_unpacked_destroy(&u);
    msgpack_unpacked_init(&u);
    off = 0;
    if (msgpack_unpack_next(&u, sb.data, sb.size, &off) != MSGPACK_UNPACK_SUCCESS)
        goto out;
    char *text = lh_record_json("", 0, 0, &u.data, NULL);
    /* Values may hold NUL, which the renderer writes as \u0000. */
    json_t *rec = text ? json_loads(text, JSON_ALLOW_NUL, NULL) : NULL;
    free(text);
    vals = json_array();
    for (size_t i = 0; rec && vals && i < n_by; i++) {
        char name[24];
        snprintf(name, sizeof name, "%zu", i);
        json_t *v = json_object_get(rec, name);
        json_array_append(vals, v ? v : json_null());
    }
    json_decref(rec);
out:
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    return vals;
}

static json_t *stats_rows(const struct stats *s)
{
    const struct lh_stats_req *r = s->req;
    json_t *rows = json_array();
    const char *key;
    size_t klen;
    json_t *count, *tmp;
    json_object_keylen_foreach_safe(s->groups, tmp, key, klen, count)
    {
        json_t *vals = rows ? group_values(key, klen, r->n_by) : NULL;
        json_t *row = vals ? json_object() : NULL;
        for (size_t i = 0; row && i < r->n_by; i++)
            if (json_object_set(row, r->by[i], json_array_get(vals, i)) != 0)
                json_decref(row), row = NULL;
        json_decref(vals);
        if (!row || json_object_set(row, "count", count) != 0 ||
            json_array_append_new(rows, row) != 0) {
            json_decref(rows);
            return NULL;
        }
    }
    return rows;
}

int lh_stats_run(struct lh_store *store, const struct lh_stats_req *req, json_t **out)
{
    if (req->n_by > LH_STATS_MAX_FIELDS)
        return LH_EINVAL;
    struct stats s = {.req = req, .groups = json_object()};
    if (!s.groups)
        return LH_ENOMEM;
    msgpack_sbuffer_init(&s.key);
    struct lh_store_scan_req sr = {.from_ns = req->from_ns, .to_ns = req->to_ns,
                                   .query = req->query, .deadline_ms = req->deadline_ms};
    int rc = lh_search_scan(store, &sr, stats_event, &s);
    if (rc == 0 && !(*out = stats_rows(&s)))
        rc = LH_ENOMEM;
    msgpack_sbuffer_destroy(&s.key);
    json_decref(s.groups);
    return rc;
}

/* ---- stats: merging and order ------------------------------------------- */

/* The group of a row as text: its values for by, compact JSON. */
static char *row_key(const json_t *row, const char *const *by, size_t n_by)
{
    json_t *vals = json_array();
    for (size_t i = 0; vals && i < n_by; i++) {
        json_t *v = json_object_get(row, by[i]);
        json_array_append(vals, v ? v : json_null());
    }
    char *k = vals ? json_dumps(vals, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(vals);
    return k;
}

static int index_rows(json_t *rows, const char *const *by, size_t n_by, json_t *idx)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        char *k = row_key(row, by, n_by);
        int rc = k ? json_object_set(idx, k, row) : -1;
        free(k);
        if (rc != 0)
            return LH_ENOMEM;
    }
    return 0;
}

int lh_stats_merge(json_t *mine, const json_t *theirs, const char *const *by, size_t n_by)
{
    json_t *idx = json_object();
    int rc = idx ? index_rows(mine, by, n_by, idx) : LH_ENOMEM;
    size_t i;
    const json_t *row;
    json_array_foreach(theirs, i, row)
    {
        const json_t *c = json_object_get(row, "count");
        if (rc != 0)
            break;
        if (!json_is_object(row) || !json_is_integer(c))
            continue;
        char *k = row_key(row, by, n_by);
        json_t *have = k ? json_object_get(idx, k) : NULL;
        if (!k)
            rc = LH_ENOMEM;
        else if (have)
            json_integer_set(json_object_get(have, "count"),
                             json_integer_value(json_object_get(have, "count")) +
                                 json_integer_value(c));
        else if (json_array_append_new(mine, json_deep_copy(row)) != 0 ||
                 json_object_set(idx, k, json_array_get(mine, json_array_size(mine) - 1)) != 0)
            rc = LH_ENOMEM;
        free(k);
    }
    json_decref(idx);
    return rc;
}

struct sorted_row {
    json_t *row;
    json_int_t count;
    char *text;
};

static int cmp_rows(const void *a, const void *b)
{
    const struct sorted_row *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->text ? x->text : "", y->text ? y->text : "");
}

void lh_stats_finish(json_t *rows)
{
    size_t n = json_array_size(rows);
    struct sorted_row *v = n ? calloc(n, sizeof *v) : NULL;
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        v[i].row = json_incref(json_array_get(rows, i));
        v[i].count = json_integer_value(json_object_get(v[i].row, "count"));
        v[i].text = json_dumps(v[i].row, JSON_COMPACT | JSON_SORT_KEYS);
    }
    qsort(v, n, sizeof *v, cmp_rows);
    json_array_clear(rows);
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(rows, v[i].row);
        free(v[i].text);
    }
    free(v);
}
