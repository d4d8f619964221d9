/* Matching a parsed query against one record. Runs once per stored record
 * during a search, so it reads the msgpack tree in place and never
 * allocates; regex scratch lives in the query. */
#include <stdio.h>
#include <string.h>

#include "common/query/query_int.h"
#include "common/codec/record.h"
#include "common/base/util.h"

/* How deep into nested maps and arrays a word search looks. */
#define QEVAL_MAX_NESTING 64

/* ---- word and phrase search ---------------------------------------------- */

static bool walk_text(const struct qneedle *nd, const msgpack_object *o, int depth)
{
    const char *s;
    size_t n;

    if (depth > QEVAL_MAX_NESTING)
        return false;
    if (lh_obj_bytes(o, &s, &n))
        return qneedle_find(nd, s, n);
    if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (walk_text(nd, &o->via.map.ptr[i].val, depth + 1))
                return true;
        }
    } else if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (walk_text(nd, &o->via.array.ptr[i], depth + 1))
                return true;
        }
    }
    return false;
}

static bool match_anywhere(const struct qneedle *nd, const struct lh_query_record *r)
{
    if (r->tag != NULL && qneedle_find(nd, r->tag, r->tag_len))
        return true;
    return r->fields != NULL && walk_text(nd, r->fields, 0);
}

/* ---- field lookup ---------------------------------------------------------- */

static const msgpack_object *map_find(const msgpack_object *map, const char *key, size_t len)
{
    const char *k;
    size_t kn;

    if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
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
static const msgpack_object *resolve(const msgpack_object *map, const char *path, size_t len)
{
    for (;;) {
        const msgpack_object *v = map_find(map, path, len), *sub = NULL;
        const char *dot = path;
        if (v != NULL)
            return v;
        while (sub == NULL) {
            dot = memchr(dot, '.', len - (size_t)(dot - path));
            if (dot == NULL)
                return NULL;
            sub = map_find(map, path, (size_t)(dot - path));
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
static bool match_regex(const struct lh_query *q, const struct qnode *n, const char *s,
                        size_t len)
{
    struct qregex *rx = q->rx;
    int rc;

    if (rx->undecided != NULL)
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

static bool match_text(const struct lh_query *q, const struct qnode *n, const char *s,
                       size_t len)
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
        return match_regex(q, n, s, len);
    default:
        return qnum_parse(s, len, &num) && cmp_ok(n->op, qnum_cmp(&num, &n->num));
    }
}

static bool match_num(const struct lh_query *q, const struct qnode *n, const struct qnum *v)
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
        return match_text(q, n, buf, (size_t)len);
    default:
        return n->has_num && cmp_ok(n->op, qnum_cmp(v, &n->num));
    }
}

static bool match_value(const struct lh_query *q, const struct qnode *n, const msgpack_object *v,
                        bool in_array)
{
    struct qnum num = {0};
    const char *s;
    size_t len;

    if (lh_obj_bytes(v, &s, &len))
        return match_text(q, n, s, len);
    switch (v->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (v->via.u64 > INT64_MAX) {
            num.kind = QNUM_UINT;
            num.u = v->via.u64;
        } else {
            num.i = (int64_t)v->via.u64;
        }
        return match_num(q, n, &num);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        num.i = v->via.i64;
        return match_num(q, n, &num);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        num.kind = QNUM_FLOAT;
        num.d = v->via.f64;
        return match_num(q, n, &num);
    case MSGPACK_OBJECT_BOOLEAN:
        return v->via.boolean ? match_text(q, n, "true", 4) : match_text(q, n, "false", 5);
    case MSGPACK_OBJECT_NIL:
        return match_text(q, n, "null", 4);
    case MSGPACK_OBJECT_ARRAY:
        /* A list matches when one of its (non-list) elements does. */
        if (n->op == QOP_EXISTS)
            return true;
        for (uint32_t i = 0; !in_array && i < v->via.array.size; i++) {
            if (match_value(q, n, &v->via.array.ptr[i], true))
                return true;
        }
        return false;
    default:
        return n->op == QOP_EXISTS;
    }
}

/* Time compares as nanoseconds, and reads as RFC 3339 text for prefixes and
 * regexes (time:2026-11-24*). */
static bool match_time(const struct lh_query *q, const struct qnode *n, int64_t ns)
{
    char buf[LH_TIME_STRLEN];
    struct qnum num = {.kind = QNUM_INT, .i = ns};

    if (n->op == QOP_PREFIX || n->op == QOP_REGEX) {
        lh_format_time(ns, buf);
        return match_text(q, n, buf, strlen(buf));
    }
    return match_num(q, n, &num);
}

static bool match_field(const struct lh_query *q, const struct qnode *n,
                        const struct lh_query_record *r)
{
    const msgpack_object *v;

    switch (n->special) {
    case QS_TAG:
        return match_text(q, n, r->tag != NULL ? r->tag : "", r->tag != NULL ? r->tag_len : 0);
    case QS_TIME:
        return match_time(q, n, r->time_ns);
    case QS_MESSAGE:
        v = map_find(r->fields, "message", 7);
        if (v == NULL)
            v = map_find(r->fields, "log", 3);
        break;
    default:
        v = resolve(r->fields, n->path, n->path_len);
        break;
    }
    return v != NULL && match_value(q, n, v, false);
}

static bool qeval(const struct lh_query *q, const struct qnode *n, const struct lh_query_record *r)
{
    switch (n->kind) {
    case QN_ALL:
        return true;
    case QN_TEXT:
        return match_anywhere(&n->needle, r);
    case QN_FIELD:
        return match_field(q, n, r);
    case QN_NOT:
        return !qeval(q, n->kids[0], r);
    case QN_AND:
        for (size_t i = 0; i < n->n_kids; i++) {
            if (!qeval(q, n->kids[i], r))
                return false;
        }
        return true;
    case QN_OR:
        for (size_t i = 0; i < n->n_kids; i++) {
            if (qeval(q, n->kids[i], r))
                return true;
        }
        return false;
    }
    return false;
}

bool lh_query_match(const struct lh_query *q, const struct lh_query_record *r)
{
    return qeval(q, q->root, r);
}
