/* Byte-level matching for the query language: numbers and case-insensitive
 * word search. Everything here runs per record, so nothing allocates. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/query/query_int.h"

/* Long enough for any number worth comparing; longer strings are not numbers. */
#define QNUM_MAX_TEXT 63

static bool num_chars_ok(const char *s, size_t n, bool *integral)
{
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;

    if (i == n)
        return false;
    *integral = true;
    for (; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9')
            continue;
        /* Only the forms strtod reads as decimal: no hex, inf or nan. */
        if (c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-')
            return false;
        *integral = false;
    }
    return true;
}

static bool parse_integral(const char *buf, struct qnum *out)
{
    char *end;

    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno == 0 && *end == '\0') {
        out->kind = QNUM_INT;
        out->i = v;
        return true;
    }
    if (buf[0] == '-')
        return false;
    errno = 0;
    unsigned long long u = strtoull(buf, &end, 10);
    if (errno == 0 && *end == '\0') {
        out->kind = QNUM_UINT;
        out->u = u;
        return true;
    }
    return false;
}

bool qnum_parse(const char *s, size_t n, struct qnum *out)
{
    char buf[QNUM_MAX_TEXT + 1];
    bool integral;
    char *end;

    if (n == 0 || n > QNUM_MAX_TEXT || !num_chars_ok(s, n, &integral))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(out, 0, sizeof *out);
    if (integral && parse_integral(buf, out))
        return true;
    errno = 0;
    double d = strtod(buf, &end);
    if (end != buf + n || !isfinite(d))
        return false;
    out->kind = QNUM_FLOAT;
    out->d = d;
    return true;
}

/* long double holds every int64 exactly on x86-64, and is no worse than
 * double elsewhere. */
static long double qnum_ld(const struct qnum *a)
{
    switch (a->kind) {
    case QNUM_INT:
        return (long double)a->i;
    case QNUM_UINT:
        return (long double)a->u;
    default:
        return (long double)a->d;
    }
}

#define CMP3(x, y) ((x) < (y) ? -1 : (x) > (y) ? 1 : 0)

int qnum_cmp(const struct qnum *a, const struct qnum *b)
{
    if (a->kind != QNUM_FLOAT && b->kind != QNUM_FLOAT) {
        if (a->kind == QNUM_INT && b->kind == QNUM_INT)
            return CMP3(a->i, b->i);
        if (a->kind == QNUM_UINT && b->kind == QNUM_UINT)
            return CMP3(a->u, b->u);
        /* UINT is only used above INT64_MAX. */
        return a->kind == QNUM_UINT ? 1 : -1;
    }
    long double x = qnum_ld(a), y = qnum_ld(b);
    if (isnan(x) || isnan(y))
        return 2;
    return CMP3(x, y);
}

/* ---- words ---------------------------------------------------------------- */

bool qtext_is_word(unsigned char c)
{
    return c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z');
}

/* ASCII-only folding: bytes of UTF-8 sequences compare exactly. */
static inline unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

int qneedle_init(struct qneedle *nd, const char *s, size_t n, bool prefix)
{
    memset(nd, 0, sizeof *nd);
    nd->text = malloc(n + 1);
    if (nd->text == NULL)
        return LH_ENOMEM;
    for (size_t i = 0; i < n; i++)
        nd->text[i] = (char)lower((unsigned char)s[i]);
    nd->text[n] = '\0';
    nd->len = n;
    nd->prefix = prefix;
    nd->word_start = n > 0 && qtext_is_word((unsigned char)s[0]);
    nd->word_end = n > 0 && !prefix && qtext_is_word((unsigned char)s[n - 1]);
    return 0;
}

static bool ci_equal(const unsigned char *h, const unsigned char *lowered, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (lower(h[i]) != lowered[i])
            return false;
    }
    return true;
}

/* Boundaries only matter where the needle's edge is a word character: a
 * phrase like "(x)" needs none, "x" must not sit inside "xyz". */
bool qneedle_find(const struct qneedle *nd, const char *hay, size_t n, size_t from, size_t to)
{
    const unsigned char *h = (const unsigned char *)hay;
    const unsigned char *t = (const unsigned char *)nd->text;

    if (nd->len == 0)
        return true;
    if (nd->len > n)
        return false;
    if (to > n - nd->len + 1)
        to = n - nd->len + 1;
    for (size_t i = from; i < to; i++) {
        if (lower(h[i]) != t[0])
            continue;
        if (nd->word_start && i > 0 && qtext_is_word(h[i - 1]))
            continue;
        if (!ci_equal(h + i + 1, t + 1, nd->len - 1))
            continue;
        size_t end = i + nd->len;
        if (nd->word_end && end < n && qtext_is_word(h[end]))
            continue;
        return true;
    }
    return false;
}
