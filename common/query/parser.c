/* Recursive-descent parser: OR of ANDs of unary terms, then an optional
 * `| stats count by …`. Precedence NOT/- > AND (also implicit) > OR. Depth
 * is counted at every NOT, '-' and '(' so no input can exhaust the stack. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/query/query_int.h"
#include "common/codec/record.h"
#include "common/base/util.h"

struct qparser {
    struct qlex lex;
    struct qtok cur;
    int depth;
    int terms;
    bool has_regex;
};

static int advance(struct qparser *p)
{
    qtok_clear(&p->cur);
    return qlex_next(&p->lex, &p->cur);
}

static struct qnode *node_new(enum qnode_kind kind)
{
    struct qnode *n = calloc(1, sizeof *n);

    if (n != NULL)
        n->kind = kind;
    return n;
}

void qnode_free(struct qnode *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n_kids; i++)
        qnode_free(n->kids[i]);
    free(n->kids);
    free(n->needle.text);
    free(n->path);
    free(n->value);
    pcre2_code_free(n->re);
    free(n);
}

/* On failure kid stays with the caller. */
static int node_add(struct qnode *n, struct qnode *kid)
{
    if (n->n_kids == n->cap_kids) {
        size_t cap = n->cap_kids ? n->cap_kids * 2 : 4;
        struct qnode **k = realloc(n->kids, cap * sizeof *k);
        if (k == NULL)
            return LH_ENOMEM;
        n->kids = k;
        n->cap_kids = cap;
    }
    n->kids[n->n_kids++] = kid;
    return 0;
}

static bool starts_unary(enum qtok_kind k)
{
    return k == QT_WORD || k == QT_PHRASE || k == QT_FIELD || k == QT_LPAREN || k == QT_NOT ||
           k == QT_MINUS;
}

static int deeper(struct qparser *p, int pos)
{
    if (p->depth >= LH_QUERY_MAX_DEPTH)
        return qerr(p->lex.err, pos, "query nested too deeply (more than %d levels)",
                    LH_QUERY_MAX_DEPTH);
    p->depth++;
    return 0;
}

/* ---- terms ------------------------------------------------------------- */

static int compile_regex(struct qparser *p, struct qnode *n, int pos)
{
    int code;
    PCRE2_SIZE off;
    PCRE2_UCHAR msg[160];

    n->re = pcre2_compile((PCRE2_SPTR)n->value, n->value_len,
                          PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
    if (n->re == NULL) {
        if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
            strcpy((char *)msg, "cannot compile");
        return qerr(p->lex.err, pos, "bad regex: %s", (const char *)msg);
    }
    /* Without JIT support pcre2_match interprets; both give the same answers. */
    pcre2_jit_compile(n->re, PCRE2_JIT_COMPLETE);
    p->has_regex = true;
    return 0;
}

/* The value of `time:` terms is a time, compared in nanoseconds. */
static int field_number(struct qparser *p, struct qnode *n, int pos)
{
    if (n->special == QS_TIME) {
        int64_t ns;
        if (lh_parse_time_clamp(n->value, &ns) != 0)
            return qerr(p->lex.err, pos, "expected a time (RFC 3339 or unix seconds)");
        n->num.kind = QNUM_INT;
        n->num.i = ns;
        n->has_num = true;
        return 0;
    }
    n->has_num = qnum_parse(n->value, n->value_len, &n->num);
    if (!n->has_num && n->op != QOP_EQ)
        return qerr(p->lex.err, pos, "expected a number");
    return 0;
}

static enum qspecial special_field(const char *s, size_t n)
{
    if (n == 3 && memcmp(s, "tag", 3) == 0)
        return QS_TAG;
    if (n == 4 && memcmp(s, "time", 4) == 0)
        return QS_TIME;
    if (n == 7 && memcmp(s, "message", 7) == 0)
        return QS_MESSAGE;
    return QS_NONE;
}

static int field_node(struct qparser *p, struct qnode *n)
{
    struct qtok *t = &p->cur;

    n->path = malloc(t->name_len + 1);
    if (n->path == NULL)
        return LH_ENOMEM;
    memcpy(n->path, t->name, t->name_len);
    n->path[t->name_len] = '\0';
    n->path_len = t->name_len;
    n->special = special_field(t->name, t->name_len);
    n->op = t->op;
    n->value = t->str;
    n->value_len = t->len;
    t->str = NULL;
    switch (n->op) {
    case QOP_REGEX:
        n->pos = t->pos;
        return compile_regex(p, n, t->value_pos);
    case QOP_EXISTS:
    case QOP_PREFIX:
        return 0;
    default:
        return field_number(p, n, t->value_pos);
    }
}

/* Builds the node for the current word, phrase or field token. */
static int term_node(struct qparser *p, struct qnode *n)
{
    struct qtok *t = &p->cur;

    if (t->kind == QT_FIELD)
        return field_node(p, n);
    if (t->kind == QT_PHRASE) {
        if (t->len == 0)
            return qerr(p->lex.err, t->pos, "empty phrase");
        return qneedle_init(&n->needle, t->str, t->len, false);
    }
    if (t->len == 1 && t->str[0] == '*') {
        n->kind = QN_ALL;
        return 0;
    }
    bool prefix = t->len > 1 && t->str[t->len - 1] == '*';
    return qneedle_init(&n->needle, t->str, prefix ? t->len - 1 : t->len, prefix);
}

static int parse_or(struct qparser *p, struct qnode **out);

static int unexpected(struct qparser *p)
{
    static const char *const what[QT_MINUS + 1] = {
        [QT_EOF] = "end of query", [QT_RPAREN] = "')'", [QT_PIPE] = "'|'",
        [QT_AND] = "AND",          [QT_OR] = "OR",
    };
    const char *w = what[p->cur.kind] ? what[p->cur.kind] : "token";

    return qerr(p->lex.err, p->cur.pos, "unexpected %s", w);
}

static int parse_group(struct qparser *p, struct qnode **out)
{
    int lpos = p->cur.pos, rc;

    if ((rc = deeper(p, lpos)) != 0 || (rc = advance(p)) != 0)
        return rc;
    if (p->cur.kind == QT_RPAREN)
        return qerr(p->lex.err, lpos, "empty parentheses");
    if ((rc = parse_or(p, out)) != 0)
        return rc;
    p->depth--;
    if (p->cur.kind != QT_RPAREN)
        rc = qerr(p->lex.err, p->cur.pos, "expected ')'");
    else
        rc = advance(p);
    if (rc != 0) {
        qnode_free(*out);
        *out = NULL;
    }
    return rc;
}

static int parse_primary(struct qparser *p, struct qnode **out)
{
    int rc;

    if (p->cur.kind == QT_LPAREN)
        return parse_group(p, out);
    if (p->cur.kind != QT_WORD && p->cur.kind != QT_PHRASE && p->cur.kind != QT_FIELD)
        return unexpected(p);
    if (++p->terms > LH_QUERY_MAX_TERMS)
        return qerr(p->lex.err, p->cur.pos, "query has too many terms (more than %d)",
                    LH_QUERY_MAX_TERMS);
    struct qnode *n = node_new(p->cur.kind == QT_FIELD ? QN_FIELD : QN_TEXT);
    if (n == NULL)
        return LH_ENOMEM;
    if ((rc = term_node(p, n)) != 0 || (rc = advance(p)) != 0) {
        qnode_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

static int parse_unary(struct qparser *p, struct qnode **out)
{
    struct qnode *n, *kid = NULL;
    int rc, pos = p->cur.pos;
    bool is_not = p->cur.kind == QT_NOT;

    if (!is_not && p->cur.kind != QT_MINUS)
        return parse_primary(p, out);
    if ((rc = deeper(p, pos)) != 0 || (rc = advance(p)) != 0)
        return rc;
    if (!starts_unary(p->cur.kind))
        return qerr(p->lex.err, pos, "empty expression after %s", is_not ? "NOT" : "'-'");
    if ((rc = parse_unary(p, &kid)) != 0)
        return rc;
    p->depth--;
    if ((n = node_new(QN_NOT)) == NULL || node_add(n, kid) != 0) {
        qnode_free(n);
        qnode_free(kid);
        return LH_ENOMEM;
    }
    *out = n;
    return 0;
}

/* Collects `first (sep next)*` into one n-ary node; `implicit` lets adjacent
 * terms join without the keyword (AND). */
static int parse_chain(struct qparser *p, enum qtok_kind sep, bool implicit,
                       int (*next)(struct qparser *, struct qnode **), struct qnode **out)
{
    struct qnode *n = NULL, *kid = NULL;
    int rc = next(p, &kid);

    while (rc == 0 && (p->cur.kind == sep || (implicit && starts_unary(p->cur.kind)))) {
        if (n == NULL && (n = node_new(sep == QT_OR ? QN_OR : QN_AND)) == NULL)
            rc = LH_ENOMEM;
        else if ((rc = node_add(n, kid)) == 0)
            kid = NULL;
        if (rc == 0 && p->cur.kind == sep) {
            int kpos = p->cur.pos;
            if ((rc = advance(p)) == 0 && !starts_unary(p->cur.kind))
                rc = qerr(p->lex.err, kpos, "empty expression after %s",
                          sep == QT_OR ? "OR" : "AND");
        }
        if (rc == 0)
            rc = next(p, &kid);
    }
    if (rc == 0 && n != NULL && (rc = node_add(n, kid)) == 0)
        kid = NULL;
    if (rc != 0) {
        qnode_free(n);
        qnode_free(kid);
        return rc;
    }
    *out = n != NULL ? n : kid;
    return 0;
}

static int parse_and(struct qparser *p, struct qnode **out)
{
    return parse_chain(p, QT_AND, true, parse_unary, out);
}

static int parse_or(struct qparser *p, struct qnode **out)
{
    return parse_chain(p, QT_OR, false, parse_and, out);
}

/* ---- | stats count by f1, f2 ------------------------------------------- */

static size_t skip_space(const struct qlex *lex, size_t i)
{
    while (i < lex->len && strchr(" \t\n\r\f\v", lex->s[i]) != NULL)
        i++;
    return i;
}

static size_t ident_end(const struct qlex *lex, size_t i)
{
    while (i < lex->len && strchr(" \t\n\r\f\v,()|\"", lex->s[i]) == NULL)
        i++;
    return i;
}

static bool ident_is(const struct qlex *lex, size_t at, size_t end, const char *word)
{
    return end - at == strlen(word) && memcmp(lex->s + at, word, end - at) == 0;
}

static int stats_add(struct lh_query *q, const struct qlex *lex, size_t at, size_t end)
{
    if (end == at)
        return qerr(lex->err, (int)at, "expected a field name");
    if (q->n_by == LH_QUERY_MAX_STATS_BY)
        return qerr(lex->err, (int)at, "too many stats fields (more than %d)",
                    LH_QUERY_MAX_STATS_BY);
    /* They become JSON keys of the answer. */
    if (!lh_utf8_valid(lex->s + at, end - at))
        return qerr(lex->err, (int)at, "a stats field name must be valid UTF-8");
    if (q->by == NULL && (q->by = calloc(LH_QUERY_MAX_STATS_BY, sizeof *q->by)) == NULL)
        return LH_ENOMEM;
    if ((q->by[q->n_by] = strndup(lex->s + at, end - at)) == NULL)
        return LH_ENOMEM;
    q->n_by++;
    return 0;
}

static int stats_by(struct lh_query *q, const struct qlex *lex, size_t i)
{
    int rc;

    for (;;) {
        size_t at = skip_space(lex, i), end = ident_end(lex, at);
        if ((rc = stats_add(q, lex, at, end)) != 0)
            return rc;
        i = skip_space(lex, end);
        if (i == lex->len)
            return 0;
        if (lex->s[i] != ',')
            return qerr(lex->err, (int)i, "expected ',' or end of query");
        i++;
    }
}

/* Parses the text after the '|' at lex->pos. */
static int parse_stats(struct lh_query *q, const struct qlex *lex)
{
    size_t at = skip_space(lex, lex->pos), end = ident_end(lex, at);

    if (!ident_is(lex, at, end, "stats"))
        return qerr(lex->err, (int)at, "unknown command after '|' (expected 'stats count')");
    at = skip_space(lex, end);
    end = ident_end(lex, at);
    if (!ident_is(lex, at, end, "count"))
        return qerr(lex->err, (int)at, "expected 'count' after 'stats'");
    at = skip_space(lex, end);
    if (at < lex->len && lex->s[at] == '(') {
        at = skip_space(lex, at + 1);
        if (at >= lex->len || lex->s[at] != ')')
            return qerr(lex->err, (int)at, "expected ')'");
        at = skip_space(lex, at + 1);
    }
    q->stats = true;
    if (at == lex->len)
        return 0;
    end = ident_end(lex, at);
    if (!ident_is(lex, at, end, "by"))
        return qerr(lex->err, (int)at, "expected 'by' or end of query");
    return stats_by(q, lex, end);
}

/* ---- API ----------------------------------------------------------------- */

static int parse_query(struct qparser *p, struct lh_query *q)
{
    int rc = advance(p);

    if (rc == 0 && p->cur.kind != QT_EOF && p->cur.kind != QT_PIPE)
        rc = parse_or(p, &q->root);
    if (rc == 0 && q->root == NULL && (q->root = node_new(QN_ALL)) == NULL)
        rc = LH_ENOMEM;
    if (rc != 0)
        return rc;
    if (p->cur.kind == QT_PIPE)
        return parse_stats(q, &p->lex);
    return p->cur.kind == QT_EOF ? 0 : unexpected(p);
}

/* Bounds on one regex match, so a pattern that backtracks catastrophically
 * costs at most a few milliseconds per record before the query fails with
 * an error naming it (lh_query_status). JIT honours the match limit and its
 * own stack; the interpreter also the depth and heap limits. */
#define QRX_MATCH_LIMIT 1000000
#define QRX_DEPTH_LIMIT 10000
#define QRX_HEAP_LIMIT_KIB 8192
#define QRX_JIT_STACK_START (32 * 1024)
#define QRX_JIT_STACK_MAX (1024 * 1024) /* ~32k repeats of a capturing group */

static void regex_scratch_free(struct qregex *rx)
{
    if (rx == NULL)
        return;
    pcre2_match_data_free(rx->md);
    pcre2_match_context_free(rx->mctx);
    pcre2_jit_stack_free(rx->jit_stack);
    free(rx);
}

static int regex_scratch(struct lh_query *q)
{
    struct qregex *rx = calloc(1, sizeof *rx);

    if (rx == NULL)
        return LH_ENOMEM;
    q->rx = rx;
    rx->md = pcre2_match_data_create(1, NULL);
    rx->mctx = pcre2_match_context_create(NULL);
    rx->jit_stack = pcre2_jit_stack_create(QRX_JIT_STACK_START, QRX_JIT_STACK_MAX, NULL);
    if (rx->md == NULL || rx->mctx == NULL || rx->jit_stack == NULL)
        return LH_ENOMEM;
    pcre2_jit_stack_assign(rx->mctx, NULL, rx->jit_stack);
    pcre2_set_match_limit(rx->mctx, QRX_MATCH_LIMIT);
    pcre2_set_depth_limit(rx->mctx, QRX_DEPTH_LIMIT);
    pcre2_set_heap_limit(rx->mctx, QRX_HEAP_LIMIT_KIB);
    return 0;
}

int lh_query_parse(const char *text, struct lh_query **out, struct lh_query_error *err)
{
    struct qparser p;
    struct lh_query *q = NULL;
    int rc;

    *out = NULL;
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (text == NULL)
        return qerr(err, 0, "no query");
    memset(&p, 0, sizeof p);
    p.lex.s = text;
    p.lex.len = strnlen(text, LH_QUERY_MAX_LEN + 1);
    p.lex.err = err;
    if (p.lex.len > LH_QUERY_MAX_LEN)
        return qerr(err, LH_QUERY_MAX_LEN, "query too long (more than %d bytes)",
                    LH_QUERY_MAX_LEN);
    if ((q = calloc(1, sizeof *q)) == NULL)
        return LH_ENOMEM;
    if ((rc = parse_query(&p, q)) != 0 || (p.has_regex && (rc = regex_scratch(q)) != 0))
        goto fail;
    q->n_terms = (size_t)p.terms;
    qtok_clear(&p.cur);
    *out = q;
    return 0;
fail:
    qtok_clear(&p.cur);
    lh_query_free(q);
    return rc;
}

void lh_query_free(struct lh_query *q)
{
    if (q == NULL)
        return;
    qnode_free(q->root);
    for (size_t i = 0; i < q->n_by; i++)
        free(q->by[i]);
    free(q->by);
    regex_scratch_free(q->rx);
    free(q);
}

bool lh_query_stats(const struct lh_query *q, const char *const **by, size_t *n_by)
{
    if (!q->stats)
        return false;
    *by = (const char *const *)q->by;
    *n_by = q->n_by;
    return true;
}

/* The regex text, cut at a character boundary to fit the message. */
static int regex_excerpt(const struct qnode *n)
{
    int len = n->value_len > 80 ? 80 : (int)n->value_len;

    while (len > 0 && len < (int)n->value_len && ((unsigned char)n->value[len] & 0xC0) == 0x80)
        len--;
    return len;
}

int lh_query_status(const struct lh_query *q, struct lh_query_error *err)
{
    const struct qnode *n = q->rx != NULL ? q->rx->undecided : NULL;
    bool backtracks;
    int len;

    if (n == NULL)
        return 0;
    if (err != NULL) {
        backtracks = q->rx->undecided_rc == PCRE2_ERROR_MATCHLIMIT;
        len = regex_excerpt(n);
        snprintf(err->msg, sizeof err->msg, "regex \"%.*s%s\" is too costly to match: %s",
                 len, n->value, (size_t)len < n->value_len ? "..." : "",
                 backtracks ? "it backtracks too much on a record (avoid nested repeats "
                              "such as (a+)+)"
                            : "it needs too much memory on a record (avoid repeating a "
                              "group over long text: [ab]* rather than (a|b)*)");
        err->position = n->pos;
    }
    return LH_ETOOBIG;
}
