/* Random queries against random records: the real parser and matcher
 * (common/query) against an oracle written here from the language's
 * description (SPEC section 8, common/query/query.h), sharing none of its
 * code. Queries are generated as trees, written out as text (parentheses
 * only where NOT > AND > OR needs them, and some more), parsed by the real
 * parser and matched on msgpack; the oracle evaluates the tree itself on
 * the generator's own record model, with its own word-boundary search,
 * number reading and a small backtracking regex matcher for the regex
 * subset generated (literals, '.', [a-z] [0-9], * + ?, ^ $), where PCRE2
 * agrees by construction.
 *
 * Bounded: PROP_QUERIES queries over PROP_RECORDS records each run. The
 * seed is printed; LH_PROP_SEED=N replays a run. A mismatch prints the
 * query, the record and both answers. */
#include <check.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/codec/record.h"
#include "common/query/query.h"
#include "tests/unit/lh_check.h"

#define PROP_RECORDS 150
#define PROP_QUERIES 3000
#define DEFAULT_SEED 20261204u
#define MAX_KIDS 6

/* ---- random ------------------------------------------------------------- */

static uint64_t rng;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static bool chance(int percent)
{
    return rnd(100) < (uint32_t)percent;
}

#define PICK(a) ((a)[rnd(sizeof(a) / sizeof((a)[0]))])

/* ---- the record model --------------------------------------------------- */

enum vkind { V_STR, V_BIN, V_INT, V_FLOAT, V_LIST, V_MAP };

struct val {
    enum vkind k;
    char s[96];               /* V_STR, V_BIN (len bytes) */
    size_t len;
    int64_t i;                /* V_INT */
    double f;                 /* V_FLOAT: quarters only, so every reading agrees */
    int n;                    /* V_LIST, V_MAP */
    struct val *kids;
    char (*keys)[16];         /* V_MAP */
};

struct rec {
    char tag[16];
    int64_t time_ns;
    struct val fields;        /* V_MAP */
};

static const char *const vocab[] = {"connection", "connect", "conn", "refused", "timeout",
                                    "error", "disk", "full", "web", "db", "api", "v1",
                                    "users", "404", "200", "caf\xc3\xa9", "na\xc3\xafve",
                                    "na", "ok", "user_id", "bob", "blue"};
static const char *const tags[] = {"app.web", "app.db", "sys.kern", "App.Web", "web"};
static const char *const levels[] = {"error", "ERROR", "Error", "info", "warn"};
static const char *const hosts[] = {"web-1", "web-2", "db-10", "Web-1"};
static const char *const paths[] = {"/api/v1/users", "/api/v2/items", "/health", "/api/v10/x"};
static const char *const users[] = {"bob", "alice", "Bob"};
static const char *const ips[] = {"10.0.0.1", "10.0.0.12", "192.168.1.5"};
static const char *const colours[] = {"blue", "green", "red"};
static const char *const codes[] = {"404", "500", "200", "-3", "12.25"};
static const char *const abs_[] = {"x1", "y2"};

static void set_str(struct val *v, enum vkind k, const char *s)
{
    v->k = k;
    v->len = strlen(s);
    memcpy(v->s, s, v->len + 1);
}

static void flip_case(char *s)
{
    for (; *s; s++)
        if (chance(30) && ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            *s ^= 0x20;
}

/* Words from vocab with single spaces, some in other case, some touching
 * punctuation, '-' or '_'. */
static void sentence(char *out, size_t cap)
{
    int n = 1 + (int)rnd(5);
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        char w[32];
        snprintf(w, sizeof w, "%s", PICK(vocab));
        flip_case(w);
        const char *sep = i == 0 ? "" : chance(80) ? " " : chance(50) ? "-" : "_";
        const char *pre = chance(10) ? "(" : "", *post = chance(10) ? ")," : "";
        len += (size_t)snprintf(out + len, cap - len, "%s%s%s%s", sep, pre, w, post);
        if (len >= cap - 40)
            break;
    }
}

static struct val *map_add(struct val *m, const char *key)
{
    struct val *v = &m->kids[m->n];
    snprintf(m->keys[m->n++], sizeof m->keys[0], "%s", key);
    return v;
}

static void map_init(struct val *m, int cap)
{
    m->k = V_MAP;
    m->n = 0;
    m->kids = calloc((size_t)cap, sizeof *m->kids);
    m->keys = calloc((size_t)cap, sizeof *m->keys);
    ck_assert(m->kids && m->keys);
}

static double quarter(void)
{
    return (double)((int)rnd(400) - 100) / 4.0;
}

static void gen_record(struct rec *r)
{
    snprintf(r->tag, sizeof r->tag, "%s", PICK(tags));
    r->time_ns = (int64_t)(1700000000 + rnd(1000)) * 1000000000LL;
    struct val *f = &r->fields;
    map_init(f, 20);
    char buf[96];
    if (chance(80))
        set_str(map_add(f, "level"), V_STR, PICK(levels));
    if (chance(70))
        set_str(map_add(f, "host"), V_STR, PICK(hosts));
    if (chance(60))
        set_str(map_add(f, "path"), V_STR, PICK(paths));
    sentence(buf, sizeof buf);
    if (chance(70))
        set_str(map_add(f, "message"), V_STR, buf);
    sentence(buf, sizeof buf);
    if (chance(40))
        set_str(map_add(f, "log"), V_STR, buf);
    if (chance(70)) {
        struct val *v = map_add(f, "status");
        v->k = V_INT;
        v->i = PICK(((const int64_t[]){200, 201, 404, 500, 503}));
    }
    if (chance(50)) {
        struct val *v = map_add(f, chance(50) ? "ms" : "delta");
        v->k = V_FLOAT;
        v->f = quarter();
        if (chance(40)) {
            v->k = V_INT;
            v->i = (int64_t)rnd(60) - 20;
        }
    }
    if (chance(50))
        set_str(map_add(f, "code"), V_STR, PICK(codes));
    if (chance(30)) {
        sentence(buf, sizeof buf);
        set_str(map_add(f, "raw"), V_BIN, buf);
    }
    if (chance(40)) {
        struct val *l = map_add(f, chance(50) ? "tags" : "nums");
        bool nums = strcmp(f->keys[f->n - 1], "nums") == 0;
        l->k = V_LIST;
        l->n = 1 + (int)rnd(3);
        l->kids = calloc((size_t)l->n, sizeof *l->kids);
        for (int i = 0; i < l->n; i++) {
            if (nums) {
                l->kids[i].k = V_INT;
                l->kids[i].i = (int64_t)rnd(20) - 5;
            } else {
                set_str(&l->kids[i], V_STR, PICK(colours));
            }
        }
    }
    if (chance(50)) {
        struct val *sd = map_add(f, "sd");
        map_init(sd, 3);
        if (chance(70))
            set_str(map_add(sd, "user"), V_STR, PICK(users));
        if (chance(70)) {
            struct val *o = map_add(sd, "origin");
            map_init(o, 2);
            set_str(map_add(o, "ip"), V_STR, PICK(ips));
            sentence(buf, sizeof buf);
            set_str(map_add(o, "note"), V_STR, buf);
        }
    }
    /* a literal dotted key, a nested path of the same name, or both */
    int ab = (int)rnd(4);
    if (ab & 1)
        set_str(map_add(f, "a.b"), V_STR, PICK(abs_));
    if (ab & 2) {
        struct val *a = map_add(f, "a");
        map_init(a, 1);
        set_str(map_add(a, "b"), V_STR, PICK(abs_));
    }
}

static void free_val(struct val *v)
{
    for (int i = 0; (v->k == V_LIST || v->k == V_MAP) && i < v->n; i++)
        free_val(&v->kids[i]);
    if (v->k == V_LIST || v->k == V_MAP) {
        free(v->kids);
        free(v->keys);
    }
}

static void pack_val(msgpack_packer *pk, const struct val *v)
{
    switch (v->k) {
    case V_STR:
        msgpack_pack_str(pk, v->len);
        msgpack_pack_str_body(pk, v->s, v->len);
        break;
    case V_BIN:
        msgpack_pack_bin(pk, v->len);
        msgpack_pack_bin_body(pk, v->s, v->len);
        break;
    case V_INT:
        msgpack_pack_int64(pk, v->i);
        break;
    case V_FLOAT:
        msgpack_pack_double(pk, v->f);
        break;
    case V_LIST:
        msgpack_pack_array(pk, (size_t)v->n);
        for (int i = 0; i < v->n; i++)
            pack_val(pk, &v->kids[i]);
        break;
    case V_MAP:
        msgpack_pack_map(pk, (size_t)v->n);
        for (int i = 0; i < v->n; i++) {
            msgpack_pack_str(pk, strlen(v->keys[i]));
            msgpack_pack_str_body(pk, v->keys[i], strlen(v->keys[i]));
            pack_val(pk, &v->kids[i]);
        }
        break;
    }
}

/* ---- the oracle: text --------------------------------------------------- */

static bool word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c >= 0x80;
}

static unsigned char fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* needle (starting and ending with word bytes) at a word boundary in hay,
 * ASCII case folded; a prefix needs no boundary after it. */
static bool find_word(const char *hay, size_t n, const char *needle, bool prefix)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        if (i > 0 && word_byte((unsigned char)hay[i - 1]))
            continue;
        size_t j = 0;
        while (j < m && fold((unsigned char)hay[i + j]) == fold((unsigned char)needle[j]))
            j++;
        if (j == m && (prefix || i + m == n || !word_byte((unsigned char)hay[i + m])))
            return true;
    }
    return false;
}

static bool text_anywhere(const struct val *v, const char *needle, bool prefix)
{
    if (v->k == V_STR || v->k == V_BIN)
        return find_word(v->s, v->len, needle, prefix);
    for (int i = 0; (v->k == V_LIST || v->k == V_MAP) && i < v->n; i++)
        if (text_anywhere(&v->kids[i], needle, prefix))
            return true;
    return false;
}

/* ---- the oracle: a regex subset ----------------------------------------- */

struct atom {
    char kind;                /* 'c' literal, '.' any, '[' range */
    char c, lo, hi;
    char quant;               /* 0, '*', '+', '?' */
};

struct rx {
    struct atom a[64];
    int n;
    bool bol, eol;
};

static void rx_compile(const char *re, struct rx *x)
{
    memset(x, 0, sizeof *x);
    if (*re == '^')
        x->bol = true, re++;
    while (*re) {
        if (re[0] == '$' && re[1] == '\0') {
            x->eol = true;
            break;
        }
        struct atom *a = &x->a[x->n++];
        if (*re == '[') {
            *a = (struct atom){.kind = '[', .lo = re[1], .hi = re[3]};
            re += 5;
        } else {
            *a = (struct atom){.kind = *re == '.' ? '.' : 'c', .c = *re};
            re++;
        }
        if (*re == '*' || *re == '+' || *re == '?')
            a->quant = *re++;
    }
}

/* Bytes atom a takes at s[j] (0: none). '.' takes a whole UTF-8
 * character, as PCRE2 in UTF mode does; records hold no newline. */
static size_t step(const struct atom *a, const char *s, size_t n, size_t j)
{
    if (j >= n)
        return 0;
    unsigned char c = (unsigned char)s[j];
    if (a->kind == 'c')
        return c == (unsigned char)a->c;
    if (a->kind == '[')
        return c >= a->lo && c <= a->hi;
    size_t w = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    return j + w <= n ? w : 0;
}

static bool rx_here(const struct rx *x, int ai, const char *s, size_t n, size_t j);

/* Atom ai repeated zero or more times from j, then the rest. */
static bool rx_rep(const struct rx *x, int ai, const char *s, size_t n, size_t j)
{
    size_t w = step(&x->a[ai], s, n, j);
    return (w && rx_rep(x, ai, s, n, j + w)) || rx_here(x, ai + 1, s, n, j);
}

static bool rx_here(const struct rx *x, int ai, const char *s, size_t n, size_t j)
{
    if (ai == x->n)
        return !x->eol || j == n;
    const struct atom *a = &x->a[ai];
    size_t w = step(a, s, n, j);
    switch (a->quant) {
    case '?':
        return (w && rx_here(x, ai + 1, s, n, j + w)) || rx_here(x, ai + 1, s, n, j);
    case '*':
        return rx_rep(x, ai, s, n, j);
    case '+':
        return w && rx_rep(x, ai, s, n, j + w);
    default:
        return w && rx_here(x, ai + 1, s, n, j + w);
    }
}

static bool rx_search(const struct rx *x, const char *s, size_t n)
{
    for (size_t j = 0; j <= n; j++) {
        if (j < n && ((unsigned char)s[j] & 0xc0) == 0x80)
            continue; /* inside a character */
        if (rx_here(x, 0, s, n, j))
            return true;
        if (x->bol)
            return false;
    }
    return false;
}

/* ---- queries ------------------------------------------------------------ */

enum qk { Q_WORD, Q_PHRASE, Q_EQ, Q_QUOTED, Q_PREFIX, Q_CMP, Q_REGEX, Q_EXISTS, Q_AND, Q_OR,
          Q_NOT };

struct q {
    enum qk k;
    char field[16];
    char text[96];            /* word, phrase, value, prefix (without '*'), regex */
    char op[3];               /* Q_CMP: > >= < <= = */
    bool prefix;              /* Q_WORD ending in '*' */
    int n;
    struct q *kid[MAX_KIDS];
};

static const char *const str_fields[] = {"level", "host", "path", "message", "log", "code",
                                         "tags", "sd.user", "sd.origin.ip", "a.b", "tag",
                                         "nosuch"};
static const char *const num_fields[] = {"status", "ms", "delta", "nums", "code", "nosuch",
                                         "level"};

/* A value of field as the records hold them (sometimes in another case). */
static const char *sample(const char *field, char *buf, size_t cap)
{
    const char *v = strcmp(field, "level") == 0    ? PICK(levels)
                    : strcmp(field, "host") == 0   ? PICK(hosts)
                    : strcmp(field, "path") == 0   ? PICK(paths)
                    : strcmp(field, "code") == 0   ? PICK(codes)
                    : strcmp(field, "tags") == 0   ? PICK(colours)
                    : strcmp(field, "sd.user") == 0 ? PICK(users)
                    : strcmp(field, "sd.origin.ip") == 0 ? PICK(ips)
                    : strcmp(field, "a.b") == 0    ? PICK(abs_)
                    : strcmp(field, "tag") == 0    ? PICK(tags)
                                                   : PICK(vocab);
    snprintf(buf, cap, "%s", v);
    if (chance(15))
        flip_case(buf);
    return buf;
}

/* A regex drawn from an ASCII value: a piece of it, some bytes made '.'
 * or a class, some atoms quantified, maybe anchored. */
static void gen_regex(const char *v, char *out, size_t cap)
{
    size_t n = strlen(v), a = rnd((uint32_t)n), b = a + 1 + rnd((uint32_t)(n - a));
    size_t len = 0;
    if (chance(25))
        out[len++] = '^';
    for (size_t i = a; i < b && len + 8 < cap; i++) {
        char c = v[i];
        if (chance(12))
            out[len++] = '.';
        else if (c >= '0' && c <= '9' && chance(30))
            len += (size_t)snprintf(out + len, cap - len, "[0-9]");
        else if (c >= 'a' && c <= 'z' && chance(20))
            len += (size_t)snprintf(out + len, cap - len, "[a-z]");
        else
            out[len++] = c;
        if (chance(15))
            out[len++] = PICK(((const char[]){'*', '+', '?'}));
    }
    if (chance(25))
        out[len++] = '$';
    out[len] = '\0';
}

static struct q *gen_term(void)
{
    struct q *t = calloc(1, sizeof *t);
    ck_assert_ptr_nonnull(t);
    int r = (int)rnd(100);
    char buf[96];
    if (r < 25) {
        t->k = Q_WORD;
        snprintf(t->text, sizeof t->text, "%s", PICK(vocab));
        flip_case(t->text);
        /* cut ASCII words only: a query is UTF-8 */
        if (chance(25) && strlen(t->text) > 2 && (unsigned char)t->text[1] < 0x80 &&
            (unsigned char)t->text[2] < 0x80 && (unsigned char)t->text[3] < 0x80) {
            t->prefix = true;
            t->text[2 + rnd((uint32_t)strlen(t->text) - 2)] = '\0';
            while (!word_byte((unsigned char)t->text[strlen(t->text) - 1]))
                t->text[strlen(t->text) - 1] = '\0';
        }
    } else if (r < 33) {
        t->k = Q_PHRASE;
        snprintf(t->text, sizeof t->text, "%s %s", PICK(vocab), PICK(vocab));
        flip_case(t->text);
    } else if (r < 75) {
        snprintf(t->field, sizeof t->field, "%s", PICK(str_fields));
        sample(t->field, buf, sizeof buf);
        int k = (int)rnd(100);
        if (k < 40) {
            t->k = Q_EQ;
            snprintf(t->text, sizeof t->text, "%s", buf);
        } else if (k < 58) {
            t->k = Q_PREFIX;
            snprintf(t->text, sizeof t->text, "%.*s", 1 + (int)rnd((uint32_t)strlen(buf)), buf);
        } else if (k < 85) {
            t->k = Q_REGEX;
            /* the regex subset is ASCII (PCRE2's '.' is a whole character) */
            for (const char *p = buf; *p; p++) {
                if ((unsigned char)*p >= 0x80) {
                    snprintf(buf, sizeof buf, "web");
                    break;
                }
            }
            gen_regex(buf, t->text, sizeof t->text);
        } else if (k < 92) {
            t->k = Q_EXISTS;
        } else {
            t->k = Q_QUOTED;
            snprintf(t->field, sizeof t->field, "%s", chance(50) ? "message" : "log");
            snprintf(t->text, sizeof t->text, "%s", PICK(vocab));
        }
    } else {
        snprintf(t->field, sizeof t->field, "%s", PICK(num_fields));
        int k = (int)rnd(100);
        double x = chance(50) ? (double)PICK(((const int[]){200, 404, 500, 0, 3, -3, 12}))
                              : quarter();
        snprintf(t->text, sizeof t->text, "%g", x);
        if (k < 70) {
            t->k = Q_CMP;
            snprintf(t->op, sizeof t->op, "%s", PICK(((const char *const[]){">", ">=", "<", "<=", "="})));
        } else {
            t->k = Q_EQ;
        }
    }
    return t;
}

static struct q *gen_query(int depth)
{
    if (depth == 0 || chance(35))
        return gen_term();
    struct q *t = calloc(1, sizeof *t);
    ck_assert_ptr_nonnull(t);
    int r = (int)rnd(100);
    t->k = r < 20 ? Q_NOT : r < 60 ? Q_AND : Q_OR;
    t->n = t->k == Q_NOT ? 1 : 2 + (int)rnd(3);
    for (int i = 0; i < t->n; i++)
        t->kid[i] = gen_query(depth - 1);
    return t;
}

static void free_query(struct q *t)
{
    for (int i = 0; i < t->n; i++)
        free_query(t->kid[i]);
    free(t);
}

/* ---- writing a query out ------------------------------------------------ */

struct out {
    char s[8192];
    size_t len;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->s + o->len, sizeof o->s - o->len, fmt, ap);
    va_end(ap);
    ck_assert(n >= 0 && o->len + (size_t)n < sizeof o->s);
    o->len += (size_t)n;
}

static void render(struct out *o, const struct q *t);

static void render_kid(struct out *o, const struct q *kid, bool need_parens)
{
    bool parens = need_parens || ((kid->k == Q_AND || kid->k == Q_OR) && chance(20));
    put(o, parens ? "(" : "");
    render(o, kid);
    put(o, parens ? ")" : "");
}

static void render(struct out *o, const struct q *t)
{
    switch (t->k) {
    case Q_WORD:
        put(o, "%s%s", t->text, t->prefix ? "*" : "");
        break;
    case Q_PHRASE:
        put(o, "\"%s\"", t->text);
        break;
    case Q_EQ:
        put(o, "%s:%s", t->field, t->text);
        break;
    case Q_QUOTED:
        put(o, "%s:\"%s\"", t->field, t->text);
        break;
    case Q_PREFIX:
        put(o, "%s:%s*", t->field, t->text);
        break;
    case Q_CMP:
        put(o, "%s:%s%s", t->field, t->op, t->text);
        break;
    case Q_REGEX:
        put(o, "%s:~\"%s\"", t->field, t->text);
        break;
    case Q_EXISTS:
        put(o, "%s:*", t->field);
        break;
    case Q_NOT: {
        const struct q *k = t->kid[0];
        bool dash = k->k != Q_NOT && chance(40);
        put(o, dash ? "-" : "NOT ");
        render_kid(o, k, k->k == Q_AND || k->k == Q_OR);
        break;
    }
    case Q_AND:
    case Q_OR:
        for (int i = 0; i < t->n; i++) {
            if (i > 0)
                put(o, t->k == Q_OR ? " OR " : chance(50) ? " AND " : " ");
            render_kid(o, t->kid[i], t->k == Q_AND && t->kid[i]->k == Q_OR);
        }
        break;
    }
}

/* ---- the oracle: fields and the tree ------------------------------------ */

static const struct val *map_get(const struct val *m, const char *key, size_t len)
{
    for (int i = 0; m->k == V_MAP && i < m->n; i++)
        if (strlen(m->keys[i]) == len && memcmp(m->keys[i], key, len) == 0)
            return &m->kids[i];
    return NULL;
}

/* A literal key first, `message` falling back to `log`, then a dotted
 * path into nested maps. */
static const struct val *resolve(const struct rec *r, const char *name, struct val *tmp)
{
    if (strcmp(name, "tag") == 0) {
        set_str(tmp, V_STR, r->tag);
        return tmp;
    }
    const struct val *v = map_get(&r->fields, name, strlen(name));
    if (!v && strcmp(name, "message") == 0)
        v = map_get(&r->fields, "log", 3);
    if (v || !strchr(name, '.'))
        return v;
    const struct val *cur = &r->fields;
    for (const char *p = name; cur && *p;) {
        size_t n = strcspn(p, ".");
        cur = map_get(cur, p, n);
        p += n + (p[n] == '.');
    }
    return cur;
}

/* The whole of s as a number (decimal, optional sign and fraction). */
static bool read_number(const char *s, double *out)
{
    char *end;
    if (!*s || !(*s == '-' || *s == '+' || (*s >= '0' && *s <= '9')))
        return false;
    *out = strtod(s, &end);
    return *end == '\0';
}

static bool cmp_holds(const char *op, double a, double b)
{
    if (strcmp(op, ">") == 0)
        return a > b;
    if (strcmp(op, ">=") == 0)
        return a >= b;
    if (strcmp(op, "<") == 0)
        return a < b;
    if (strcmp(op, "<=") == 0)
        return a <= b;
    return a == b;
}

static bool value_matches(const struct q *t, const struct val *v)
{
    if (v->k == V_LIST) {
        for (int i = 0; i < v->n; i++)
            if (value_matches(t, &v->kids[i]))
                return true;
        return false;
    }
    bool num = v->k == V_INT || v->k == V_FLOAT;
    double x = v->k == V_INT ? (double)v->i : v->f, want;
    switch (t->k) {
    case Q_EQ:
        if (num)
            return read_number(t->text, &want) && x == want;
        return v->k == V_STR && strcmp(v->s, t->text) == 0;
    case Q_QUOTED:
        return v->k == V_STR && strcmp(v->s, t->text) == 0;
    case Q_PREFIX:
        return v->k == V_STR && strncmp(v->s, t->text, strlen(t->text)) == 0;
    case Q_CMP:
        if (v->k == V_STR && !read_number(v->s, &x))
            return false;
        return (num || v->k == V_STR) && read_number(t->text, &want) && cmp_holds(t->op, x, want);
    case Q_REGEX: {
        struct rx x_;
        rx_compile(t->text, &x_);
        return v->k == V_STR && rx_search(&x_, v->s, v->len);
    }
    default:
        return false;
    }
}

static bool oracle(const struct q *t, const struct rec *r)
{
    struct val tmp;
    switch (t->k) {
    case Q_WORD:
    case Q_PHRASE:
        return find_word(r->tag, strlen(r->tag), t->text, t->prefix) ||
               text_anywhere(&r->fields, t->text, t->prefix);
    case Q_NOT:
        return !oracle(t->kid[0], r);
    case Q_AND:
    case Q_OR:
        for (int i = 0; i < t->n; i++)
            if (oracle(t->kid[i], r) == (t->k == Q_OR))
                return t->k == Q_OR;
        return t->k == Q_AND;
    default: {
        const struct val *v = resolve(r, t->field, &tmp);
        return v && (t->k == Q_EXISTS || value_matches(t, v));
    }
    }
}

/* ---- the run ------------------------------------------------------------ */

struct packed {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
};

static bool never_spent(void *ud)
{
    (void)ud;
    return false;
}

START_TEST(real_matcher_agrees_with_the_oracle)
{
    const char *env = getenv("LH_PROP_SEED");
    unsigned seed = env && *env ? (unsigned)strtoul(env, NULL, 10) : DEFAULT_SEED;
    printf("test_query_property: seed %u (LH_PROP_SEED=%u replays), %d queries x %d records\n",
           seed, seed, PROP_QUERIES, PROP_RECORDS);
    fflush(stdout);
    rng = 0x9E3779B97F4A7C15ull ^ seed;
    static struct rec recs[PROP_RECORDS];
    static struct packed pk[PROP_RECORDS];
    for (int i = 0; i < PROP_RECORDS; i++) {
        gen_record(&recs[i]);
        msgpack_sbuffer_init(&pk[i].sb);
        msgpack_packer p;
        msgpack_packer_init(&p, &pk[i].sb, msgpack_sbuffer_write);
        pack_val(&p, &recs[i].fields);
        msgpack_unpacked_init(&pk[i].u);
        ck_assert_int_eq(msgpack_unpack_next(&pk[i].u, pk[i].sb.data, pk[i].sb.size, NULL),
                         MSGPACK_UNPACK_SUCCESS);
    }
    long matched = 0, checks = 0;
    for (int n = 0; n < PROP_QUERIES; n++) {
        struct q *t = gen_query(3);
        struct out text = {.len = 0};
        render(&text, t);
        struct lh_query *lq = NULL;
        struct lh_query_error qe = {.position = 0};
        ck_assert_msg(lh_query_parse(text.s, &lq, &qe) == 0, "query %d `%s` does not parse: "
                      "%s at %d", n, text.s, qe.msg, qe.position);
        for (int i = 0; i < PROP_RECORDS; i++) {
            struct lh_query_record qr = {.tag = recs[i].tag, .tag_len = strlen(recs[i].tag),
                                         .time_ns = recs[i].time_ns, .fields = &pk[i].u.data};
            bool real = lh_query_match(lq, &qr), want = oracle(t, &recs[i]);
            if (real != want) {
                char *json = lh_record_json(qr.tag, qr.tag_len, qr.time_ns, qr.fields, NULL);
                ck_abort_msg("seed %u, query %d `%s` on record %s: matcher says %s, oracle %s",
                             seed, n, text.s, json ? json : "?", real ? "match" : "no match",
                             want ? "match" : "no match");
            }
            /* A budget asked at nearly every step, and never spent, changes
             * no answer. */
            struct lh_query_budget b = {.every = 7, .spent = never_spent};
            ck_assert_int_eq(lh_query_match_within(lq, &qr, &b), real);
            matched += real;
            checks++;
        }
        ck_assert_int_eq(lh_query_status(lq, NULL), 0);
        lh_query_free(lq);
        free_query(t);
    }
    printf("test_query_property: %ld checks agree, %ld matches\n", checks, matched);
    /* Neither side may be trivially all or nothing. */
    ck_assert_int_gt(matched, checks / 20);
    ck_assert_int_lt(matched, checks - checks / 20);
    for (int i = 0; i < PROP_RECORDS; i++) {
        free_val(&recs[i].fields);
        msgpack_unpacked_destroy(&pk[i].u);
        msgpack_sbuffer_destroy(&pk[i].sb);
    }
}
END_TEST

int main(void)
{
    Suite *su = suite_create("query_property");
    TCase *tc = tcase_create("property");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, real_matcher_agrees_with_the_oracle);
    suite_add_tcase(su, tc);
    return lh_test_run(su);
}
