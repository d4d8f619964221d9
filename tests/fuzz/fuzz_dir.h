/* The scratch directory of a file-writing harness (store, chunkq): made
 * once per process under $TMPDIR (tmpfs spares the fsyncs), emptied
 * between runs, removed at exit. libFuzzer's entry point takes no context,
 * so the path lives in a function-local static. */
#ifndef LH_FUZZ_DIR_H
#define LH_FUZZ_DIR_H

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/base/log.h"

static inline void lh_fuzz_dir_clear(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[PATH_MAX + 300];
    if (!d)
        abort();
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
}

static inline char *lh_fuzz_dir_path(void)
{
    static char dir[PATH_MAX];
    return dir;
}

static inline void lh_fuzz_dir_remove(void)
{
    lh_fuzz_dir_clear(lh_fuzz_dir_path());
    rmdir(lh_fuzz_dir_path());
}

/* The directory, made on the first call as $TMPDIR/NAME-XXXXXX. */
static inline const char *lh_fuzz_dir(const char *name)
{
    char *dir = lh_fuzz_dir_path();
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, PATH_MAX, "%s/%s-XXXXXX", t && *t ? t : "/tmp", name);
        if (!mkdtemp(dir))
            abort();
        atexit(lh_fuzz_dir_remove);
        lh_log_set_level(LH_LOG_ERROR);
    }
    return dir;
}

#endif
