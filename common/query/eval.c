/* Matching a parsed query against one record. Runs once per stored record
 * during a search, so it reads the msgpack tree in place and never
 * allocates; regex scratch lives in the query. Work is charged to a budget
 * as it is done (lh_query_budget), and once it is spent every step that
 * reads the record returns at its first charge, so the match unwinds at
 * once: what is left costs at most a step per term. */
#include <stdio.h>
#include <string.h>

#include "common/base/err.h"
#include "common/query/query_int.h"
#include "common/codec/record.h"
#include "common/base/util.h"

/* How deep into nested maps and arrays a word search looks. */
#define QEVAL_MAX_NESTING 64

/* Units charged: a byte of text searched is one; a term (all of them
 * charged once per record), a map key or list element looked at costs
 * about as much as a few bytes; a regex run is charged what the match
 * limit lets it cost at worst (milliseconds), so the budget is asked at
 * least every few runs. */
#define QCOST_ITEM 8
#define QCOST_REGEX (64 * 1024)
/* Long text is searched this many bytes at a time, so one long value does
 * not run on unasked. */
#define QSCAN_WINDOW (64 * 1024)

/* One match: the query and the budget it runs within. */
struct qctx {
    const struct lh_query *q;
    struct lh_query_budget *b;
};

bool lh_query_budget_poll(struct lh_query_budget *b)
{
    if (!b->stopped)
        b->stopped = b->spent != NULL && b->spent(b->ud);
    b->left = b->stopped ? 0 : b->every;
    return b->stopped;
}

/* ---- word and phrase search ---------------------------------------------- */

/* Text longer than a window, a window at a time. */
static bool find_long_text(const struct qctx *c, const struct qneedle *nd, const char *s,
                           size_t n)
{
    size_t at = 0;

    for (; n - at > QSCAN_WINDOW; at += QSCAN_WINDOW) {
        if (lh_query_charge(c->b, QSCAN_WINDOW))
            return false;
        if (qneedle_find(nd, s, n, at, at + QSCAN_WINDOW))
            return true;
    }
    return !lh_query_charge(c->b, n - at) && qneedle_find(nd, s, n, at, n);
}

static inline bool find_text(const struct qctx *c, const struct qneedle *nd, const char *s,
                             size_t n)
{
    if (n > QSCAN_WINDOW)
        return find_long_text(c, nd, s, n);
    return !lh_query_charge(c->b, n) && qneedle_find(nd, s, n, 0, n);
}

static bool walk_text(const struct qctx *c, const struct qneedle *nd, const msgpack_object *o,
                      int depth)
{
    const char *s;
    size_t n;

    if (depth > QEVAL_MAX_NESTING)
        return false;
    if (lh_obj_bytes(o, &s, &n))
        return find_text(c, nd, s, n);
    if (o->type == MSGPACK_OBJECT_MAP) {
        if (lh_query_charge(c->b, (uint64_t)QCOST_ITEM * o->via.map.size))
            return false;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (walk_text(c, nd, &o->via.map.ptr[i].val, depth + 1))
                return true;
        }
    } else if (o->type == MSGPACK_OBJECT_ARRAY) {
        if (lh_query_charge(c->b, (uint64_t)QCOST_ITEM * o->via.array.size))
            return false;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (walk_text(c, nd, &o->via.array.ptr[i], depth + 1))
                return true;
        }
    }
    return false;
}

static bool match_anywhere(const struct qctx *c, const struct qneedle *nd,
                           const struct lh_query_record *r)
{
    if (r->tag != NULL && find_text(c, nd, r->tag, r->tag_len))
        return true;
    return r->fields != NULL && walk_text(c, nd, r->fields, 0);
}

/* ---- field lookup ---------------------------------------------------------- */

static const msgpack_object *map_find(const struct qctx *c, const msgpack_object *map,
                                      const char *key, size_t len)
{
    const char *k;
    size_t kn;

    if (map == NULL || map->type != MSGPACK_OBJECT_MAP ||
        lh_query_charge(c->b, (uint64_t)QCOST_ITEM * map->via.map.size))
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (lh_obj_bytes(&kv->key, &k, &kn) && kn == len && memcmp(k, key, len) == 0)
            return &kv->val;
    }
    return NULL;
}

/* The literal key first; otherwise descend at the first dot whose prefix
 * names a nested map ("sd.origin.ip" → sd → "origin.ip" → …). Never
 * backtracks, so the cost stays linear in the path. */
static const msgpack_object *resolve(const struct qctx *c, const msgpack_object *map,
                                     const char *path, size_t len)
{
    for (;;) {
        const msgpack_object *v = map_find(c, map, path, len), *sub = NULL;
        const char *dot = path;
        if (v != NULL)
            return v;
        while (sub == NULL) {
            dot = memchr(dot, '.', len - (size_t)(dot - path));
            if (dot == NULL)
                return NULL;
            sub = map_find(c, map, path, (size_t)(dot - path));
            if (sub != NULL && sub->type != MSGPACK_OBJECT_MAP)
                sub = NULL;
            dot++;
        }
        len -= (size_t)(dot - path);
        path = dot;
        map = sub;
    }
}

/* ---- value tests ----------------------------------------------------------- */

static bool cmp_ok(enum qop op, int c)
{
    switch (op) {
    case QOP_EQ:
    case QOP_NUM_EQ:
        return c == 0;
    case QOP_LT:
        return c == -1;
    case QOP_LE:
        return c == -1 || c == 0;
    case QOP_GT:
        return c == 1;
    case QOP_GE:
        return c == 1 || c == 0;
    default:
        return false;
    }
}

/* A match PCRE2 gave up on is remembered, not taken for a non-match: the
 * answer would be wrong. Once one is, no regex runs again for this query,
 * so a doomed query stops costing anything. */
static bool match_regex(const struct qctx *c, const struct qnode *n, const char *s, size_t len)
{
    struct qregex *rx = c->q->rx;
    int rc;

    if (rx->undecided != NULL || lh_query_charge(c->b, QCOST_REGEX + len))
        return false;
    rc = pcre2_match(n->re, (PCRE2_SPTR)s, len, 0, 0, rx->md, rx->mctx);
    if (rc >= 0)
        return true;
    if (rc != PCRE2_ERROR_NOMATCH) {
        rx->undecided = n;
        rx->undecided_rc = rc;
    }
    return false;
}

static bool match_text(const struct qctx *c, const struct qnode *n, const char *s, size_t len)
{
    struct qnum num;

    switch (n->op) {
    case QOP_EXISTS:
        return true;
    case QOP_EQ:
        return len == n->value_len && memcmp(s, n->value, len) == 0;
    case QOP_PREFIX:
        return len >= n->value_len && memcmp(s, n->value, n->value_len) == 0;
    case QOP_REGEX:
        return match_regex(c, n, s, len);
    default:
        return qnum_parse(s, len, &num) && cmp_ok(n->op, qnum_cmp(&num, &n->num));
    }
}

static bool match_num(const struct qctx *c, const struct qnode *n, const struct qnum *v)
{
    char buf[24];
    int len;

    switch (n->op) {
    case QOP_EXISTS:
        return true;
    case QOP_PREFIX:
    case QOP_REGEX:
        /* Integers read as their decimal digits (status:5*); floats have no
         * single spelling to match against. */
        if (v->kind == QNUM_FLOAT)
            return false;
        len = v->kind == QNUM_INT ? snprintf(buf, sizeof buf, "%lld", (long long)v->i)
                                  : snprintf(buf, sizeof buf, "%llu", (unsigned long long)v->u);
        return match_text(c, n, buf, (size_t)len);
    default:
        return n->has_num && cmp_ok(n->op, qnum_cmp(v, &n->num));
    }
}

static bool match_value(const struct qctx *c, const struct qnode *n, const msgpack_object *v,
                        bool in_array)
{
    struct qnum num = {0};
    const char *s;
    size_t len;

    if (lh_obj_bytes(v, &s, &len))
        return match_text(c, n, s, len);
    switch (v->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (v->via.u64 > INT64_MAX) {
            num.kind = QNUM_UINT;
            num.u = v->via.u64;
        } else {
            num.i = (int64_t)v->via.u64;
        }
        return match_num(c, n, &num);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        num.i = v->via.i64;
        return match_num(c, n, &num);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        num.kind = QNUM_FLOAT;
        num.d = v->via.f64;
        return match_num(c, n, &num);
    case MSGPACK_OBJECT_BOOLEAN:
        return v->via.boolean ? match_text(c, n, "true", 4) : match_text(c, n, "false", 5);
    case MSGPACK_OBJECT_NIL:
        return match_text(c, n, "null", 4);
    case MSGPACK_OBJECT_ARRAY:
        /* A list matches when one of its (non-list) elements does. */
        if (n->op == QOP_EXISTS)
            return true;
        if (in_array || lh_query_charge(c->b, (uint64_t)QCOST_ITEM * v->via.array.size))
            return false;
        for (uint32_t i = 0; i < v->via.array.size; i++) {
            if (match_value(c, n, &v->via.array.ptr[i], true))
                return true;
        }
        return false;
    default:
        return n->op == QOP_EXISTS;
    }
}

/* Time compares as nanoseconds, and reads as RFC 3339 text for prefixes and
 * regexes (time:2026-11-24*). */
static bool match_time(const struct qctx *c, const struct qnode *n, int64_t ns)
{
    char buf[LH_TIME_STRLEN];
    struct qnum num = {.kind = QNUM_INT, .i = ns};

    if (n->op == QOP_PREFIX || n->op == QOP_REGEX) {
        lh_format_time(ns, buf);
        return match_text(c, n, buf, strlen(buf));
    }
    return match_num(c, n, &num);
}

static bool match_field(const struct qctx *c, const struct qnode *n,
                        const struct lh_query_record *r)
{
    const msgpack_object *v;

    switch (n->special) {
    case QS_TAG:
        return match_text(c, n, r->tag != NULL ? r->tag : "", r->tag != NULL ? r->tag_len : 0);
    case QS_TIME:
        return match_time(c, n, r->time_ns);
    case QS_MESSAGE:
        v = map_find(c, r->fields, "message", 7);
        if (v == NULL)
            v = map_find(c, r->fields, "log", 3);
        break;
    default:
        v = resolve(c, r->fields, n->path, n->path_len);
        break;
    }
    return v != NULL && match_value(c, n, v, false);
}

static bool qeval(const struct qctx *c, const struct qnode *n, const struct lh_query_record *r)
{
    switch (n->kind) {
    case QN_ALL:
        return true;
    case QN_TEXT:
        return match_anywhere(c, &n->needle, r);
    case QN_FIELD:
        return match_field(c, n, r);
    case QN_NOT:
        return !qeval(c, n->kids[0], r);
    case QN_AND:
        for (size_t i = 0; i < n->n_kids; i++) {
            if (!qeval(c, n->kids[i], r))
                return false;
        }
        return true;
    case QN_OR:
        for (size_t i = 0; i < n->n_kids; i++) {
            if (qeval(c, n->kids[i], r))
                return true;
        }
        return false;
    }
    return false;
}

int lh_query_match_within(const struct lh_query *q, const struct lh_query_record *r,
                          struct lh_query_budget *b)
{
    const struct qctx c = {.q = q, .b = b};
    bool hit = !lh_query_charge(b, (uint64_t)QCOST_ITEM * q->n_terms) && qeval(&c, q->root, r);

    if (b->stopped)
        return LH_ETIMEDOUT;
    return hit ? 1 : lh_query_status(q, NULL);
}

bool lh_query_match(const struct lh_query *q, const struct lh_query_record *r)
{
    struct lh_query_budget none = {.every = UINT64_MAX, .left = UINT64_MAX};
    const struct qctx c = {.q = q, .b = &none};

    return qeval(&c, q->root, r);
}
