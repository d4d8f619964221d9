/* `loghaul tail`: follows GET /api/v1/tail on every collector named with
 * -s and prints each new record as it arrives, until ^C. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api_opts.h"
#include "cli/cli.h"
#include "common/base/err.h"
#include "common/net/net.h"

#define MAX_QUERY 65536
#define MAX_LINE ((size_t)16 << 20)
#define MAX_ERROR_BODY ((size_t)1 << 20)
#define DEFAULT_TIMEOUT_S 30

struct server {
    struct tail_ctx *ctx;
    const char *url;
    struct evbuffer *buf;     /* a partial line carried between chunks */
    bool ended;
};

struct tail_ctx {
    struct event_base *base;
    struct lh_cli_conn *conn;
    const char *query;
    bool json;
    size_t running;
    size_t unreadable;        /* lines skipped (each reported on stderr) */
    bool interrupted, bad_query;
};

void lh_cli_tail_usage(FILE *out)
{
    fputs("usage: loghaul tail [options] QUERY...\n"
          "\n"
          "Follows one or more collectors and prints every record they store from now\n"
          "on that matches QUERY ('' for all), as it arrives, until interrupted (^C).\n"
          "\n"
          "options:\n"
          "  -s, --server URL     collector API (http:// or https://); repeat to follow\n"
          "                       several (default " LH_CLI_DEFAULT_SERVER ")\n"
          "  -o, --output FMT     text: TIME HOST TAG MESSAGE per record; json: the\n"
          "                       records as NDJSON (default: text on a terminal,\n"
          "                       json otherwise)\n"
          "      --token-file F   send \"Authorization: Bearer <contents of F>\"\n"
          "      --ca FILE        CA bundle to verify https collectors (default: system)\n"
          "      --insecure       do not verify https collectors' certificates\n"
          "      --timeout DUR    connect timeout per collector (default 30s)\n"
          "  -h, --help           this help\n"
          "\n"
          "A collector that drops records because this reader is too slow says so on\n"
          "standard error, as does each line that cannot be read. Exit status: 0 after\n"
          "^C, 1 when every stream ended, none could be opened or a line could not be\n"
          "read, 2 bad usage or query.\n",
          out);
}

static int parse_args(struct lh_cli_conn *conn, char **query, int argc, char **argv)
{
    static const struct option longopts[] = {
        LH_CLI_CONN_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, rc;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":s:o:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            lh_cli_tail_usage(stdout);
            return -1;
        }
        if (c == '?' || c == ':')
            return lh_cli_usage_error("tail", "%s '%s'", c == '?' ? "unknown option"
                                      : "missing value for", argv[optind - 1]);
        if ((rc = lh_cli_conn_option(conn, c, optarg)) != 0)
            return rc;
    }
    if (optind >= argc)
        return lh_cli_usage_error("tail", "missing QUERY (use '' to follow every record)");
    if (!(*query = lh_cli_join_words(argv + optind, argc - optind)))
        return LH_EXIT_FAIL;
    if (strlen(*query) > MAX_QUERY)
        return lh_cli_usage_error("tail", "the query is too long");
    return lh_cli_conn_finish(conn);
}

/* ---- printing ----------------------------------------------------------- */

static void put_clean(const char *s, size_t n)
{
    for (const unsigned char *p = (const unsigned char *)s, *end = p + n; p < end; p++) {
        if (*p == '\n')
            fputs("\\n", stdout);
        else if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            printf("\\x%02x", *p);
        else
            putchar(*p);
    }
}

static void print_text(json_t *rec)
{
    static const char *const fixed[] = {"time", "host", "tag", "message"};
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(rec, fixed[i]);
        if (i)
            putchar(' ');
        if (json_string_length(v))
            put_clean(json_string_value(v), json_string_length(v));
        else
            putchar('-');
    }
    const char *key;
    json_t *v;
    json_object_foreach(rec, key, v)
    {
        if (!strcmp(key, "time") || !strcmp(key, "host") || !strcmp(key, "tag") ||
            !strcmp(key, "message"))
            continue;
        char *enc = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        printf(" ");
        put_clean(key, strlen(key));
        putchar('=');
        if (enc)
            put_clean(enc, strlen(enc));
        else
            put_clean(json_string_value(v), json_string_length(v));
        free(enc);
    }
    putchar('\n');
}

/* The collector's verdict on the query, sent as a last line before it ends
 * the stream (a regex too costly to match). */
static void take_error(struct server *s, json_t *o)
{
    json_t *pos = json_object_get(o, "position");
    lh_cli_query_error("tail", s->ctx->query, json_string_value(json_object_get(o, "error")),
                       json_is_integer(pos) ? (long)json_integer_value(pos) : 0);
    s->ctx->bad_query = true;
}

static bool is_record(const char *line, size_t len)
{
    static const char head[] = "{\"time\":\"";
    return len >= sizeof head - 1 && memcmp(line, head, sizeof head - 1) == 0;
}

/* Records start {"time":" (SPEC section 2): in json they go out as they
 * came, so no JSON parser has to hold them (jansson refuses a NUL in a key);
 * a record text mode cannot parse is printed as it came. */
static void take_line(struct server *s, const char *line, size_t len)
{
    if (is_record(line, len) && s->ctx->json) {
        printf("%.*s\n", (int)len, line);
        return;
    }
    /* Records may hold NUL, sent as \u0000. */
    json_t *o = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
    json_t *dropped = json_object_get(o, "dropped");
    if (is_record(line, len) && !json_is_object(o)) {
        put_clean(line, len);
        putchar('\n');
    } else if (!json_is_object(o)) {
        s->ctx->unreadable++;
        fprintf(stderr, "loghaul tail: %s: skipped a line that is not a JSON object\n", s->url);
    } else if (json_is_integer(dropped)) {
        fprintf(stderr, "loghaul tail: %s: %lld records dropped (this reader was too slow)\n",
                s->url, (long long)json_integer_value(dropped));
    } else if (json_is_string(json_object_get(o, "error"))) {
        take_error(s, o);
    } else if (is_record(line, len)) {
        print_text(o);
    } /* else a control line this version does not know */
    json_decref(o);
}

static void on_chunk(const char *data, size_t len, void *arg)
{
    struct server *s = arg;
    char *line;
    size_t n;
    if (evbuffer_add(s->buf, data, len) != 0) {
        fprintf(stderr, "loghaul tail: %s: out of memory, a record was lost\n", s->url);
        return;
    }
    while ((line = evbuffer_readln(s->buf, &n, EVBUFFER_EOL_LF)) != NULL) {
        if (n)
            take_line(s, line, n);
        free(line);
    }
    if (evbuffer_get_length(s->buf) > MAX_LINE) {
        fprintf(stderr, "loghaul tail: %s: skipped a line over %zu bytes\n", s->url, MAX_LINE);
        evbuffer_drain(s->buf, evbuffer_get_length(s->buf));
    }
    fflush(stdout);
}

/* ---- running ------------------------------------------------------------ */

static void on_end(const struct lh_http_response *res, void *arg)
{
    struct server *s = arg;
    struct tail_ctx *ctx = s->ctx;
    char why[512];
    long pos;
    s->ended = true;
    if (res->status == 400) {
        lh_cli_error_body(res, why, sizeof why, &pos);
        lh_cli_query_error("tail", ctx->query, why, pos < 0 ? 0 : pos);
        ctx->bad_query = true;
    } else if (res->status == 200 && !ctx->bad_query) {
        fprintf(stderr, "loghaul tail: %s: the collector ended the stream\n", s->url);
    } else {
        lh_cli_failure(res, why, sizeof why);
        fprintf(stderr, "loghaul tail: %s: %s\n", s->url, why);
    }
    if (--ctx->running == 0 || ctx->bad_query)
        event_base_loopexit(ctx->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct tail_ctx *ctx = arg;
    (void)sig;
    (void)what;
    ctx->interrupted = true;
    event_base_loopexit(ctx->base, NULL);
}

static int follow(struct tail_ctx *ctx, struct server *servers, const char *path)
{
    struct lh_http_opts hopts = lh_cli_conn_http(ctx->conn, MAX_ERROR_BODY);
    struct lh_http_client *client = NULL;
    struct event *sint = evsignal_new(ctx->base, SIGINT, on_signal, ctx);
    struct event *sterm = evsignal_new(ctx->base, SIGTERM, on_signal, ctx);
    char err[512];
    int rc = LH_EXIT_FAIL;
    if (!sint || !sterm || evsignal_add(sint, NULL) || evsignal_add(sterm, NULL) ||
        lh_http_client_create(ctx->base, &hopts, &client, err, sizeof err) != 0) {
        fprintf(stderr, "loghaul tail: cannot start: %s\n", client ? "out of memory" : err);
        goto out;
    }
    for (size_t i = 0; i < ctx->conn->n_servers; i++) {
        servers[i] = (struct server){.ctx = ctx, .url = ctx->conn->servers[i],
                                     .buf = evbuffer_new()};
        int r = servers[i].buf ? lh_http_stream(client, servers[i].url, path, on_chunk, on_end,
                                                &servers[i], err, sizeof err)
                               : LH_ENOMEM;
        if (r == LH_EINVAL) {
            rc = lh_cli_usage_error("tail", "%s", err);
            goto out;
        }
        if (r == 0)
            ctx->running++;
        else
            fprintf(stderr, "loghaul tail: %s\n", servers[i].buf ? err : "out of memory");
    }
    if (ctx->running)
        event_base_dispatch(ctx->base);
    rc = ctx->bad_query ? LH_EXIT_USAGE
         : ctx->unreadable ? LH_EXIT_FAIL
         : ctx->interrupted ? LH_EXIT_OK : LH_EXIT_FAIL;
out:
    lh_http_client_destroy(client);
    if (sint)
        event_free(sint);
    if (sterm)
        event_free(sterm);
    return rc;
}

int lh_cli_tail(int argc, char **argv)
{
    struct lh_cli_conn conn = {.cmd = "tail", .timeout_s = DEFAULT_TIMEOUT_S};
    struct tail_ctx ctx = {.conn = &conn};
    struct server *servers = NULL;
    char *query = NULL, *path = NULL;
    int rc = parse_args(&conn, &query, argc, argv);
    if (rc == 0) {
        ctx.query = query;
        ctx.json = lh_cli_conn_json(&conn);
        ctx.base = event_base_new();
        servers = calloc(conn.n_servers, sizeof *servers);
        path = strdup("/api/v1/tail");
        /* local=1: each collector streams its own records, never its peers'. */
        if (!ctx.base || !servers || !path || lh_net_append_query(&path, "q", query) ||
            (conn.n_servers > 1 && lh_net_append_query(&path, "local", "1"))) {
            fputs("loghaul tail: out of memory\n", stderr);
            rc = LH_EXIT_FAIL;
        } else {
            rc = follow(&ctx, servers, path);
        }
    }
    for (size_t i = 0; servers && i < conn.n_servers; i++)
        if (servers[i].buf)
            evbuffer_free(servers[i].buf);
    free(servers);
    if (ctx.base)
        event_base_free(ctx.base);
    free(path);
    free(query);
    lh_cli_conn_free(&conn);
    return rc < 0 ? LH_EXIT_OK : rc;
}
