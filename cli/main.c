/* `loghaul`: the operator's command line. Dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

struct subcommand {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    void (*usage)(FILE *out);
};

static const struct subcommand subcommands[] = {
    {"search", "search one or more collectors", lh_cli_search, lh_cli_search_usage},
    {"tail", "follow new records on one or more collectors", lh_cli_tail, lh_cli_tail_usage},
    {"stats", "count records per field value ('QUERY | stats count by F')", lh_cli_stats,
     lh_cli_stats_usage},
    {"certs", "make a CA, server and client certificate for trying TLS", lh_cli_certs,
     lh_cli_certs_usage},
};

#define N_SUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

static void usage(FILE *out)
{
    fputs("usage: loghaul [--help | --version] SUBCOMMAND [ARGS...]\n"
          "\n"
          "subcommands:\n",
          out);
    for (size_t i = 0; i < N_SUBCOMMANDS; i++)
        fprintf(out, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
    fputs("  help     help SUBCOMMAND: what a subcommand does and its options\n"
          "\n"
          "Exit status: 0 ok, 1 runtime failure, 2 bad usage.\n",
          out);
}

static const struct subcommand *find(const char *name)
{
    for (size_t i = 0; i < N_SUBCOMMANDS; i++)
        if (strcmp(subcommands[i].name, name) == 0)
            return &subcommands[i];
    return NULL;
}

static int unknown(const char *name)
{
    fprintf(stderr, "loghaul: unknown subcommand '%s'\nTry 'loghaul --help'.\n", name);
    return LH_EXIT_USAGE;
}

static int help(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return LH_EXIT_OK;
    }
    if (argc > 2) {
        fputs("loghaul help: one SUBCOMMAND, please\n", stderr);
        return LH_EXIT_USAGE;
    }
    const struct subcommand *sc = find(argv[1]);
    if (!sc)
        return unknown(argv[1]);
    sc->usage(stdout);
    return LH_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return LH_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
        return help(1, argv + 1);
    if (!strcmp(cmd, "--version")) {
        printf("loghaul %s\n", LOGHAUL_VERSION);
        return LH_EXIT_OK;
    }
    if (!strcmp(cmd, "help"))
        return help(argc - 1, argv + 1);
    const struct subcommand *sc = find(cmd);
    if (!sc)
        return unknown(cmd);
    return sc->run(argc - 1, argv + 1);
}
