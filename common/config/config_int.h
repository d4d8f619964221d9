/* Internals shared by the config loader's files (not a public API). */
#ifndef LH_CONFIG_INT_H
#define LH_CONFIG_INT_H

#include <stddef.h>

/* Longest word the suggestion search compares. */
#define CFG_MAX_WORD 256

struct lh_cfg_diag;
struct lh_cfg_field;

/* Warns when the file a LH_CFG_F_PATH value names is missing (globs are
 * left alone) and, for LH_CFG_F_SECRET, when others can read it. */
void lh_cfg_check_file(struct lh_cfg_diag *d, const struct lh_cfg_field *f, int line, int col,
                       const char *path);

/* " (did you mean 'x'?)" or "" into buf; returns buf. */
const char *lh_cfg_hint(char *buf, size_t cap, const char *word, const char *const *cands,
                        size_t n);
/* "a, b, c" into buf, truncated if it does not fit; returns buf. */
const char *lh_cfg_join(char *buf, size_t cap, const char *const *words, size_t n);

#endif
