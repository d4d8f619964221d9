/* The command line both daemons share (SPEC section 4): -c/--config,
 * --check-config, --log-level, --version, --help, and the exit codes. */
#ifndef LH_DAEMON_H
#define LH_DAEMON_H

#include <stdbool.h>

#include "common/config/config.h"

enum { LH_EXIT_OK = 0, LH_EXIT_RUNTIME = 1, LH_EXIT_USAGE = 2 };

/* Which daemon: its name, default config path and one line on what it does. */
struct lh_daemon_desc {
    const char *prog;
    const char *default_config;
    const char *summary;
};

struct lh_daemon_opts {
    const char *config;     /* argv's or default_config */
    const char *log_level;  /* NULL: the config's */
    bool check_only;
};

/* 0 to run; otherwise the process exits: -1 means exit 0 now (after --help
 * or --version), else the exit code (LH_EXIT_USAGE). */
int lh_daemon_parse_args(const struct lh_daemon_desc *d, int argc, char **argv,
                         struct lh_daemon_opts *o);
/* Sets the log level: --log-level when given, else cfg_level. */
void lh_daemon_apply_log_level(const struct lh_daemon_opts *o, int cfg_level);
/* Prints each warning of a config load ("warning: FILE:LINE:COL: …"). */
void lh_daemon_print_warnings(const struct lh_cfg_diag *d);

#endif
