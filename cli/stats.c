/* `loghaul stats`: a `QUERY | stats count by F1, F2` fanned out to every
 * collector named with -s, counts summed per group, largest first. */
#include <event2/event.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api_opts.h"
#include "cli/cli.h"
#include "common/base/err.h"
#include "common/net/net.h"
#include "common/query/query.h"
#include "common/base/util.h"

#define MAX_QUERY 65536
#define MAX_BODY ((size_t)256 << 20)
#define DEFAULT_TIMEOUT_S 30

struct stats_opts {
    struct lh_cli_conn conn;
    char *query;              /* owned */
    struct lh_cli_window win; /* --since, --from, --to */
    struct lh_query *parsed;  /* owned: names the group fields */
    const char *const *by;
    size_t n_by;
};

struct server {
    struct stats_ctx *ctx;
    const char *url;
    bool failed, bad_query;
    char why[512];
    long pos;
};

struct stats_ctx {
    struct event_base *base;
    const struct stats_opts *o;
    struct server *servers;
    size_t pending;
    json_t *rows;             /* merged */
    json_t *index;            /* group key -> row in rows */
    json_t *failed;           /* URLs, theirs and their peers' */
    bool oom;
};

void lh_cli_stats_usage(FILE *out)
{
    fputs("usage: loghaul stats [options] 'QUERY | stats count by FIELD[, FIELD...]'\n"
          "\n"
          "Counts the records matching QUERY per distinct value of the fields after\n"
          "'by' on one or more collectors, sums the counts per group and prints the\n"
          "groups largest first. A record without a field counts under null ('-').\n"
          "\n"
          "options:\n"
          "  -s, --server URL     collector API (http:// or https://); repeat to count\n"
          "                       over several (default " LH_CLI_DEFAULT_SERVER ")\n"
          "      --since DUR      records of the last DUR (30s, 15m, 2h, 7d)\n"
          "      --from T         records at or after T (RFC 3339 or unix seconds)\n"
          "      --to T           records at or before T\n"
          "  -o, --output FMT     text: an aligned table; json: an array of\n"
          "                       {\"FIELD\": value, ..., \"count\": n} (default: text on a\n"
          "                       terminal, json otherwise)\n"
          "      --token-file F   send \"Authorization: Bearer <contents of F>\"\n"
          "      --ca FILE        CA bundle to verify https collectors (default: system)\n"
          "      --insecure       do not verify https collectors' certificates\n"
          "      --timeout DUR    give up on a collector after DUR (default 30s)\n"
          "  -h, --help           this help\n"
          "\n"
          "With several -s, each collector counts its own records only (a collector's\n"
          "peers are not asked through it), so name every collector of the tier; with\n"
          "one -s, a collector with peers counts for the tier.\n"
          "A collector that cannot answer is reported on standard error and, in json,\n"
          "by a last element {\"partial\": true, \"failed\": [URL, ...]}. Exit status: 0 ok,\n"
          "1 no collector answered, 2 bad usage or query.\n",
          out);
}

/* ---- arguments ---------------------------------------------------------- */

/* The query must end in `| stats count by ...`: checked here so a typo is
 * caught before any collector is asked. */
static int check_query(struct stats_opts *o)
{
    struct lh_query_error qe = {.position = 0};
    if (strlen(o->query) > MAX_QUERY)
        return lh_cli_usage_error("stats", "the query is too long");
    if (lh_query_parse(o->query, &o->parsed, &qe) != 0) {
        lh_cli_query_error("stats", o->query, qe.msg, qe.position);
        return LH_EXIT_USAGE;
    }
    if (!lh_query_stats(o->parsed, &o->by, &o->n_by))
        return lh_cli_usage_error("stats", "the query needs '| stats count by FIELD'");
    return 0;
}

static int parse_args(struct stats_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        LH_CLI_CONN_LONGOPTS,
        LH_CLI_WINDOW_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, rc;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":s:o:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            lh_cli_stats_usage(stdout);
            return -1;
        }
        if (c == '?' || c == ':')
            return lh_cli_usage_error("stats", "%s '%s'", c == '?' ? "unknown option"
                                      : "missing value for", argv[optind - 1]);
        if ((rc = lh_cli_window_option(&o->win, c, optarg)) == 1)
            rc = lh_cli_conn_option(&o->conn, c, optarg);
        if (rc != 0)
            return rc;
    }
    if (optind >= argc)
        return lh_cli_usage_error("stats", "missing 'QUERY | stats count by FIELD'");
    if (!(o->query = lh_cli_join_words(argv + optind, argc - optind)))
        return LH_EXIT_FAIL;
    if ((rc = lh_cli_window_finish("stats", &o->win)) != 0 || (rc = check_query(o)) != 0)
        return rc;
    return lh_cli_conn_finish(&o->conn);
}

/* ---- merging ------------------------------------------------------------ */

static char *group_key(const json_t *row, const struct stats_opts *o)
{
    json_t *vals = json_array();
    for (size_t i = 0; vals && i < o->n_by; i++) {
        json_t *v = json_object_get(row, o->by[i]);
        json_array_append(vals, v ? v : json_null());
    }
    char *k = vals ? json_dumps(vals, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(vals);
    return k;
}

static void note_failed(struct stats_ctx *ctx, const char *url)
{
    size_t i;
    json_t *v;
    json_array_foreach(ctx->failed, i, v)
        if (strcmp(json_string_value(v), url) == 0)
            return;
    json_array_append_new(ctx->failed, json_string(url));
}

static void take_row(struct stats_ctx *ctx, json_t *row)
{
    json_t *failed = json_object_get(row, "failed");
    json_t *count = json_object_get(row, "count");
    size_t i;
    json_t *v;
    if (json_is_true(json_object_get(row, "partial")) && json_is_array(failed)) {
        json_array_foreach(failed, i, v)
            if (json_is_string(v))
                note_failed(ctx, json_string_value(v));
        return;
    }
    if (!json_is_integer(count))
        return;
    char *k = group_key(row, ctx->o);
    json_t *have = k ? json_object_get(ctx->index, k) : NULL;
    if (!k)
        ctx->oom = true;
    else if (have)
        json_integer_set(json_object_get(have, "count"),
                         json_integer_value(json_object_get(have, "count")) +
                             json_integer_value(count));
    else if (json_array_append(ctx->rows, row) != 0 || json_object_set(ctx->index, k, row) != 0)
        ctx->oom = true;
    free(k);
}

static void on_answer(const struct lh_http_response *res, void *arg)
{
    struct server *s = arg;
    struct stats_ctx *ctx = s->ctx;
    /* Group values may hold NUL, sent as \u0000. */
    json_t *rows = res->status == 200 ? json_loadb(res->body, res->body_len, JSON_ALLOW_NUL, NULL)
                                      : NULL;
    size_t i;
    json_t *row;
    if (json_is_array(rows)) {
        json_array_foreach(rows, i, row)
            take_row(ctx, row);
    } else if (res->status == 400) {
        s->bad_query = true;
        lh_cli_error_body(res, s->why, sizeof s->why, &s->pos);
    } else {
        s->failed = true;
        if (res->status == 200)
            snprintf(s->why, sizeof s->why, "the answer is not a JSON array");
        else
            lh_cli_failure(res, s->why, sizeof s->why);
    }
    json_decref(rows);
    if (--ctx->pending == 0)
        event_base_loopexit(ctx->base, NULL);
}

static int cmp_rows(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t cx = json_integer_value(json_object_get(x, "count"));
    json_int_t cy = json_integer_value(json_object_get(y, "count"));
    if (cx != cy)
        return cx > cy ? -1 : 1;
    char *tx = json_dumps(x, JSON_COMPACT | JSON_SORT_KEYS);
    char *ty = json_dumps(y, JSON_COMPACT | JSON_SORT_KEYS);
    int r = strcmp(tx ? tx : "", ty ? ty : "");
    free(tx);
    free(ty);
    return r;
}

/* ---- output ------------------------------------------------------------- */

/* A cell of the text table (malloc'd): strings as they are, null as "-",
 * other values as JSON, control characters escaped. */
static char *cell(const json_t *v)
{
    if (!v || json_is_null(v))
        return strdup("-");
    if (!json_is_string(v))
        return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    char *out = malloc(n * 4 + 1), *p = out;
    for (const unsigned char *c = (const unsigned char *)s; out && c < (const unsigned char *)s + n;
         c++)
        p += (*c < 0x20 || *c == 0x7f) ? sprintf(p, "\\x%02x", *c) : (*p = (char)*c, 1);
    if (out)
        *p = '\0';
    return out;
}

static void print_table(json_t **rows, size_t n, const struct stats_opts *o)
{
    size_t cols = o->n_by + 1;
    size_t *w = calloc(cols, sizeof *w);
    char **cells = calloc((n + 1) * cols, sizeof *cells);
    if (!w || !cells)
        goto out;
    for (size_t c = 0; c < cols; c++)
        cells[c] = strdup(c < o->n_by ? o->by[c] : "count");
    for (size_t r = 0; r < n; r++)
        for (size_t c = 0; c < cols; c++)
            cells[(r + 1) * cols + c] =
                cell(json_object_get(rows[r], c < o->n_by ? o->by[c] : "count"));
    for (size_t i = 0; i < (n + 1) * cols; i++)
        if (cells[i] && strlen(cells[i]) > w[i % cols])
            w[i % cols] = strlen(cells[i]);
    for (size_t r = 0; r <= n; r++) {
        for (size_t c = 0; c < o->n_by; c++)
            printf("%-*s  ", (int)w[c], cells[r * cols + c] ? cells[r * cols + c] : "");
        printf("%*s\n", (int)w[o->n_by], cells[r * cols + o->n_by] ? cells[r * cols + o->n_by]
                                                                    : "");
    }
out:
    for (size_t i = 0; cells && i < (n + 1) * cols; i++)
        free(cells[i]);
    free(cells);
    free(w);
}

static void print_results(struct stats_ctx *ctx)
{
    size_t n = json_array_size(ctx->rows);
    json_t **v = calloc(n + 1, sizeof *v);
    if (!v) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(ctx->rows, i);
    qsort(v, n, sizeof *v, cmp_rows);
    if (lh_cli_conn_json(&ctx->o->conn)) {
        json_t *out = json_array();
        for (size_t i = 0; out && i < n; i++)
            json_array_append(out, v[i]);
        if (out && json_array_size(ctx->failed))
            json_array_append_new(out, json_pack("{s:b, s:O}", "partial", 1, "failed",
                                                 ctx->failed));
        char *s = out ? json_dumps(out, JSON_COMPACT) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(out);
    } else {
        print_table(v, n, ctx->o);
    }
    free(v);
}

/* ---- running ------------------------------------------------------------ */

/* With several servers each counts its own records only (local=1), so a
 * federating one does not count its peers' again; the counts then add up
 * exactly (stats has count only: nothing that fails to merge). */
static char *build_path(const struct stats_opts *o)
{
    char *p = strdup("/api/v1/stats");
    if (!p || lh_net_append_query(&p, "q", o->query) ||
        (o->win.from && lh_net_append_query(&p, "from", o->win.from)) ||
        (o->win.to && lh_net_append_query(&p, "to", o->win.to)) ||
        (o->conn.n_servers > 1 && lh_net_append_query(&p, "local", "1"))) {
        free(p);
        return NULL;
    }
    return p;
}

/* 0, or LH_EXIT_USAGE for a malformed URL. */
static int start_all(struct stats_ctx *ctx, struct lh_http_client *client, const char *path)
{
    for (size_t i = 0; i < ctx->o->conn.n_servers; i++) {
        struct server *s = &ctx->servers[i];
        s->ctx = ctx;
        s->url = ctx->o->conn.servers[i];
        int rc = lh_http_get(client, s->url, path, on_answer, s, s->why, sizeof s->why);
        if (rc == LH_EINVAL)
            return lh_cli_usage_error("stats", "%s", s->why);
        if (rc != 0)
            s->failed = true;
        else
            ctx->pending++;
    }
    return 0;
}

/* Reports the servers' troubles; returns the exit code. */
static int judge(struct stats_ctx *ctx)
{
    size_t failed = 0, n = ctx->o->conn.n_servers;
    for (size_t i = 0; i < n; i++) {
        struct server *s = &ctx->servers[i];
        if (s->bad_query) {
            lh_cli_query_error("stats", ctx->o->query, s->why, s->pos < 0 ? 0 : s->pos);
            return LH_EXIT_USAGE;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct server *s = &ctx->servers[i];
        if (s->failed) {
            failed++;
            fprintf(stderr, "loghaul stats: %s: %s\n", s->url, s->why);
            note_failed(ctx, s->url);
        }
    }
    return failed == n ? LH_EXIT_FAIL : LH_EXIT_OK;
}

static int run_stats(const struct stats_opts *o, const char *path)
{
    struct stats_ctx ctx = {.o = o, .rows = json_array(), .index = json_object(),
                            .failed = json_array()};
    struct lh_http_opts hopts = lh_cli_conn_http(&o->conn, MAX_BODY);
    struct lh_http_client *client = NULL;
    char err[512];
    int rc = LH_EXIT_FAIL;
    ctx.base = event_base_new();
    ctx.servers = calloc(o->conn.n_servers, sizeof *ctx.servers);
    if (!ctx.base || !ctx.servers || !ctx.rows || !ctx.index || !ctx.failed) {
        fputs("loghaul stats: out of memory\n", stderr);
    } else if (lh_http_client_create(ctx.base, &hopts, &client, err, sizeof err) != 0) {
        fprintf(stderr, "loghaul stats: %s\n", err);
    } else {
        rc = start_all(&ctx, client, path);
        if (rc == 0 && ctx.pending)
            event_base_dispatch(ctx.base);
        if (rc == 0)
            rc = judge(&ctx);
        if (rc == LH_EXIT_OK)
            print_results(&ctx);
        if (ctx.oom) {
            fputs("loghaul stats: out of memory\n", stderr);
            rc = LH_EXIT_FAIL;
        }
    }
    lh_http_client_destroy(client);
    if (ctx.base)
        event_base_free(ctx.base);
    free(ctx.servers);
    json_decref(ctx.rows);
    json_decref(ctx.index);
    json_decref(ctx.failed);
    return rc;
}

int lh_cli_stats(int argc, char **argv)
{
    struct stats_opts o = {.conn = {.cmd = "stats", .timeout_s = DEFAULT_TIMEOUT_S}};
    char *path = NULL;
    int rc = parse_args(&o, argc, argv);
    if (rc == 0 && !(path = build_path(&o))) {
        fputs("loghaul stats: out of memory\n", stderr);
        rc = LH_EXIT_FAIL;
    }
    if (rc == 0)
        rc = run_stats(&o, path);
    if (rc == 0 && fflush(stdout) != 0) {
        perror("loghaul stats: writing the results");
        rc = LH_EXIT_FAIL;
    }
    free(path);
    free(o.query);
    lh_query_free(o.parsed);
    lh_cli_conn_free(&o.conn);
    return rc < 0 ? LH_EXIT_OK : rc;
}
