/* Helpers shared by the Check suites: a private temporary directory per
 * test (under $LH_TEST_TMP when set) and the suite runner. */
#ifndef LH_CHECK_H
#define LH_CHECK_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/base/util.h"

/* Creates a fresh directory "<LH_TEST_TMP or /tmp>/<prefix>-XXXXXX" in dir. */
static inline void lh_test_mkdtemp(char *dir, size_t cap, const char *prefix)
{
    const char *base = getenv("LH_TEST_TMP");
    if (base && *base) {
        ck_assert_int_eq(lh_mkdir_p(base), 0);
        snprintf(dir, cap, "%s/%s-XXXXXX", base, prefix);
    } else {
        snprintf(dir, cap, "/tmp/%s-XXXXXX", prefix);
    }
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* Removes a directory made by lh_test_mkdtemp, with everything in it. */
static inline void lh_test_rmrf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Runs a suite (each test forked); the exit status main() returns. */
static inline int lh_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
