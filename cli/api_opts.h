/* What `loghaul stats` and `loghaul tail` share: the options naming the
 * collectors and how to reach them, the token file, query strings, and
 * reading a collector's error answer. */
#ifndef LH_CLI_API_OPTS_H
#define LH_CLI_API_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/http_client.h"
#include "common/base/util.h"

#define LH_CLI_DEFAULT_SERVER "http://127.0.0.1:9800"
#define LH_CLI_MAX_SERVERS 256

enum lh_cli_format { LH_FMT_AUTO, LH_FMT_TEXT, LH_FMT_JSON };

struct lh_cli_conn {
    const char *cmd;                  /* "stats": prefixes messages */
    const char *servers[LH_CLI_MAX_SERVERS];
    size_t n_servers;
    enum lh_cli_format format;
    const char *token_file, *ca_file;
    bool insecure;
    int timeout_s;
    char *token;                      /* owned */
};

/* Handles -s, -o, --token-file, --ca, --insecure, --timeout (c as in
 * LH_CLI_CONN_LONGOPTS). 1: not one of them; 0: taken; else an exit
 * code after a message. */
int lh_cli_conn_option(struct lh_cli_conn *o, int c, const char *arg);
#define LH_CLI_CONN_LONGOPTS                                                                \
    {"server", required_argument, NULL, 's'}, {"output", required_argument, NULL, 'o'},    \
        {"token-file", required_argument, NULL, 'K'}, {"ca", required_argument, NULL, 'C'}, \
        {"insecure", no_argument, NULL, 'I'}, {"timeout", required_argument, NULL, 'W'}

/* After option parsing: default server, token file read. 0 or an exit
 * code after a message. */
int lh_cli_conn_finish(struct lh_cli_conn *o);
void lh_cli_conn_free(struct lh_cli_conn *o);
/* JSON on request, or when standard output is not a terminal. */
bool lh_cli_conn_json(const struct lh_cli_conn *o);
struct lh_http_opts lh_cli_conn_http(const struct lh_cli_conn *o, size_t max_body);

/* --since / --from / --to, shared by search and stats. */
struct lh_cli_window {
    const char *since, *from, *to;   /* from points at from_buf after --since */
    char from_buf[LH_TIME_STRLEN];
};
#define LH_CLI_WINDOW_LONGOPTS                                                          \
    {"since", required_argument, NULL, 'S'}, {"from", required_argument, NULL, 'F'},     \
        {"to", required_argument, NULL, 'T'}

/* Takes -S/-F/-T (as in LH_CLI_WINDOW_LONGOPTS): 1 when c is none of them. */
int lh_cli_window_option(struct lh_cli_window *w, int c, const char *arg);
/* Checks the times, refuses --since with --from/--to, and turns --since into
 * a start time. 0 or an exit code after a message. */
int lh_cli_window_finish(const char *cmd, struct lh_cli_window *w);

/* Prints "loghaul CMD: message" and the --help hint; returns 2. */
int lh_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* words joined by spaces (malloc'd) or NULL. */
char *lh_cli_join_words(char **words, int n);

/* Message and position of a JSON error answer (position -1 when none). */
void lh_cli_error_body(const struct lh_http_response *res, char *msg, size_t msglen,
                       long *pos);
/* Prints a query error with a caret under the byte at pos. */
void lh_cli_query_error(const char *cmd, const char *query, const char *msg, long pos);
/* Why a server did not answer 200, for stderr. */
void lh_cli_failure(const struct lh_http_response *res, char *why, size_t len);

#endif
