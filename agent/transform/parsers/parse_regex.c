#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/transform/parsers/parse.h"
#include "common/base/err.h"

struct lh_regex {
    pcre2_code *code;
    pcre2_match_data *md;
    uint32_t names, entry;
    PCRE2_SPTR table;
};

int lh_regex_new(const char *pattern, struct lh_regex **out, char *err, size_t errlen)
{
    *out = NULL;
    struct lh_regex *re = calloc(1, sizeof *re);
    if (!re)
        return LH_ENOMEM;
    int ec;
    PCRE2_SIZE eo;
    /* Lines may hold invalid UTF-8 (kept as bytes): match around it. */
    re->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                             PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(err, errlen, "regex at offset %zu: %s", (size_t)eo, (const char *)msg);
        free(re);
        return LH_EINVAL;
    }
    /* Without JIT (some platforms) the interpreter still works. */
    pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
    re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!re->md) {
        lh_regex_free(re);
        return LH_ENOMEM;
    }
    pcre2_pattern_info(re->code, PCRE2_INFO_NAMECOUNT, &re->names);
    pcre2_pattern_info(re->code, PCRE2_INFO_NAMEENTRYSIZE, &re->entry);
    pcre2_pattern_info(re->code, PCRE2_INFO_NAMETABLE, &re->table);
    *out = re;
    return LH_OK;
}

void lh_regex_free(struct lh_regex *re)
{
    if (!re)
        return;
    pcre2_match_data_free(re->md);
    pcre2_code_free(re->code);
    free(re);
}

size_t lh_regex_names(const struct lh_regex *re)
{
    return re->names;
}

bool lh_regex_match(struct lh_regex *re, const char *s, size_t n)
{
    return pcre2_match(re->code, (PCRE2_SPTR)s, n, 0, 0, re->md, NULL) >= 0;
}

int lh_parse_regex(struct lh_regex *re, struct lh_recbuilder *rb, const char *line, size_t n)
{
    if (!lh_regex_match(re, line, n))
        return LH_EINVAL;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
    for (uint32_t i = 0; i < re->names; i++) {
        PCRE2_SPTR e = re->table + (size_t)i * re->entry;
        unsigned group = ((unsigned)e[0] << 8) | e[1];
        /* An optional group that did not take part is no field. */
        if (ov[2 * group] == PCRE2_UNSET)
            continue;
        const char *name = (const char *)e + 2;
        int rc = lh_rb_set_str(rb, name, strlen(name), line + ov[2 * group],
                               ov[2 * group + 1] - ov[2 * group]);
        if (rc != 0)
            return rc;
    }
    return LH_OK;
}
