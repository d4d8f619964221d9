#include "collector/search/routes.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "collector/search/aggregate.h"
#include "collector/search/federation.h"
#include "common/net/http_reply.h"
#include "collector/search/search.h"
#include "collector/search/tail.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/net/net.h"
#include "common/base/util.h"

#define ROUTES_LOG "http"
#define DEFAULT_LIMIT 100
#define HIST_DEFAULT_SPAN_S 3600
#define HIST_DEFAULT_BUCKETS 60
#define MAX_TIME_PARAM 64
#define DEFAULT_QUERY_TIMEOUT_MS 30000
#define TIME_RANGE_NOTE "times past " LH_TIME_RANGE_TEXT " count as its ends"

enum kind { K_SEARCH, K_HIST, K_STATS };

/* A request waiting for its peers: the local answer is ready. */
struct pending {
    struct lh_routes *r;
    struct evhttp_request *req;
    enum kind kind;
    struct evbuffer *lines;   /* K_SEARCH: local NDJSON */
    bool asc;
    size_t limit;
    json_t *local;            /* K_HIST, K_STATS */
    char **by;                /* K_STATS: group fields (copied) */
    size_t n_by;
    LIST_ENTRY(pending) link;
};

#define LATENCY_METRIC "loghaul_collector_query_duration_seconds"

/* Upper bounds (seconds) of the query latency histogram's buckets. */
static const double latency_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,   1,    2.5,   5,    10};
#define N_BOUNDS (sizeof latency_bounds / sizeof latency_bounds[0])

/* The registry has counters and gauges only: the histogram is kept here
 * (every request runs on the one event_base thread) and rendered after it.
 * It times the local part of a query; peers answer later. */
struct latency {
    uint64_t le[N_BOUNDS];     /* observations <= bound (not cumulative) */
    uint64_t count;
    double sum;
};

struct lh_routes {
    struct event_base *base;
    struct lh_store *store;
    struct lh_tail *tail;
    struct lh_fed *fed;       /* NULL without peers */
    LIST_HEAD(, pending) pending;
    struct lh_metric *queries;
    struct lh_metric *timeouts;
    struct latency latency;
    int64_t query_timeout_ms;
};

/* The parameters every endpoint shares. */
struct params {
    struct evkeyvalq kv;
    const char *q, *from, *to;
    bool local;
    struct lh_query *query;
    int64_t from_ns, to_ns;
    int64_t deadline_ms;      /* lh_mono_ms() past which the scan gives up */
};

/* {"partial": true, "failed": [...]} for the peers that failed, or NULL. */
static json_t *partial_marker(const struct lh_fed_answer *a, size_t n)
{
    json_t *failed = json_array();
    for (size_t i = 0; failed && i < n; i++)
        if (!a[i].ok)
            json_array_append_new(failed, json_string(a[i].peer));
    if (json_array_size(failed) == 0) {
        json_decref(failed);
        return NULL;
    }
    return json_pack("{s:b, s:o}", "partial", 1, "failed", failed);
}

/* ---- parameters --------------------------------------------------------- */

/* Parses the query string, q, from and to; answers 400 itself on error. */
static int parse_params(struct evhttp_request *req, struct params *p)
{
    const char *qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct lh_query_error qe = {.position = 0};
    const char *msg = NULL;
    *p = (struct params){.from_ns = INT64_MIN, .to_ns = INT64_MAX};
    TAILQ_INIT(&p->kv);
    if (qs && evhttp_parse_query_str(qs, &p->kv) != 0) {
        lh_reply_error(req, 400, "malformed query string", -1);
        return LH_EINVAL;
    }
    p->q = evhttp_find_header(&p->kv, "q");
    p->from = evhttp_find_header(&p->kv, "from");
    p->to = evhttp_find_header(&p->kv, "to");
    const char *local = evhttp_find_header(&p->kv, "local");
    p->local = local && strcmp(local, "0") != 0;
    if (p->from && p->from[0] && lh_parse_time_clamp(p->from, &p->from_ns) != 0)
        msg = "from must be RFC 3339 or unix seconds (" TIME_RANGE_NOTE ")";
    else if (p->to && p->to[0] && lh_parse_time_clamp(p->to, &p->to_ns) != 0)
        msg = "to must be RFC 3339 or unix seconds (" TIME_RANGE_NOTE ")";
    else if (p->from_ns > p->to_ns)
        msg = "from is after to";
    if (msg) {
        lh_reply_error(req, 400, msg, -1);
        return LH_EINVAL;
    }
    if (lh_query_parse(p->q ? p->q : "", &p->query, &qe) != 0) {
        lh_reply_error(req, 400, qe.msg[0] ? qe.msg : "invalid query", qe.position);
        return LH_EINVAL;
    }
    return 0;
}

static void params_free(struct params *p)
{
    lh_query_free(p->query);
    evhttp_clear_headers(&p->kv);
}

/* Answers a scan that failed: a regex PCRE2 gave up on is the query's
 * fault (400, pointing at it); a spent time budget is 503, naming it. */
static void reply_failed(struct lh_routes *r, struct evhttp_request *req,
                         const struct params *p, int rc)
{
    struct lh_query_error qe = {.position = 0};
    char msg[200];
    if (lh_query_status(p->query, &qe) != 0) {
        lh_reply_error(req, 400, qe.msg, qe.position);
    } else if (rc == LH_ETIMEDOUT) {
        lh_metric_add(r->timeouts, 1);
        snprintf(msg, sizeof msg, "query timed out: it ran past search.query_timeout (%gs); "
                 "narrow the time range or the query", (double)r->query_timeout_ms / 1000);
        lh_reply_error(req, 503, msg, -1);
    } else {
        LH_ERROR(ROUTES_LOG, "query failed: %s", lh_strerror(rc));
        lh_reply_error(req, 500, lh_strerror(rc), -1);
    }
}

static bool federate(const struct lh_routes *r, const struct params *p)
{
    return r->fed && !p->local;
}

/* The request's own query string with local=1 appended, as a path. */
static char *peer_path(struct evhttp_request *req, const char *path)
{
    const char *qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    size_t n = strlen(path) + (qs ? strlen(qs) : 0) + 16;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s?%s%slocal=1", path, qs ? qs : "", qs && *qs ? "&" : "");
    return s;
}

/* ---- federation --------------------------------------------------------- */

static void pending_free(struct pending *pd)
{
    LIST_REMOVE(pd, link);
    if (pd->lines)
        evbuffer_free(pd->lines);
    json_decref(pd->local);
    for (size_t i = 0; i < pd->n_by; i++)
        free(pd->by[i]);
    free(pd->by);
    free(pd);
}

static struct pending *pending_new(struct lh_routes *r, struct evhttp_request *req,
                                   enum kind kind)
{
    struct pending *pd = calloc(1, sizeof *pd);
    if (!pd)
        return NULL;
    pd->r = r;
    pd->req = req;
    pd->kind = kind;
    LIST_INSERT_HEAD(&r->pending, pd, link);
    return pd;
}

/* One line of a search answer, wherever it came from. */
struct line {
    int64_t ns;
    size_t src, seq;
    const char *p;
    size_t len;
};

struct lines {
    struct line *v;
    size_t n, cap;
    bool asc;
};

/* Takes the record lines of body (SPEC section 2: time comes first);
 * other lines are control lines and are dropped. */
static int take_lines(struct lines *ls, size_t src, const char *body, size_t len)
{
    static const char head[] = "{\"time\":\"";
    for (const char *p = body, *end = body + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        const char *q = n > sizeof head ? memchr(p + sizeof head - 1, '"', n - sizeof head + 1)
                                        : NULL;
        char t[MAX_TIME_PARAM];
        int64_t ns;
        size_t tl = q ? (size_t)(q - p) - (sizeof head - 1) : 0;
        if (q && memcmp(p, head, sizeof head - 1) == 0 && tl < sizeof t) {
            memcpy(t, p + sizeof head - 1, tl);
            t[tl] = '\0';
            if (lh_parse_time(t, &ns) == 0) {
                if (ls->n == ls->cap) {
                    size_t cap = ls->cap ? ls->cap * 2 : 256;
                    struct line *g = realloc(ls->v, cap * sizeof *g);
                    if (!g)
                        return LH_ENOMEM;
                    ls->v = g;
                    ls->cap = cap;
                }
                ls->v[ls->n] = (struct line){.ns = ns, .src = src, .seq = ls->n, .p = p, .len = n};
                ls->n++;
            }
        }
        p += n + 1;
    }
    return 0;
}

static int cmp_line(const void *a, const void *b, void *asc)
{
    const struct line *x = a, *y = b;
    if (x->ns != y->ns)
        return (x->ns < y->ns) == *(const bool *)asc ? -1 : 1;
    if (x->src != y->src)
        return x->src < y->src ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void finish_search(struct pending *pd, const struct lh_fed_answer *a, size_t n)
{
    struct lines ls = {.asc = pd->asc};
    size_t local_len = evbuffer_get_length(pd->lines);
    const char *local = local_len ? (const char *)evbuffer_pullup(pd->lines, -1) : "";
    int rc = local ? take_lines(&ls, 0, local, local_len) : LH_ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (a[i].ok)
            rc = take_lines(&ls, i + 1, a[i].body, a[i].len);
    struct evbuffer *out = evbuffer_new();
    if (rc == 0 && out) {
        if (ls.n)
            qsort_r(ls.v, ls.n, sizeof *ls.v, cmp_line, &ls.asc);
        for (size_t i = 0; i < ls.n && i < pd->limit; i++)
            if (evbuffer_add(out, ls.v[i].p, ls.v[i].len) != 0 || evbuffer_add(out, "\n", 1))
                rc = LH_ENOMEM;
        json_t *marker = partial_marker(a, n);
        char *m = marker ? json_dumps(marker, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (m && evbuffer_add_printf(out, "%s\n", m) < 0)
            rc = LH_ENOMEM;
        free(m);
        json_decref(marker);
    }
    if (rc == 0 && out) {
        lh_reply_buf(pd->req, 200, "application/x-ndjson", out);
    } else {
        lh_reply_error(pd->req, 500, lh_strerror(rc ? rc : LH_ENOMEM), -1);
    }
    if (out)
        evbuffer_free(out);
    free(ls.v);
}

static void merge_json(struct pending *pd, const struct lh_fed_answer *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_t *theirs = a[i].ok ? json_loadb(a[i].body, a[i].len, JSON_ALLOW_NUL, NULL) : NULL;
        if (pd->kind == K_HIST && json_is_array(theirs))
            lh_hist_merge(pd->local, theirs);
        else if (json_is_array(theirs) &&
                 lh_stats_merge(pd->local, theirs, (const char *const *)pd->by, pd->n_by) != 0)
            LH_ERROR(ROUTES_LOG, "out of memory merging stats from %s", a[i].peer);
        json_decref(theirs);
    }
    if (pd->kind == K_STATS)
        lh_stats_finish(pd->local);
    json_t *marker = partial_marker(a, n);
    if (marker)
        json_array_append_new(pd->local, marker);
    lh_reply_json(pd->req, 200, pd->local);
}

static void on_peers(void *ud, const struct lh_fed_answer *a, size_t n)
{
    struct pending *pd = ud;
    if (pd->kind == K_SEARCH)
        finish_search(pd, a, n);
    else
        merge_json(pd, a, n);
    pending_free(pd);
}

/* Sends the request on to the peers; the reply comes from on_peers. */
static void ask_peers(struct lh_routes *r, struct pending *pd, const char *path_query)
{
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(pd->req),
                                          "Authorization");
    if (!path_query || lh_fed_ask(r->fed, path_query, auth, on_peers, pd) != 0) {
        lh_reply_error(pd->req, 500, "out of memory", -1);
        pending_free(pd);
    }
}

/* ---- search ------------------------------------------------------------- */

static int emit_line(void *ud, const char *line, size_t len)
{
    struct evbuffer *out = ud;
    if (evbuffer_add(out, line, len) != 0 || evbuffer_add(out, "\n", 1) != 0)
        return LH_ENOMEM;
    return 0;
}

/* Reads limit and order as the local search does. */
static const char *search_opts(const struct params *p, struct lh_store_scan_req *sr)
{
    const char *limit = evhttp_find_header(&p->kv, "limit");
    const char *order = evhttp_find_header(&p->kv, "order");
    *sr = (struct lh_store_scan_req){.query = p->query, .from_ns = p->from_ns,
                                     .to_ns = p->to_ns, .limit = DEFAULT_LIMIT,
                                     .deadline_ms = p->deadline_ms};
    if (limit) {
        char *end;
        errno = 0;
        long long v = strtoll(limit, &end, 10);
        if (errno || end == limit || *end || v <= 0)
            return "limit must be a positive integer";
        sr->limit = v > LH_SEARCH_MAX_LIMIT ? LH_SEARCH_MAX_LIMIT : (size_t)v;
    }
    if (order && strcmp(order, "desc") != 0 && strcmp(order, "asc") != 0)
        return "order must be desc or asc";
    sr->asc = order && strcmp(order, "asc") == 0;
    return NULL;
}

static void on_search(struct lh_routes *r, struct evhttp_request *req, struct params *p)
{
    struct lh_store_scan_req sr;
    const char *msg = search_opts(p, &sr);
    if (msg) {
        lh_reply_error(req, 400, msg, -1);
        return;
    }
    struct evbuffer *lines = evbuffer_new();
    int rc = lines ? lh_search_run(r->store, &sr, emit_line, lines) : LH_ENOMEM;
    struct pending *pd = NULL;
    if (rc != 0) {
        reply_failed(r, req, p, rc);
    } else if (!federate(r, p)) {
        lh_reply_buf(req, 200, "application/x-ndjson", lines);
    } else if (!(pd = pending_new(r, req, K_SEARCH))) {
        lh_reply_error(req, 500, "out of memory", -1);
    } else {
        pd->lines = lines;
        lines = NULL;
        pd->asc = sr.asc;
        pd->limit = sr.limit;
        char *path = peer_path(req, "/api/v1/search");
        ask_peers(r, pd, path);
        free(path);
    }
    if (lines)
        evbuffer_free(lines);
}

/* ---- stats -------------------------------------------------------------- */

static int copy_by(struct pending *pd, const char *const *by, size_t n_by)
{
    if (n_by && !(pd->by = calloc(n_by, sizeof *pd->by)))
        return LH_ENOMEM;
    for (; pd->n_by < n_by; pd->n_by++)
        if (!(pd->by[pd->n_by] = strdup(by[pd->n_by])))
            return LH_ENOMEM;
    return 0;
}

static void on_stats(struct lh_routes *r, struct evhttp_request *req, struct params *p,
                     const char *path)
{
    const char *const *by;
    size_t n_by;
    if (!lh_query_stats(p->query, &by, &n_by)) {
        lh_reply_error(req, 400, "the query needs '| stats count by FIELD, ...'", -1);
        return;
    }
    struct lh_stats_req sr = {.query = p->query, .from_ns = p->from_ns, .to_ns = p->to_ns,
                              .by = by, .n_by = n_by, .deadline_ms = p->deadline_ms};
    json_t *rows = NULL;
    int rc = lh_stats_run(r->store, &sr, &rows);
    if (rc != 0 && (lh_query_status(p->query, NULL) != 0 || rc == LH_ETIMEDOUT)) {
        reply_failed(r, req, p, rc);
    } else if (rc == LH_EINVAL || rc == LH_ETOOBIG) {
        char msg[128];
        snprintf(msg, sizeof msg, rc == LH_EINVAL ? "stats: at most %d fields after 'by'"
                                                  : "stats: more than %d groups",
                 rc == LH_EINVAL ? LH_STATS_MAX_FIELDS : LH_STATS_MAX_GROUPS);
        lh_reply_error(req, 400, msg, -1);
    } else if (rc != 0) {
        reply_failed(r, req, p, rc);
    } else if (!federate(r, p)) {
        lh_stats_finish(rows);
        lh_reply_json(req, 200, rows);
    } else {
        struct pending *pd = pending_new(r, req, K_STATS);
        if (!pd || copy_by(pd, by, n_by) != 0) {
            lh_reply_error(req, 500, "out of memory", -1);
            if (pd)
                pending_free(pd);
        } else {
            pd->local = json_incref(rows);
            char *pq = peer_path(req, path);
            ask_peers(r, pd, pq);
            free(pq);
        }
    }
    json_decref(rows);
}

/* ---- histogram ---------------------------------------------------------- */

/* Fills from/to/step with their defaults: the last hour, about 60 buckets. */
static const char *hist_opts(const struct params *p, struct lh_hist_req *hr)
{
    const char *step = evhttp_find_header(&p->kv, "step");
    int64_t now = lh_now_ns();
    *hr = (struct lh_hist_req){.query = p->query, .from_ns = p->from_ns, .to_ns = p->to_ns,
                               .deadline_ms = p->deadline_ms};
    if (!p->to || !p->to[0])
        hr->to_ns = now;
    if (!p->from || !p->from[0])
        hr->from_ns = hr->to_ns - HIST_DEFAULT_SPAN_S * LH_NS_PER_SEC;
    if (hr->from_ns > hr->to_ns)
        return "from is after to";
    int64_t ms;
    if (step && (lh_parse_duration(step, &ms) != 0 || ms < 1000 || ms % 1000 != 0))
        return "step must be a whole number of seconds, at least 1s (30s, 5m, 1h)";
    hr->step_s = step ? ms / 1000 : 1;
    if (!step) {
        int64_t span_s = (hr->to_ns - hr->from_ns) / LH_NS_PER_SEC;
        hr->step_s = span_s / HIST_DEFAULT_BUCKETS + 1;
    }
    if (lh_hist_buckets(hr) > LH_HIST_MAX_BUCKETS)
        return "too many buckets (at most 10000): widen step or narrow from/to";
    return NULL;
}

/* The peers get the resolved window, so "now" is this collector's. */
static char *hist_peer_path(const struct params *p, const struct lh_hist_req *hr)
{
    char from[LH_TIME_STRLEN], to[LH_TIME_STRLEN], step[32];
    snprintf(step, sizeof step, "%llds", (long long)hr->step_s);
    char *s = strdup("/api/v1/histogram");
    if (!s || lh_net_append_query(&s, "q", p->q ? p->q : "") != 0 ||
        lh_net_append_query(&s, "from", lh_format_time(hr->from_ns, from)) != 0 ||
        lh_net_append_query(&s, "to", lh_format_time(hr->to_ns, to)) != 0 ||
        lh_net_append_query(&s, "step", step) != 0 || lh_net_append_query(&s, "local", "1") != 0) {
        free(s);
        return NULL;
    }
    return s;
}

static void on_histogram(struct lh_routes *r, struct evhttp_request *req, struct params *p)
{
    struct lh_hist_req hr;
    const char *msg = hist_opts(p, &hr);
    json_t *buckets = NULL;
    int rc = msg ? LH_EINVAL : lh_hist_run(r->store, &hr, &buckets);
    if (msg) {
        lh_reply_error(req, 400, msg, -1);
    } else if (rc != 0) {
        reply_failed(r, req, p, rc);
    } else if (!federate(r, p)) {
        lh_reply_json(req, 200, buckets);
    } else {
        struct pending *pd = pending_new(r, req, K_HIST);
        if (!pd) {
            lh_reply_error(req, 500, "out of memory", -1);
        } else {
            pd->local = json_incref(buckets);
            char *pq = hist_peer_path(p, &hr);
            ask_peers(r, pd, pq);
            free(pq);
        }
    }
    json_decref(buckets);
}

/* ---- tail --------------------------------------------------------------- */

static void on_tail(struct lh_routes *r, struct evhttp_request *req, struct params *p)
{
    struct lh_query *q = p->query;
    p->query = NULL; /* the stream owns it now */
    int rc = lh_tail_start(r->tail, req, q);
    if (rc == LH_ETOOBIG) {
        /* It is not kept waiting for a connection's read_timeout either. */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        lh_reply_error(req, 503, "too many live tails open (search.max_tails): try again "
                       "later", -1);
    }
    else if (rc != 0)
        lh_reply_error(req, 500, lh_strerror(rc), -1);
}

/* ---- routing ------------------------------------------------------------ */

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void latency_observe(struct latency *l, double seconds)
{
    for (size_t i = 0; i < N_BOUNDS; i++) {
        if (seconds <= latency_bounds[i]) {
            l->le[i]++;
            break;
        }
    }
    l->count++;
    l->sum += seconds;
}

int lh_routes_render_metrics(const struct lh_routes *r, struct evbuffer *out)
{
    const struct latency *l = &r->latency;
    int rc = evbuffer_add_printf(out, "# HELP %s Time to answer a query (its local part)\n"
                                      "# TYPE %s histogram\n", LATENCY_METRIC, LATENCY_METRIC);
    uint64_t cum = 0;
    for (size_t i = 0; i < N_BOUNDS && rc >= 0; i++) {
        cum += l->le[i];
        rc = evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", LATENCY_METRIC,
                                 latency_bounds[i], (unsigned long long)cum);
    }
    if (rc >= 0)
        rc = evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
                                 LATENCY_METRIC, (unsigned long long)l->count, LATENCY_METRIC,
                                 l->sum, LATENCY_METRIC, (unsigned long long)l->count);
    return rc < 0 ? LH_ENOMEM : 0;
}

bool lh_routes_handle(struct lh_routes *r, struct evhttp_request *req, const char *path)
{
    bool tail = strcmp(path, "/api/v1/tail") == 0;
    if (!tail && strcmp(path, "/api/v1/search") != 0 &&
        strcmp(path, "/api/v1/histogram") != 0 && strcmp(path, "/api/v1/stats") != 0)
        return false;
    double t0 = mono_seconds();
    struct params p;
    if (parse_params(req, &p) != 0) {
        params_free(&p);
        return true;
    }
    p.deadline_ms = lh_mono_ms() + r->query_timeout_ms;
    const char *const *by;
    size_t n_by;
    if (strcmp(path, "/api/v1/histogram") == 0)
        on_histogram(r, req, &p);
    else if (tail)
        on_tail(r, req, &p);
    else if (strcmp(path, "/api/v1/stats") == 0 || lh_query_stats(p.query, &by, &n_by))
        on_stats(r, req, &p, path);
    else
        on_search(r, req, &p);
    params_free(&p);
    if (!tail) {
        lh_metric_add(r->queries, 1);
        latency_observe(&r->latency, mono_seconds() - t0);
    }
    return true;
}

/* ---- setup -------------------------------------------------------------- */

int lh_routes_new(struct event_base *base, struct lh_store *store, struct lh_metrics *metrics,
                  struct lh_routes **out)
{
    struct lh_routes *r = calloc(1, sizeof *r);
    if (!r)
        return LH_ENOMEM;
    r->base = base;
    r->store = store;
    r->query_timeout_ms = DEFAULT_QUERY_TIMEOUT_MS;
    LIST_INIT(&r->pending);
    r->queries = lh_metrics_get(metrics, LH_METRIC_COUNTER, "loghaul_collector_queries_total",
                                NULL, "Queries answered (search, histogram, stats)");
    r->timeouts = lh_metrics_get(metrics, LH_METRIC_COUNTER,
                                 "loghaul_collector_query_timeouts_total", NULL,
                                 "Queries answered 503 for running past search.query_timeout");
    if (lh_tail_new(metrics, &r->tail) != 0) {
        free(r);
        return LH_ENOMEM;
    }
    *out = r;
    return 0;
}

void lh_routes_set_query_timeout(struct lh_routes *r, int64_t ms)
{
    r->query_timeout_ms = ms;
}

int lh_routes_set_peers(struct lh_routes *r, char *const *peers, size_t n, char *err,
                        size_t errlen)
{
    struct lh_fed *fed = NULL;
    if (n) {
        int rc = lh_fed_new(r->base, peers, n, &fed, err, errlen);
        if (rc != 0)
            return rc;
        LH_INFO(ROUTES_LOG, "searches federate over %zu peer(s)", n);
    }
    lh_fed_free(r->fed);
    r->fed = fed;
    return 0;
}

struct lh_tail *lh_routes_tail(struct lh_routes *r)
{
    return r->tail;
}

void lh_routes_free(struct lh_routes *r)
{
    if (!r)
        return;
    lh_fed_free(r->fed);
    while (!LIST_EMPTY(&r->pending))
        pending_free(LIST_FIRST(&r->pending));
    lh_tail_free(r->tail);
    free(r);
}
