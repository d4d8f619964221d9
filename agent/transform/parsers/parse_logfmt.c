#include <stdbool.h>
#include <string.h>

#include "agent/transform/parsers/parse.h"
#include "common/base/err.h"

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool key_char(char c)
{
    return (unsigned char)c > ' ' && c != '=' && c != '"';
}

/* A quoted value starting after the opening quote at *pos. Values without
 * escapes stay slices of the line; escaped ones are unescaped in scratch. */
static int quoted(struct lh_recbuilder *rb, const char *k, size_t kn, const char *s, size_t n,
                  size_t *pos)
{
    size_t start = *pos, i = start;
    bool escaped = false;
    while (i < n && s[i] != '"') {
        if (s[i] == '\\') {
            escaped = true;
            i++;
        }
        i++;
    }
    if (i >= n)
        return LH_EINVAL;
    *pos = i + 1;
    if (!escaped)
        return lh_rb_set_str(rb, k, kn, s + start, i - start);
    size_t off = rb->scratch.size;
    for (size_t j = start; j < i; j++) {
        char c = s[j];
        if (c == '\\') {
            c = s[++j];
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
        }
        if (msgpack_sbuffer_write(&rb->scratch, &c, 1) != 0)
            return LH_ENOMEM;
    }
    struct lh_rb_val v = {.kind = LH_RBV_SCRATCH, .off = off, .n = rb->scratch.size - off};
    return lh_rb_set(rb, k, kn, &v);
}

static int pair(struct lh_recbuilder *rb, const char *s, size_t n, size_t *pos)
{
    size_t k0 = *pos, i = k0;
    while (i < n && key_char(s[i]))
        i++;
    if (i == k0)
        return LH_EINVAL;
    const char *k = s + k0;
    size_t kn = i - k0;
    if (i == n || s[i] != '=') {
        if (i < n && !is_blank(s[i]))
            return LH_EINVAL;
        *pos = i;
        struct lh_rb_val t = {.kind = LH_RBV_BOOL, .num.b = true};
        return lh_rb_set(rb, k, kn, &t);
    }
    i++;
    if (i < n && s[i] == '"') {
        *pos = i + 1;
        return quoted(rb, k, kn, s, n, pos);
    }
    size_t v0 = i;
    while (i < n && !is_blank(s[i]))
        i++;
    *pos = i;
    return lh_rb_set_str(rb, k, kn, s + v0, i - v0);
}

int lh_parse_logfmt(struct lh_recbuilder *rb, const char *line, size_t n)
{
    size_t pos = 0, pairs = 0;
    bool any_value = false;
    while (pos < n) {
        while (pos < n && is_blank(line[pos]))
            pos++;
        if (pos == n)
            break;
        size_t before = pos;
        int rc = pair(rb, line, n, &pos);
        if (rc != 0)
            return rc;
        any_value |= memchr(line + before, '=', pos - before) != NULL;
        pairs++;
    }
    /* Plain prose is a run of bare keys: not logfmt. */
    return pairs && any_value ? LH_OK : LH_EINVAL;
}
