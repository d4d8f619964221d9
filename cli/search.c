/* `loghaul search`: one query fanned out to every collector named with -s,
 * answers merged by time, --limit applied to the merged result. */
#include <getopt.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>

#include "cli/cli.h"
#include "cli/http_client.h"
#include "common/err.h"
#include "common/util.h"

#define DEFAULT_SERVER "http://127.0.0.1:9800"
#define DEFAULT_LIMIT 100
#define MAX_LIMIT 1000000
#define MAX_SERVERS 256
#define MAX_TOKEN_FILE 4096
#define MAX_QUERY 65536
#define MAX_BODY ((size_t)1 << 30)
#define DEFAULT_TIMEOUT_S 30
#define MAX_TIMEOUT_S 3600

enum out_format { OUT_AUTO, OUT_TEXT, OUT_JSON };

struct search_opts {
    const char *servers[MAX_SERVERS];
    size_t n_servers;
    char *query; /* the QUERY words joined by spaces; owned */
    long limit;
    bool asc;
    enum out_format format;
    const char *since, *from, *to;
    char from_buf[LH_TIME_STRLEN];
    const char *token_file, *ca_file;
    bool insecure;
    int timeout_s;
    char *token; /* trimmed contents of token_file; owned */
};

/* One record line of one server's answer. line is owned by the record. */
struct rec {
    int64_t ns;
    size_t server, seq;
    char *line;
    size_t len;
};

struct server {
    struct search_ctx *ctx;
    const char *url;
    bool done, failed;
    char reason[512];
    bool bad_query; /* answered 400: the query is at fault, not the server */
    char query_error[512];
    long query_pos;
};

struct search_ctx {
    struct event_base *base;
    size_t pending;
    struct server *servers;
    size_t n_servers;
    struct rec *recs;
    size_t n_recs, cap_recs;
    char **failed; /* names reported failed, ours and the servers' own */
    size_t n_failed;
    bool oom;
};

void lh_cli_search_usage(FILE *out)
{
    fputs("usage: loghaul search [options] QUERY...\n"
          "\n"
          "Searches one or more collectors and prints the matching records, newest\n"
          "first. QUERY may be several words; they are joined with spaces. An empty\n"
          "query ('') matches everything. Put '--' before a query that starts with '-'.\n"
          "\n"
          "options:\n"
          "  -s, --server URL     collector API (http:// or https://); repeat to search\n"
          "                       several at once and merge by time\n"
          "                       (default " DEFAULT_SERVER ")\n"
          "      --since DUR      records of the last DUR (30s, 15m, 2h, 7d)\n"
          "      --from T         records at or after T (RFC 3339 or unix seconds)\n"
          "      --to T           records before T\n"
          "      --limit N        at most N records in all (default 100)\n"
          "      --order ORDER    desc (newest first, default) or asc\n"
          "  -o, --output FMT     text: one readable line per record,\n"
          "                         TIME HOST TAG MESSAGE key=value...\n"
          "                       json: the records as NDJSON, as the collectors send them\n"
          "                       (default: text on a terminal, json otherwise)\n"
          "      --token-file F   send \"Authorization: Bearer <contents of F>\"\n"
          "      --ca FILE        CA bundle to verify https collectors (default: system)\n"
          "      --insecure       do not verify https collectors' certificates\n"
          "      --timeout DUR    give up on a collector after DUR (default 30s)\n"
          "  -h, --help           this help\n"
          "\n"
          "A collector that cannot answer is reported on standard error and, in json,\n"
          "by a last line {\"partial\": true, \"failed\": [URL, ...]}; the others still\n"
          "answer. Exit status: 0 ok, 1 no collector answered, 2 bad usage or query.\n",
          out);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loghaul search: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'loghaul search --help'.\n", stderr);
    return LH_EXIT_USAGE;
}

static char *join_words(char **words, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(words[i]) + 1;
    char *q = malloc(len);
    if (!q)
        return NULL;
    q[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(q, " ");
        strcat(q, words[i]);
    }
    return q;
}

static int parse_limit(const char *s, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 1 || v > MAX_LIMIT)
        return LH_EINVAL;
    *out = v;
    return 0;
}

static int parse_option(struct search_opts *o, int c, const char *arg)
{
    int64_t ms;
    switch (c) {
    case 's':
        if (o->n_servers == MAX_SERVERS)
            return usage_error("too many servers (at most %d)", MAX_SERVERS);
        o->servers[o->n_servers++] = arg;
        return 0;
    case 'S': o->since = arg; return 0;
    case 'F': o->from = arg; return 0;
    case 'T': o->to = arg; return 0;
    case 'K': o->token_file = arg; return 0;
    case 'C': o->ca_file = arg; return 0;
    case 'I': o->insecure = true; return 0;
    case 'L':
        if (parse_limit(arg, &o->limit))
            return usage_error("--limit must be a whole number from 1 to 1000000, not '%s'", arg);
        return 0;
    case 'W':
        if (lh_parse_duration(arg, &ms) || ms < 1000 || ms > MAX_TIMEOUT_S * 1000LL)
            return usage_error("--timeout wants a duration from 1s to 1h, not '%s'", arg);
        o->timeout_s = (int)(ms / 1000);
        return 0;
    case 'O':
        if (strcmp(arg, "asc") && strcmp(arg, "desc"))
            return usage_error("--order must be asc or desc, not '%s'", arg);
        o->asc = strcmp(arg, "asc") == 0;
        return 0;
    case 'o':
        if (strcmp(arg, "text") && strcmp(arg, "json"))
            return usage_error("-o must be text or json, not '%s'", arg);
        o->format = strcmp(arg, "text") == 0 ? OUT_TEXT : OUT_JSON;
        return 0;
    }
    return usage_error("%s", "unknown option");
}

/* Checks --since / --from / --to and turns --since into a start time. */
static int check_times(struct search_opts *o)
{
    int64_t from_ns = 0, to_ns = 0, ms;
    if (o->since && (o->from || o->to))
        return usage_error("%s", "--since cannot be combined with --from or --to");
    if (o->since) {
        if (lh_parse_duration(o->since, &ms) || ms <= 0)
            return usage_error("--since wants a duration such as 30s, 15m, 2h or 7d, not '%s'",
                               o->since);
        lh_format_time(lh_now_ns() - ms * 1000000, o->from_buf);
        o->from = o->from_buf;
        return 0;
    }
    if (o->from && lh_parse_time(o->from, &from_ns))
        return usage_error("--from wants RFC 3339 or unix seconds, not '%s'", o->from);
    if (o->to && lh_parse_time(o->to, &to_ns))
        return usage_error("--to wants RFC 3339 or unix seconds, not '%s'", o->to);
    if (o->from && o->to && from_ns > to_ns)
        return usage_error("%s", "--from is later than --to");
    return 0;
}

static int parse_args(struct search_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"server", required_argument, NULL, 's'},   {"since", required_argument, NULL, 'S'},
        {"from", required_argument, NULL, 'F'},     {"to", required_argument, NULL, 'T'},
        {"limit", required_argument, NULL, 'L'},    {"order", required_argument, NULL, 'O'},
        {"output", required_argument, NULL, 'o'},   {"token-file", required_argument, NULL, 'K'},
        {"ca", required_argument, NULL, 'C'},       {"insecure", no_argument, NULL, 'I'},
        {"timeout", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int c, rc;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":s:o:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            lh_cli_search_usage(stdout);
            return -1;
        }
        if (c == '?')
            return usage_error("unknown option '%s'", argv[optind - 1]);
        if (c == ':')
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        if ((rc = parse_option(o, c, optarg)) != 0)
            return rc;
    }
    if (optind >= argc)
        return usage_error("%s", "missing QUERY (use '' to match every record)");
    o->query = join_words(argv + optind, argc - optind);
    if (!o->query || strlen(o->query) > MAX_QUERY)
        return usage_error("%s", "the query is too long");
    if (o->n_servers == 0)
        o->servers[o->n_servers++] = DEFAULT_SERVER;
    return check_times(o);
}

/* Prints a query error with a caret under the byte at pos. */
static void print_query_error(const char *query, const char *msg, long pos)
{
    fprintf(stderr, "loghaul search: bad query: %s\n  %s\n  ", msg, query);
    long qlen = (long)strlen(query);
    for (long i = 0; i < pos && i < qlen; i++)
        if (((unsigned char)query[i] & 0xC0) != 0x80) /* one column per UTF-8 character */
            fputc(query[i] == '\t' ? '\t' : ' ', stderr);
    fputs("^\n", stderr);
}

static int load_token(struct search_opts *o)
{
    char *data = NULL;
    size_t len = 0;
    int rc = lh_read_file(o->token_file, MAX_TOKEN_FILE, &data, &len);
    if (rc) {
        fprintf(stderr, "loghaul search: --token-file %s: %s\n", o->token_file, lh_strerror(rc));
        return LH_EXIT_USAGE;
    }
    char *start = data, *end = data + len;
    while (start < end && strchr(" \t\r\n", *start))
        start++;
    while (end > start && strchr(" \t\r\n", end[-1]))
        end--;
    *end = '\0';
    if (start == end || memchr(start, '\n', (size_t)(end - start)) ||
        memchr(start, '\r', (size_t)(end - start)) || strlen(start) != (size_t)(end - start)) {
        fprintf(stderr, "loghaul search: --token-file %s: want one line holding the token\n",
                o->token_file);
        free(data);
        return LH_EXIT_USAGE;
    }
    o->token = strdup(start);
    free(data);
    return o->token ? 0 : LH_EXIT_FAIL;
}

static int append_param(char **buf, const char *name, const char *value)
{
    char *enc = evhttp_uriencode(value, -1, 0);
    if (!enc)
        return LH_ENOMEM;
    size_t n = strlen(*buf) + strlen(name) + strlen(enc) + 3;
    char *grown = realloc(*buf, n);
    if (grown) {
        strcat(grown, strchr(grown, '?') ? "&" : "?");
        strcat(grown, name);
        strcat(grown, "=");
        strcat(grown, enc);
        *buf = grown;
    }
    free(enc);
    return grown ? 0 : LH_ENOMEM;
}

/* "/api/v1/search?q=...&limit=N&order=...&from=...&to=..." (malloc'd). */
static char *build_path(const struct search_opts *o)
{
    char limit[24];
    snprintf(limit, sizeof(limit), "%ld", o->limit);
    char *p = strdup("/api/v1/search");
    if (!p || append_param(&p, "q", o->query) || append_param(&p, "limit", limit) ||
        append_param(&p, "order", o->asc ? "asc" : "desc") ||
        (o->from && append_param(&p, "from", o->from)) ||
        (o->to && append_param(&p, "to", o->to))) {
        free(p);
        return NULL;
    }
    return p;
}

static int add_failed(struct search_ctx *ctx, const char *name)
{
    for (size_t i = 0; i < ctx->n_failed; i++)
        if (strcmp(ctx->failed[i], name) == 0)
            return 0;
    char **grown = realloc(ctx->failed, (ctx->n_failed + 1) * sizeof(*grown));
    if (!grown)
        return LH_ENOMEM;
    ctx->failed = grown;
    if (!(ctx->failed[ctx->n_failed] = strdup(name)))
        return LH_ENOMEM;
    ctx->n_failed++;
    return 0;
}

static int add_record(struct search_ctx *ctx, size_t server, const char *line, size_t len,
                      int64_t ns)
{
    if (ctx->n_recs == ctx->cap_recs) {
        size_t cap = ctx->cap_recs ? ctx->cap_recs * 2 : 256;
        struct rec *grown = realloc(ctx->recs, cap * sizeof(*grown));
        if (!grown)
            return LH_ENOMEM;
        ctx->recs = grown;
        ctx->cap_recs = cap;
    }
    struct rec *r = &ctx->recs[ctx->n_recs];
    if (!(r->line = malloc(len + 1)))
        return LH_ENOMEM;
    memcpy(r->line, line, len);
    r->line[len] = '\0';
    r->len = len;
    r->ns = ns;
    r->server = server;
    r->seq = ctx->n_recs++;
    return 0;
}

/* A line that is not a record: a server's own partial marker names the
 * peers it could not reach; anything else is ignored. */
static int take_control_line(struct search_ctx *ctx, json_t *obj)
{
    json_t *failed = json_object_get(obj, "failed");
    if (!json_is_true(json_object_get(obj, "partial")) || !json_is_array(failed))
        return 0;
    size_t i;
    json_t *v;
    json_array_foreach(failed, i, v)
    {
        if (json_is_string(v) && add_failed(ctx, json_string_value(v)))
            return LH_ENOMEM;
    }
    return 0;
}

static int take_line(struct server *s, size_t idx, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, 0, &jerr);
    if (!json_is_object(obj)) {
        json_decref(obj);
        fprintf(stderr, "loghaul search: %s: skipped a line that is not a JSON object\n", s->url);
        return 0;
    }
    int rc = 0;
    const char *t = json_string_value(json_object_get(obj, "time"));
    int64_t ns;
    if (!t)
        rc = take_control_line(s->ctx, obj);
    else if (lh_parse_time(t, &ns))
        fprintf(stderr, "loghaul search: %s: skipped a record with time '%s'\n", s->url, t);
    else
        rc = add_record(s->ctx, idx, line, len, ns);
    json_decref(obj);
    return rc;
}

static int take_body(struct server *s, size_t idx, const char *body, size_t len)
{
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        size_t n = (size_t)(stop - p);
        if (n && p[n - 1] == '\r')
            n--;
        if (n && take_line(s, idx, p, n))
            return LH_ENOMEM;
        p = stop + 1;
    }
    return 0;
}

/* The message of a JSON error body ({"error": "...", "position": N}), or
 * the start of the body itself. */
static void error_from_body(const struct lh_http_response *res, char *msg, size_t msglen,
                            long *pos)
{
    json_error_t jerr;
    json_t *obj = json_loadb(res->body, res->body_len, 0, &jerr);
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

static void judge_answer(struct server *s, size_t idx, const struct lh_http_response *res)
{
    char msg[400];
    if (res->status == 200) {
        if (take_body(s, idx, res->body, res->body_len))
            s->ctx->oom = true;
        return;
    }
    s->failed = true;
    if (res->status == 0) {
        snprintf(s->reason, sizeof(s->reason), "%s", res->reason);
    } else if (res->status == 400) {
        s->bad_query = true;
        error_from_body(res, s->query_error, sizeof(s->query_error), &s->query_pos);
    } else if (res->status == 401) {
        snprintf(s->reason, sizeof(s->reason), "unauthorized: use --token-file");
    } else {
        long pos;
        error_from_body(res, msg, sizeof(msg), &pos);
        snprintf(s->reason, sizeof(s->reason), "HTTP %d %s%s%s", res->status,
                 res->reason ? res->reason : "", *msg ? ": " : "", msg);
    }
}

static void on_answer(const struct lh_http_response *res, void *arg)
{
    struct server *s = arg;
    struct search_ctx *ctx = s->ctx;
    judge_answer(s, (size_t)(s - ctx->servers), res);
    s->done = true;
    /* The resolver keeps sockets registered: end the loop explicitly. */
    if (--ctx->pending == 0)
        event_base_loopexit(ctx->base, NULL);
}

static int cmp_rec(const struct rec *a, const struct rec *b, bool asc)
{
    if (a->ns != b->ns)
        return (a->ns < b->ns) == asc ? -1 : 1;
    if (a->server != b->server)
        return a->server < b->server ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int cmp_desc(const void *a, const void *b)
{
    return cmp_rec(a, b, false);
}

static int cmp_asc(const void *a, const void *b)
{
    return cmp_rec(a, b, true);
}

/* Writes s with control characters escaped, so a record cannot move the
 * cursor or split its line on a terminal. */
static void put_clean(const char *s, FILE *out)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\r')
            fputs("\\r", out);
        else if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
}

static bool needs_quotes(const char *s)
{
    if (!*s)
        return true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == 0x7f)
            return true;
    return false;
}

static void put_value(json_t *v, FILE *out)
{
    const char *s = json_string_value(v);
    if (s && !needs_quotes(s)) {
        fputs(s, out);
        return;
    }
    char *enc = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (enc)
        fputs(enc, out);
    free(enc);
}

static void put_field(json_t *obj, const char *key, FILE *out)
{
    const char *s = json_string_value(json_object_get(obj, key));
    put_clean(s && *s ? s : "-", out);
}

static void print_text(const struct rec *r, FILE *out)
{
    json_error_t jerr;
    json_t *obj = json_loadb(r->line, r->len, 0, &jerr);
    if (!obj)
        return;
    static const char *const fixed[] = {"time", "host", "tag", "message"};
    for (size_t i = 0; i < 4; i++) {
        if (i)
            fputc(' ', out);
        put_field(obj, fixed[i], out);
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (!strcmp(key, "time") || !strcmp(key, "host") || !strcmp(key, "tag") ||
            !strcmp(key, "message"))
            continue;
        fputc(' ', out);
        put_clean(key, out);
        fputc('=', out);
        put_value(v, out);
    }
    fputc('\n', out);
    json_decref(obj);
}

static void print_partial(const struct search_ctx *ctx, FILE *out)
{
    json_t *names = json_array();
    if (!names)
        return;
    for (size_t i = 0; i < ctx->n_failed; i++)
        json_array_append_new(names, json_string(ctx->failed[i]));
    json_t *line = json_pack("{s:b, s:o}", "partial", 1, "failed", names);
    char *s = line ? json_dumps(line, JSON_PRESERVE_ORDER) : NULL;
    if (s)
        fprintf(out, "%s\n", s);
    free(s);
    json_decref(line);
}

static void print_results(struct search_ctx *ctx, const struct search_opts *o, bool json)
{
    if (ctx->n_recs)
        qsort(ctx->recs, ctx->n_recs, sizeof(*ctx->recs), o->asc ? cmp_asc : cmp_desc);
    size_t n = ctx->n_recs < (size_t)o->limit ? ctx->n_recs : (size_t)o->limit;
    for (size_t i = 0; i < n; i++) {
        if (json)
            fprintf(stdout, "%s\n", ctx->recs[i].line);
        else
            print_text(&ctx->recs[i], stdout);
    }
    if (json && ctx->n_failed)
        print_partial(ctx, stdout);
}

/* Reports what went wrong per server; returns the exit code. */
static int judge_servers(struct search_ctx *ctx, const struct search_opts *o)
{
    size_t n_failed = 0;
    for (size_t i = 0; i < ctx->n_servers; i++) {
        struct server *s = &ctx->servers[i];
        if (s->bad_query) {
            print_query_error(o->query, s->query_error, s->query_pos < 0 ? 0 : s->query_pos);
            return LH_EXIT_USAGE;
        }
    }
    for (size_t i = 0; i < ctx->n_servers; i++) {
        struct server *s = &ctx->servers[i];
        if (!s->failed)
            continue;
        n_failed++;
        fprintf(stderr, "loghaul search: %s: %s\n", s->url, s->reason);
        if (add_failed(ctx, s->url))
            ctx->oom = true;
    }
    if (ctx->oom) {
        fputs("loghaul search: out of memory\n", stderr);
        return LH_EXIT_FAIL;
    }
    return n_failed == ctx->n_servers ? LH_EXIT_FAIL : LH_EXIT_OK;
}

static int start_all(struct search_ctx *ctx, struct lh_http_client *client,
                     const struct search_opts *o, const char *path)
{
    char err[512];
    for (size_t i = 0; i < ctx->n_servers; i++) {
        struct server *s = &ctx->servers[i];
        s->ctx = ctx;
        s->url = o->servers[i];
        int rc = lh_http_get(client, s->url, path, on_answer, s, err, sizeof(err));
        if (rc == LH_EINVAL) {
            fprintf(stderr, "loghaul search: %s\n", err);
            return LH_EXIT_USAGE;
        }
        if (rc) {
            s->failed = s->done = true;
            snprintf(s->reason, sizeof(s->reason), "%s", err);
            continue;
        }
        ctx->pending++;
    }
    return 0;
}

static int run_search(const struct search_opts *o, struct search_ctx *ctx, const char *path)
{
    struct lh_http_opts hopts = {
        .ca_file = o->ca_file,
        .insecure = o->insecure,
        .timeout_s = o->timeout_s,
        .bearer_token = o->token,
        .max_body = MAX_BODY,
    };
    struct lh_http_client *client = NULL;
    char err[512];
    int rc = LH_EXIT_FAIL;
    ctx->base = event_base_new();
    ctx->servers = calloc(o->n_servers, sizeof(*ctx->servers));
    ctx->n_servers = o->n_servers;
    if (!ctx->base || !ctx->servers) {
        fputs("loghaul search: out of memory\n", stderr);
        goto out;
    }
    if (lh_http_client_create(ctx->base, &hopts, &client, err, sizeof(err))) {
        fprintf(stderr, "loghaul search: %s\n", err);
        goto out;
    }
    if ((rc = start_all(ctx, client, o, path)) != 0)
        goto out;
    if (ctx->pending)
        event_base_dispatch(ctx->base);
    rc = judge_servers(ctx, o);
    if (rc != LH_EXIT_USAGE && !ctx->oom) {
        bool json = o->format == OUT_JSON || (o->format == OUT_AUTO && !isatty(STDOUT_FILENO));
        print_results(ctx, o, json);
    }
out:
    lh_http_client_destroy(client);
    if (ctx->base)
        event_base_free(ctx->base);
    return rc;
}

static void free_ctx(struct search_ctx *ctx)
{
    for (size_t i = 0; i < ctx->n_recs; i++)
        free(ctx->recs[i].line);
    free(ctx->recs);
    for (size_t i = 0; i < ctx->n_failed; i++)
        free(ctx->failed[i]);
    free(ctx->failed);
    free(ctx->servers);
}

int lh_cli_search(int argc, char **argv)
{
    struct search_opts o = {.limit = DEFAULT_LIMIT, .timeout_s = DEFAULT_TIMEOUT_S};
    struct search_ctx ctx = {0};
    char *path = NULL;
    int rc = parse_args(&o, argc, argv);
    if (rc < 0) {
        rc = LH_EXIT_OK; /* --help */
        goto out;
    }
    if (rc)
        goto out;
    if (o.token_file && (rc = load_token(&o)) != 0)
        goto out;
    if (!(path = build_path(&o))) {
        fputs("loghaul search: out of memory\n", stderr);
        rc = LH_EXIT_FAIL;
        goto out;
    }
    rc = run_search(&o, &ctx, path);
    if (fflush(stdout) != 0 && rc == LH_EXIT_OK) {
        perror("loghaul search: writing the results");
        rc = LH_EXIT_FAIL;
    }
out:
    free_ctx(&ctx);
    free(path);
    free(o.query);
    free(o.token);
    return rc;
}
