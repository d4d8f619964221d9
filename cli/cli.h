/* The `loghaul` command line: one function per subcommand, called by
 * main.c with the arguments after the subcommand name (argv[0] is the
 * subcommand itself). Each returns the process exit code. */
#ifndef LH_CLI_H
#define LH_CLI_H

#include <stdio.h>

enum {
    LH_EXIT_OK = 0,
    LH_EXIT_FAIL = 1,  /* runtime failure: nothing could be reached or written */
    LH_EXIT_USAGE = 2, /* bad usage or bad query */
};

int lh_cli_search(int argc, char **argv);
void lh_cli_search_usage(FILE *out);

int lh_cli_stats(int argc, char **argv);
void lh_cli_stats_usage(FILE *out);

int lh_cli_tail(int argc, char **argv);
void lh_cli_tail_usage(FILE *out);

int lh_cli_certs(int argc, char **argv);
void lh_cli_certs_usage(FILE *out);

#endif
