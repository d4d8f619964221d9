/* Internals of the query module shared by lexer.c, parser.c, text.c and
 * eval.c: tokens, the syntax tree, and the byte-level matchers. */
#ifndef LH_QUERY_INT_H
#define LH_QUERY_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "common/query/query.h"

/* ---- numbers ------------------------------------------------------------ */

/* A number kept exactly where it can be: integers stay integers (UINT only
 * for values above INT64_MAX), so big ids compare without float rounding. */
enum qnum_kind { QNUM_INT, QNUM_UINT, QNUM_FLOAT };

struct qnum {
    enum qnum_kind kind;
    int64_t i;
    uint64_t u;
    double d;
};

/* Parses a plain decimal number (optional sign, digits, fraction, exponent)
 * spanning all of s[0..n). No allocation. True on success. */
bool qnum_parse(const char *s, size_t n, struct qnum *out);
/* -1, 0, 1, or 2 when unordered (NaN). */
int qnum_cmp(const struct qnum *a, const struct qnum *b);

/* ---- case-insensitive word search ---------------------------------------- */

/* A word or phrase to find: ASCII-lowered once at parse time, compared
 * byte-wise against the record so matching never copies. */
struct qneedle {
    char *text; /* lowered, owned */
    size_t len;
    bool prefix;     /* `time*`: no boundary needed after the match */
    bool word_start; /* first byte is a word character: needs a boundary before */
    bool word_end;   /* last byte is a word character: needs a boundary after */
};

/* Word characters are [A-Za-z0-9_] and every byte >= 0x80 (so UTF-8 letters
 * belong to words). */
bool qtext_is_word(unsigned char c);
/* Fills nd from raw text (takes a lowered copy). 0 or LH_ENOMEM. */
int qneedle_init(struct qneedle *nd, const char *s, size_t n, bool prefix);
/* True when nd occurs in hay[0..n) starting at an offset in [from, to);
 * the bytes around it are read from all of hay, so long text can be
 * searched a window at a time. */
bool qneedle_find(const struct qneedle *nd, const char *hay, size_t n, size_t from, size_t to);

/* ---- tokens ------------------------------------------------------------- */

enum qtok_kind {
    QT_EOF,
    QT_WORD,   /* bare word; `*` alone and trailing-`*` prefixes included */
    QT_PHRASE, /* "quoted" */
    QT_FIELD,  /* name:value in any of its forms */
    QT_LPAREN,
    QT_RPAREN,
    QT_PIPE,
    QT_AND,
    QT_OR,
    QT_NOT,
    QT_MINUS,
};

enum qop {
    QOP_EXISTS, /* field:* */
    QOP_EQ,     /* field:value, field:"value" */
    QOP_PREFIX, /* field:value* */
    QOP_REGEX,  /* field:~"re" */
    QOP_NUM_EQ, /* field:=N */
    QOP_LT,
    QOP_LE,
    QOP_GT,
    QOP_GE,
};

struct qtok {
    enum qtok_kind kind;
    int pos;          /* byte offset of the token */
    const char *name; /* QT_FIELD: field name, points into the query text */
    size_t name_len;
    enum qop op;   /* QT_FIELD */
    int value_pos; /* QT_FIELD: where the value (after any operator) starts */
    char *str;     /* WORD/PHRASE text or FIELD value: decoded, owned by the token */
    size_t len;
};

struct qlex {
    const char *s;
    size_t len;
    size_t pos;
    struct lh_query_error *err;
};

/* Sets err (when not NULL) and returns LH_EINVAL. */
int qerr(struct lh_query_error *err, int pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reads the next token into *t (t->str malloc'd, freed by qtok_clear).
 * 0, LH_EINVAL (with lex->err) or LH_ENOMEM. */
int qlex_next(struct qlex *lex, struct qtok *t);
void qtok_clear(struct qtok *t);

/* ---- syntax tree -------------------------------------------------------- */

enum qnode_kind { QN_ALL, QN_TEXT, QN_FIELD, QN_AND, QN_OR, QN_NOT };

/* Fields the record carries outside its map, or with a fallback. */
enum qspecial { QS_NONE, QS_TAG, QS_TIME, QS_MESSAGE };

struct qnode {
    enum qnode_kind kind;
    /* QN_AND / QN_OR: n-ary so long chains do not deepen the tree; QN_NOT: one */
    struct qnode **kids;
    size_t n_kids;
    size_t cap_kids;
    /* QN_TEXT */
    struct qneedle needle;
    /* QN_FIELD */
    enum qspecial special;
    char *path; /* dotted path, owned */
    size_t path_len;
    enum qop op;
    char *value; /* owned; EQ / PREFIX compare these bytes */
    size_t value_len;
    bool has_num; /* value parsed as a number (for `time`: as a time, in ns) */
    struct qnum num;
    pcre2_code *re;
    int pos; /* QOP_REGEX: where the term starts in the query text */
};

#define LH_QUERY_MAX_STATS_BY 32

struct lh_query {
    struct qnode *root;
    size_t n_terms; /* words, phrases and field terms */
    bool stats;
    char **by; /* owned, n_by names */
    size_t n_by;
    /* Regex scratch and outcome, shared by all regex nodes: this is why one
     * query is matched from one thread at a time. NULL without regexes. */
    struct qregex *rx;
};

/* Matching writes here through a const query (it lives apart from the
 * query for that reason). */
struct qregex {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    const struct qnode *undecided; /* first regex whose match hit a limit */
    int undecided_rc;              /* PCRE2's error code for it */
};

void qnode_free(struct qnode *n);

#endif
