/* Config diagnostics: FILE:LINE:COL messages, warnings, and the nearest-key
 * suggestions that make an unknown key easy to fix. */
#include "common/config/config.h"
#include "common/config/config_int.h"
#include "common/base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- diagnostics ---------------------------------------------------- */

__attribute__((format(printf, 6, 0))) static void
vformat(struct lh_cfg_diag *d, char *buf, size_t cap, int line, int col, const char *fmt,
        va_list ap)
{
    const char *file = d->file ? d->file : "<config>";
    int n = line > 0 ? snprintf(buf, cap, "%s:%d:%d: ", file, line, col)
                     : snprintf(buf, cap, "%s: ", file);
    if (n < 0 || (size_t)n >= cap)
        return;
    vsnprintf(buf + n, cap - (size_t)n, fmt, ap);
}

int lh_cfg_error(struct lh_cfg_diag *d, int line, int col, const char *fmt, ...)
{
    if (d->error[0] != '\0')
        return LH_ECONFIG;
    va_list ap;
    va_start(ap, fmt);
    vformat(d, d->error, sizeof d->error, line, col, fmt, ap);
    va_end(ap);
    return LH_ECONFIG;
}

void lh_cfg_warn(struct lh_cfg_diag *d, int line, int col, const char *fmt, ...)
{
    if (d->n_warnings >= LH_CFG_MAX_WARNINGS)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vformat(d, buf, sizeof buf, line, col, fmt, ap);
    va_end(ap);
    char *w = strdup(buf);
    if (w)
        d->warnings[d->n_warnings++] = w;
}

void lh_cfg_diag_free(struct lh_cfg_diag *d)
{
    for (size_t i = 0; i < d->n_warnings && i < LH_CFG_MAX_WARNINGS; i++) {
        free(d->warnings[i]);
        d->warnings[i] = NULL;
    }
    d->n_warnings = 0;
}

/* ---- suggestions ---------------------------------------------------- */

static size_t levenshtein(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[CFG_MAX_WORD + 1];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *lh_cfg_nearest(const char *word, const char *const *candidates, size_t n)
{
    size_t len = strlen(word);
    if (len > CFG_MAX_WORD)
        return NULL;
    size_t limit = len / 3 > 2 ? len / 3 : 2;
    const char *best = NULL;
    size_t best_d = limit + 1;
    for (size_t i = 0; i < n; i++) {
        if (!candidates[i] || strlen(candidates[i]) > CFG_MAX_WORD)
            continue;
        size_t dist = levenshtein(word, candidates[i]);
        if (dist < best_d) {
            best_d = dist;
            best = candidates[i];
        }
    }
    return best;
}

/* " (did you mean 'x'?)" or "" into buf. */
const char *lh_cfg_hint(char *buf, size_t cap, const char *word, const char *const *cands,
                        size_t n)
{
    const char *near = lh_cfg_nearest(word, cands, n);
    if (near)
        snprintf(buf, cap, " (did you mean '%s'?)", near);
    else
        buf[0] = '\0';
    return buf;
}

/* "a, b, c" into buf, truncated if it does not fit. */
const char *lh_cfg_join(char *buf, size_t cap, const char *const *words, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < cap; i++) {
        int w = snprintf(buf + off, cap - off, "%s%s", i ? ", " : "", words[i]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    return buf;
}
