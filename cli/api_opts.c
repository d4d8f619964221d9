#include "cli/api_opts.h"

#include <event2/http.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/base/err.h"
#include "common/base/util.h"

#define MAX_TOKEN_FILE 4096
#define MAX_TIMEOUT_S 3600

int lh_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loghaul %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'loghaul %s --help'.\n", cmd);
    return LH_EXIT_USAGE;
}

int lh_cli_conn_option(struct lh_cli_conn *o, int c, const char *arg)
{
    int64_t ms;
    switch (c) {
    case 's':
        if (o->n_servers == LH_CLI_MAX_SERVERS)
            return lh_cli_usage_error(o->cmd, "too many servers (at most %d)",
                                      LH_CLI_MAX_SERVERS);
        o->servers[o->n_servers++] = arg;
        return 0;
    case 'o':
        if (strcmp(arg, "text") != 0 && strcmp(arg, "json") != 0)
            return lh_cli_usage_error(o->cmd, "-o must be text or json, not '%s'", arg);
        o->format = strcmp(arg, "text") == 0 ? LH_FMT_TEXT : LH_FMT_JSON;
        return 0;
    case 'K': o->token_file = arg; return 0;
    case 'C': o->ca_file = arg; return 0;
    case 'I': o->insecure = true; return 0;
    case 'W':
        if (lh_parse_duration(arg, &ms) || ms < 1000 || ms > MAX_TIMEOUT_S * 1000LL)
            return lh_cli_usage_error(o->cmd, "--timeout wants a duration from 1s to 1h, "
                                              "not '%s'", arg);
        o->timeout_s = (int)(ms / 1000);
        return 0;
    }
    return 1;
}

static int load_token(struct lh_cli_conn *o)
{
    char *data = NULL;
    size_t len = 0;
    int rc = lh_read_file(o->token_file, MAX_TOKEN_FILE, &data, &len);
    if (rc) {
        fprintf(stderr, "loghaul %s: --token-file %s: %s\n", o->cmd, o->token_file,
                lh_strerror(rc));
        return LH_EXIT_USAGE;
    }
    char *start = data, *end = data + len;
    while (start < end && strchr(" \t\r\n", *start))
        start++;
    while (end > start && strchr(" \t\r\n", end[-1]))
        end--;
    *end = '\0';
    if (start == end || strcspn(start, "\r\n") != (size_t)(end - start)) {
        fprintf(stderr, "loghaul %s: --token-file %s: want one line holding the token\n",
                o->cmd, o->token_file);
        free(data);
        return LH_EXIT_USAGE;
    }
    o->token = strdup(start);
    free(data);
    return o->token ? 0 : LH_EXIT_FAIL;
}

int lh_cli_conn_finish(struct lh_cli_conn *o)
{
    if (o->n_servers == 0)
        o->servers[o->n_servers++] = LH_CLI_DEFAULT_SERVER;
    return o->token_file ? load_token(o) : 0;
}

void lh_cli_conn_free(struct lh_cli_conn *o)
{
    free(o->token);
    o->token = NULL;
}

bool lh_cli_conn_json(const struct lh_cli_conn *o)
{
    return o->format == LH_FMT_JSON || (o->format == LH_FMT_AUTO && !isatty(STDOUT_FILENO));
}

struct lh_http_opts lh_cli_conn_http(const struct lh_cli_conn *o, size_t max_body)
{
    return (struct lh_http_opts){.ca_file = o->ca_file, .insecure = o->insecure,
                                 .timeout_s = o->timeout_s, .bearer_token = o->token,
                                 .max_body = max_body};
}

int lh_cli_window_option(struct lh_cli_window *w, int c, const char *arg)
{
    switch (c) {
    case 'S': w->since = arg; return 0;
    case 'F': w->from = arg; return 0;
    case 'T': w->to = arg; return 0;
    }
    return 1;
}

int lh_cli_window_finish(const char *cmd, struct lh_cli_window *w)
{
    int64_t from_ns = 0, to_ns = 0, ms;
    if (w->since && (w->from || w->to))
        return lh_cli_usage_error(cmd, "%s", "--since cannot be combined with --from or --to");
    if (w->since) {
        if (lh_parse_duration(w->since, &ms) || ms <= 0)
            return lh_cli_usage_error(
                cmd, "--since wants a duration such as 30s, 15m, 2h or 7d, not '%s'", w->since);
        w->from = lh_format_time(lh_now_ns() - ms * 1000000, w->from_buf);
        return 0;
    }
    if (w->from && lh_parse_time_clamp(w->from, &from_ns))
        return lh_cli_usage_error(cmd, "--from wants RFC 3339 or unix seconds, not '%s' "
                                       "(times past " LH_TIME_RANGE_TEXT " count as its ends)",
                                  w->from);
    if (w->to && lh_parse_time_clamp(w->to, &to_ns))
        return lh_cli_usage_error(cmd, "--to wants RFC 3339 or unix seconds, not '%s' "
                                       "(times past " LH_TIME_RANGE_TEXT " count as its ends)",
                                  w->to);
    if (w->from && w->to && from_ns > to_ns)
        return lh_cli_usage_error(cmd, "%s", "--from is later than --to");
    return 0;
}

char *lh_cli_join_words(char **words, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(words[i]) + 1;
    char *q = malloc(len);
    if (!q)
        return NULL;
    size_t used = 0;
    q[0] = '\0';
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(q + used, len - used, "%s%s", i ? " " : "", words[i]);
    return q;
}

void lh_cli_error_body(const struct lh_http_response *res, char *msg, size_t msglen, long *pos)
{
    json_t *obj = json_loadb(res->body, res->body_len, 0, NULL);
    const char *e = json_string_value(json_object_get(obj, "error"));
    json_t *p = json_object_get(obj, "position");
    *pos = json_is_integer(p) ? (long)json_integer_value(p) : -1;
    if (e)
        snprintf(msg, msglen, "%s", e);
    else
        snprintf(msg, msglen, "%.*s", (int)(res->body_len < 200 ? res->body_len : 200),
                 res->body);
    msg[strcspn(msg, "\r\n")] = '\0';
    json_decref(obj);
}

void lh_cli_query_error(const char *cmd, const char *query, const char *msg, long pos)
{
    fprintf(stderr, "loghaul %s: bad query: %s\n  %s\n  ", cmd, msg, query);
    long qlen = (long)strlen(query);
    for (long i = 0; i < pos && i < qlen; i++)
        if (((unsigned char)query[i] & 0xC0) != 0x80) /* one column per UTF-8 character */
            fputc(query[i] == '\t' ? '\t' : ' ', stderr);
    fputs("^\n", stderr);
}

void lh_cli_failure(const struct lh_http_response *res, char *why, size_t len)
{
    char msg[400];
    long pos;
    if (res->status == 0) {
        snprintf(why, len, "%s", res->reason ? res->reason : "no answer");
    } else if (res->status == 401) {
        snprintf(why, len, "unauthorized: use --token-file");
    } else {
        lh_cli_error_body(res, msg, sizeof msg, &pos);
        snprintf(why, len, "HTTP %d%s%s", res->status, msg[0] ? ": " : "", msg);
    }
}
