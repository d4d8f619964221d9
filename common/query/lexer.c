/* Tokens of the query language. A field term (`name:value`, `name:>=N`,
 * `name:~"re"`, `name:"quoted"`) is one token, so the parser never has to
 * look at spacing. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/query/query_int.h"

int qerr(struct lh_query_error *err, int pos, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL) {
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->position = pos;
    }
    return LH_EINVAL;
}

void qtok_clear(struct qtok *t)
{
    free(t->str);
    memset(t, 0, sizeof *t);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Ends a bare word or an unquoted value. */
static bool is_delim(char c)
{
    return is_space(c) || c == '(' || c == ')' || c == '"' || c == '|';
}

static int tok_copy(struct qtok *t, const char *s, size_t n)
{
    t->str = malloc(n + 1);
    if (t->str == NULL)
        return LH_ENOMEM;
    memcpy(t->str, s, n);
    t->str[n] = '\0';
    t->len = n;
    return 0;
}

/* "…" at lex->pos with \" and \\ escapes; any other backslash pair is kept as
 * written, so regexes like "\d+" need no doubling. */
static int read_quoted(struct qlex *lex, struct qtok *t)
{
    size_t open = lex->pos, i = open + 1;

    while (i < lex->len && lex->s[i] != '"')
        i += (lex->s[i] == '\\' && i + 1 < lex->len) ? 2 : 1;
    if (i >= lex->len)
        return qerr(lex->err, (int)open, "unterminated string");
    t->str = malloc(i - open);
    if (t->str == NULL)
        return LH_ENOMEM;
    size_t n = 0;
    for (size_t j = open + 1; j < i; j++) {
        char c = lex->s[j];
        if (c == '\\' && (lex->s[j + 1] == '"' || lex->s[j + 1] == '\\'))
            c = lex->s[++j];
        t->str[n++] = c;
    }
    t->str[n] = '\0';
    t->len = n;
    lex->pos = i + 1;
    return 0;
}

static size_t bare_end(const struct qlex *lex, size_t from)
{
    while (from < lex->len && !is_delim(lex->s[from]))
        from++;
    return from;
}

static int read_op(struct qlex *lex, struct qtok *t)
{
    static const struct {
        const char *text;
        enum qop op;
    } ops[] = {{"<", QOP_LT},      {"<=", QOP_LE}, {">", QOP_GT},
               {">=", QOP_GE},     {"=", QOP_NUM_EQ}, {"~", QOP_REGEX}};
    size_t start = lex->pos, end = start;

    while (end < lex->len && strchr("<>=!~", lex->s[end]) != NULL)
        end++;
    t->op = QOP_EQ;
    if (end == start)
        return 0;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (strlen(ops[i].text) == end - start &&
            memcmp(ops[i].text, lex->s + start, end - start) == 0) {
            t->op = ops[i].op;
            lex->pos = end;
            return 0;
        }
    }
    return qerr(lex->err, (int)start, "unknown operator '%.*s'", (int)(end - start),
                lex->s + start);
}

/* An unquoted value without operator: `*` (exists), `abc*` (prefix), `abc`. */
static int bare_value(struct qlex *lex, struct qtok *t, size_t end)
{
    const char *v = lex->s + lex->pos;
    size_t n = end - lex->pos;

    if (n == 0)
        return qerr(lex->err, (int)lex->pos, "expected a value after ':'");
    lex->pos = end;
    if (n == 1 && v[0] == '*') {
        t->op = QOP_EXISTS;
        return tok_copy(t, v, 0);
    }
    if (v[n - 1] == '*') {
        t->op = QOP_PREFIX;
        n--;
    }
    return tok_copy(t, v, n);
}

static int read_field(struct qlex *lex, struct qtok *t, size_t colon)
{
    int rc;

    t->kind = QT_FIELD;
    t->name = lex->s + t->pos;
    t->name_len = colon - (size_t)t->pos;
    if (t->name_len == 0)
        return qerr(lex->err, t->pos, "missing field name before ':'");
    lex->pos = colon + 1;
    if ((rc = read_op(lex, t)) != 0)
        return rc;
    t->value_pos = (int)lex->pos;
    if (lex->pos < lex->len && lex->s[lex->pos] == '"')
        return read_quoted(lex, t);
    if (t->op == QOP_REGEX)
        return qerr(lex->err, t->value_pos, "expected a quoted regex after '~'");
    size_t end = bare_end(lex, lex->pos);
    if (t->op == QOP_EQ)
        return bare_value(lex, t, end);
    if (end == lex->pos)
        return qerr(lex->err, t->value_pos, "expected a number");
    rc = tok_copy(t, lex->s + lex->pos, end - lex->pos);
    lex->pos = end;
    return rc;
}

static enum qtok_kind keyword(const char *s, size_t n)
{
    if (n == 3 && memcmp(s, "AND", 3) == 0)
        return QT_AND;
    if (n == 2 && memcmp(s, "OR", 2) == 0)
        return QT_OR;
    if (n == 3 && memcmp(s, "NOT", 3) == 0)
        return QT_NOT;
    return QT_WORD;
}

static int read_bare(struct qlex *lex, struct qtok *t)
{
    size_t start = lex->pos, end = start;

    while (end < lex->len && !is_delim(lex->s[end]) && lex->s[end] != ':')
        end++;
    if (end < lex->len && lex->s[end] == ':')
        return read_field(lex, t, end);
    lex->pos = end;
    t->kind = keyword(lex->s + start, end - start);
    if (t->kind != QT_WORD)
        return 0;
    return tok_copy(t, lex->s + start, end - start);
}

static int read_minus(struct qlex *lex, struct qtok *t)
{
    size_t next = lex->pos + 1;

    if (next >= lex->len || is_space(lex->s[next]) || lex->s[next] == ')' ||
        lex->s[next] == '|')
        return qerr(lex->err, t->pos, "empty expression after '-'");
    t->kind = QT_MINUS;
    lex->pos = next;
    return 0;
}

int qlex_next(struct qlex *lex, struct qtok *t)
{
    memset(t, 0, sizeof *t);
    while (lex->pos < lex->len && is_space(lex->s[lex->pos]))
        lex->pos++;
    t->pos = (int)lex->pos;
    if (lex->pos >= lex->len) {
        t->kind = QT_EOF;
        return 0;
    }
    switch (lex->s[lex->pos]) {
    case '(':
        t->kind = QT_LPAREN;
        break;
    case ')':
        t->kind = QT_RPAREN;
        break;
    case '|':
        t->kind = QT_PIPE;
        break;
    case '"':
        t->kind = QT_PHRASE;
        return read_quoted(lex, t);
    case '-':
        return read_minus(lex, t);
    default:
        return read_bare(lex, t);
    }
    lex->pos++;
    return 0;
}
