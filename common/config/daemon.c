#include "common/config/daemon.h"

#include <getopt.h>
#include <stdio.h>

#include "common/base/log.h"

static void usage(const struct lh_daemon_desc *d, FILE *out)
{
    fprintf(out,
            "usage: %s [-c FILE] [--check-config] [--log-level LEVEL] [--version] [--help]\n"
            "%s\n"
            "  -c, --config FILE   configuration (default %s)\n"
            "  --check-config      validate the configuration, print \"FILE: ok\" and exit;\n"
            "                      files it names that do not exist yet are warnings\n"
            "  --log-level LEVEL   error | warn | info | debug (overrides the config)\n"
            "  --version           print the version and exit\n"
            "  -h, --help          this help\n"
            "Exit status: 0 ok, 1 runtime failure, 2 bad usage or configuration.\n"
            "Signals: SIGTERM/SIGINT stop cleanly; SIGHUP reloads the configuration\n"
            "(an invalid new one is refused and the running one carries on).\n",
            d->prog, d->summary, d->default_config);
}

int lh_daemon_parse_args(const struct lh_daemon_desc *d, int argc, char **argv,
                         struct lh_daemon_opts *o)
{
    enum { OPT_CHECK = 256, OPT_LEVEL, OPT_VERSION };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"log-level", required_argument, NULL, OPT_LEVEL},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    *o = (struct lh_daemon_opts){.config = d->default_config};
    int c;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case OPT_CHECK: o->check_only = true; break;
        case OPT_LEVEL: o->log_level = optarg; break;
        case OPT_VERSION: printf("%s %s\n", d->prog, LOGHAUL_VERSION); return -1;
        case 'h': usage(d, stdout); return -1;
        default: usage(d, stderr); return LH_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", d->prog, argv[optind]);
        usage(d, stderr);
        return LH_EXIT_USAGE;
    }
    enum lh_log_level lvl;
    if (o->log_level && lh_log_parse_level(o->log_level, &lvl) != 0) {
        fprintf(stderr, "%s: --log-level must be error, warn, info or debug\n", d->prog);
        return LH_EXIT_USAGE;
    }
    return 0;
}

void lh_daemon_apply_log_level(const struct lh_daemon_opts *o, int cfg_level)
{
    enum lh_log_level lvl = (enum lh_log_level)cfg_level;
    if (o->log_level)
        lh_log_parse_level(o->log_level, &lvl);
    lh_log_set_level(lvl);
}

void lh_daemon_print_warnings(const struct lh_cfg_diag *d)
{
    for (size_t i = 0; i < d->n_warnings; i++)
        fprintf(stderr, "warning: %s\n", d->warnings[i]);
}
