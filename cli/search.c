/* `loghaul search`: one query fanned out to every collector named with -s,
 * answers merged by time, --limit applied to the merged result. */
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>

#include "cli/api_opts.h"
#include "cli/cli.h"
#include "cli/http_client.h"
#include "common/base/err.h"
#include "common/net/net.h"
#include "common/base/util.h"

#define DEFAULT_LIMIT 100
#define MAX_LIMIT 1000000
#define MAX_QUERY 65536
#define MAX_BODY ((size_t)1 << 30)
#define DEFAULT_TIMEOUT_S 30

struct search_opts {
    struct lh_cli_conn conn; /* -s, -o, --token-file, --ca, --insecure, --timeout */
    char *query;             /* the QUERY words joined by spaces; owned */
    long limit;
    bool asc;
    struct lh_cli_window win; /* --since, --from, --to */
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
    size_t unreadable; /* answer lines that are neither records nor control lines */
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
          "                       (default " LH_CLI_DEFAULT_SERVER ")\n"
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
          "With several -s, each collector answers for its own records only (a\n"
          "collector's peers are not asked through it), so name every collector of\n"
          "the tier; with one -s, a collector with peers answers for the tier.\n"
          "A collector that cannot answer is reported on standard error and, in json,\n"
          "by a last line {\"partial\": true, \"failed\": [URL, ...]}; the others still\n"
          "answer. Exit status: 0 ok, 1 no collector answered or some answer lines could\n"
          "not be read (counted on standard error), 2 bad usage or query.\n",
          out);
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
    int rc = lh_cli_conn_option(&o->conn, c, arg);
    if (rc != 1 || (rc = lh_cli_window_option(&o->win, c, arg)) != 1)
        return rc;
    switch (c) {
    case 'L':
        if (parse_limit(arg, &o->limit))
            return lh_cli_usage_error(
                "search", "--limit must be a whole number from 1 to 1000000, not '%s'", arg);
        return 0;
    case 'O':
        if (strcmp(arg, "asc") && strcmp(arg, "desc"))
            return lh_cli_usage_error("search", "--order must be asc or desc, not '%s'", arg);
        o->asc = strcmp(arg, "asc") == 0;
        return 0;
    }
    return lh_cli_usage_error("search", "%s", "unknown option");
}

static int parse_args(struct search_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        LH_CLI_CONN_LONGOPTS,
        LH_CLI_WINDOW_LONGOPTS,
        {"limit", required_argument, NULL, 'L'},
        {"order", required_argument, NULL, 'O'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
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
            return lh_cli_usage_error("search", "unknown option '%s'", argv[optind - 1]);
        if (c == ':')
            return lh_cli_usage_error("search", "option '%s' needs a value", argv[optind - 1]);
        if ((rc = parse_option(o, c, optarg)) != 0)
            return rc;
    }
    if (optind >= argc)
        return lh_cli_usage_error("search", "%s", "missing QUERY (use '' to match every record)");
    o->query = lh_cli_join_words(argv + optind, argc - optind);
    if (!o->query || strlen(o->query) > MAX_QUERY)
        return lh_cli_usage_error("search", "%s", "the query is too long");
    if ((rc = lh_cli_window_finish("search", &o->win)) != 0)
        return rc;
    return lh_cli_conn_finish(&o->conn);
}

/* "/api/v1/search?q=...&limit=N&order=...&from=...&to=..." (malloc'd).
 * Several servers are each asked for their own records only (local=1):
 * one that federates would answer for its peers too, and a record named
 * by -s twice would be counted twice. One server keeps its federated
 * answer. */
static char *build_path(const struct search_opts *o)
{
    char limit[24];
    snprintf(limit, sizeof(limit), "%ld", o->limit);
    char *p = strdup("/api/v1/search");
    if (!p || lh_net_append_query(&p, "q", o->query) || lh_net_append_query(&p, "limit", limit) ||
        lh_net_append_query(&p, "order", o->asc ? "asc" : "desc") ||
        (o->win.from && lh_net_append_query(&p, "from", o->win.from)) ||
        (o->win.to && lh_net_append_query(&p, "to", o->win.to)) ||
        (o->conn.n_servers > 1 && lh_net_append_query(&p, "local", "1"))) {
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

/* A record line starts {"time":"RFC 3339" (SPEC section 2), so it is taken
 * by its prefix: no JSON parser has to accept it whole (jansson refuses a
 * NUL in a key, which is valid JSON). True with *ns for a record line. */
static bool record_time(const char *line, size_t len, int64_t *ns)
{
    static const char head[] = "{\"time\":\"";
    const size_t hl = sizeof head - 1;
    char t[LH_TIME_STRLEN + 16];
    if (len <= hl || memcmp(line, head, hl) != 0)
        return false;
    const char *end = memchr(line + hl, '"', len - hl < sizeof t ? len - hl : sizeof t);
    if (!end)
        return false;
    memcpy(t, line + hl, (size_t)(end - line) - hl);
    t[(size_t)(end - line) - hl] = '\0';
    return lh_parse_time(t, ns) == 0;
}

/* A line that cannot be read is counted, never passed over quietly: the
 * answer is then incomplete, which the exit status says (judge_servers). */
static int take_line(struct server *s, size_t idx, const char *line, size_t len)
{
    int64_t ns;
    if (record_time(line, len, &ns))
        return add_record(s->ctx, idx, line, len, ns);
    json_t *obj = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
    int rc = 0;
    if (json_is_object(obj) && !json_object_get(obj, "time"))
        rc = take_control_line(s->ctx, obj);
    else
        s->unreadable++;
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
static void judge_answer(struct server *s, size_t idx, const struct lh_http_response *res)
{
    if (res->status == 200) {
        if (take_body(s, idx, res->body, res->body_len))
            s->ctx->oom = true;
        return;
    }
    s->failed = true;
    if (res->status == 400) {
        s->bad_query = true;
        lh_cli_error_body(res, s->query_error, sizeof(s->query_error), &s->query_pos);
    } else {
        lh_cli_failure(res, s->reason, sizeof(s->reason));
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
static void put_clean(const char *s, size_t n, FILE *out)
{
    for (const unsigned char *p = (const unsigned char *)s, *end = p + n; p < end; p++) {
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
    if (s && strlen(s) == json_string_length(v) && !needs_quotes(s)) {
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
    json_t *v = json_object_get(obj, key);
    const char *s = json_string_value(v);
    if (s && json_string_length(v))
        put_clean(s, json_string_length(v), out);
    else
        fputc('-', out);
}

static void print_text(const struct rec *r, FILE *out)
{
    json_error_t jerr;
    json_t *obj = json_loadb(r->line, r->len, JSON_ALLOW_NUL, &jerr);
    if (!obj) { /* valid JSON jansson cannot hold (a NUL in a key): as it came */
        put_clean(r->line, r->len, out);
        fputc('\n', out);
        return;
    }
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
        put_clean(key, strlen(key), out);
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
            lh_cli_query_error("search", o->query, s->query_error,
                               s->query_pos < 0 ? 0 : s->query_pos);
            return LH_EXIT_USAGE;
        }
    }
    size_t unreadable = 0;
    for (size_t i = 0; i < ctx->n_servers; i++) {
        struct server *s = &ctx->servers[i];
        if (s->unreadable)
            fprintf(stderr, "loghaul search: %s: %zu line(s) of the answer are not JSON records "
                            "and were left out\n", s->url, s->unreadable);
        unreadable += s->unreadable;
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
    return n_failed == ctx->n_servers || unreadable ? LH_EXIT_FAIL : LH_EXIT_OK;
}

static int start_all(struct search_ctx *ctx, struct lh_http_client *client,
                     const struct search_opts *o, const char *path)
{
    char err[512];
    for (size_t i = 0; i < ctx->n_servers; i++) {
        struct server *s = &ctx->servers[i];
        s->ctx = ctx;
        s->url = o->conn.servers[i];
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
    struct lh_http_opts hopts = lh_cli_conn_http(&o->conn, MAX_BODY);
    struct lh_http_client *client = NULL;
    char err[512];
    int rc = LH_EXIT_FAIL;
    ctx->base = event_base_new();
    ctx->servers = calloc(o->conn.n_servers, sizeof(*ctx->servers));
    ctx->n_servers = o->conn.n_servers;
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
        print_results(ctx, o, lh_cli_conn_json(&o->conn));
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
    struct search_opts o = {.conn = {.cmd = "search", .timeout_s = DEFAULT_TIMEOUT_S},
                            .limit = DEFAULT_LIMIT};
    struct search_ctx ctx = {0};
    char *path = NULL;
    int rc = parse_args(&o, argc, argv);
    if (rc < 0) {
        rc = LH_EXIT_OK; /* --help */
        goto out;
    }
    if (rc)
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
    lh_cli_conn_free(&o.conn);
    return rc;
}
