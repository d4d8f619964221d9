/* The file input: its configuration, the plugin hooks and /status.
 * Reading and lines are in in_file_lines.c, discovery, watching and
 * rotation in in_file_watch.c.
 *
 * With inotify (the default) a directory event wakes the input; a tick
 * every second still checks every open file for rotation and truncation
 * (and walks the patterns every RESCAN_TICKS), so a lost event delays a
 * file, never loses it. With `watch: poll` the tick does everything. */
#include <stdlib.h>
#include <string.h>

#include "agent/inputs/file/in_file_int.h"
#include "common/base/err.h"
#include "common/base/log.h"

/* Ticks between full walks of the patterns when inotify reports changes. */
#define RESCAN_TICKS 10

static const char *const read_from_values[] = {"tail", "head", NULL};
static const char *const watch_values[] = {"inotify", "poll", NULL};

static int validate_multiline(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct in_file_multiline *m = obj;
    if (!m->start)
        return lh_cfg_error(d, line, col, "multiline needs start (a regex)");
    struct lh_regex *re = NULL;
    char err[300];
    int rc = lh_regex_new(m->start, &re, err, sizeof err);
    lh_regex_free(re);
    return rc ? lh_cfg_error(d, line, col, "multiline start: %s", err) : 0;
}

static const struct lh_cfg_field multiline_fields[] = {
    {.key = "start", .type = LH_CFG_STR, .offset = offsetof(struct in_file_multiline, start),
     .help = "PCRE2 pattern of the first line of a record"},
    {.key = "timeout", .type = LH_CFG_DURATION,
     .offset = offsetof(struct in_file_multiline, timeout_ms), .defval = "2s", .min = 10,
     .max = 3600000, .help = "a record with no next start line goes out after this"},
    {0},
};

static const struct lh_cfg_schema multiline_schema = {
    .name = "multiline",
    .size = sizeof(struct in_file_multiline),
    .fields = multiline_fields,
    .present_offset1 = offsetof(struct in_file_multiline, present) + 1,
    .validate = validate_multiline,
};

static const struct lh_cfg_field fields[] = {
    {.key = "tag", .type = LH_CFG_STR, .offset = offsetof(struct in_file_cfg, tag),
     .flags = LH_CFG_F_REQUIRED, .help = "routing key of the records, e.g. nginx.access"},
    {.key = "paths", .type = LH_CFG_STRLIST, .offset = offsetof(struct in_file_cfg, paths),
     .flags = LH_CFG_F_REQUIRED, .help = "glob patterns of files to follow (** spans directories)"},
    {.key = "exclude", .type = LH_CFG_STRLIST, .offset = offsetof(struct in_file_cfg, exclude),
     .help = "fnmatch(3) patterns on the path or the base name to skip"},
    {.key = "read_from", .type = LH_CFG_ENUM, .offset = offsetof(struct in_file_cfg, read_from),
     .defval = "tail", .enum_values = read_from_values,
     .help = "where files seen at start without a checkpoint begin"},
    {.key = "max_line", .type = LH_CFG_SIZE, .offset = offsetof(struct in_file_cfg, max_line),
     .defval = "64KiB", .min = 16, .max = 16 << 20,
     .help = "longer lines are split into pieces flagged truncated: true"},
    {.key = "watch", .type = LH_CFG_ENUM, .offset = offsetof(struct in_file_cfg, watch),
     .defval = "inotify", .enum_values = watch_values,
     .help = "inotify | poll (once a second, for file systems without inotify)"},
    {.key = "multiline", .type = LH_CFG_SECTION, .offset = offsetof(struct in_file_cfg, multiline),
     .sub = &multiline_schema, .help = "{start: regex, timeout: 2s}: records of several lines"},
    {.key = "parser", .type = LH_CFG_ENUM, .offset = offsetof(struct in_file_cfg, tx.parser),
     .defval = "none", .enum_values = lh_parser_names, .help = "none | json | logfmt | regex"},
    {.key = "regex", .type = LH_CFG_STR, .offset = offsetof(struct in_file_cfg, tx.regex),
     .help = "PCRE2 pattern with named groups, for parser: regex"},
    {.key = "time_key", .type = LH_CFG_STR, .offset = offsetof(struct in_file_cfg, tx.time_key),
     .help = "parsed field holding the record time"},
    {.key = "time_format", .type = LH_CFG_STR,
     .offset = offsetof(struct in_file_cfg, tx.time_format),
     .help = "rfc3339 (default) | epoch | epoch_ms | epoch_us | epoch_ns | strptime pattern",
     .check = lh_time_fmt_check},
    {.key = "keep_raw", .type = LH_CFG_BOOL, .offset = offsetof(struct in_file_cfg, tx.keep_raw),
     .defval = "true", .help = "keep the raw line in message once a parser succeeded"},
    {0},
};

static int validate(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct in_file_cfg *c = obj;
    if (c->tag && !c->tag[0])
        return lh_cfg_error(d, line, col, "file input: tag must not be empty");
    if (c->paths.n == 0)
        return lh_cfg_error(d, line, col, "file input: paths needs at least one pattern");
    char err[300];
    if (lh_tx_cfg_check(&c->tx, err, sizeof err) != 0)
        return lh_cfg_error(d, line, col, "file input: %s", err);
    if (c->tx.regex && c->tx.parser != LH_PARSER_REGEX)
        lh_cfg_warn(d, line, col, "file input: regex is ignored unless parser: regex");
    return 0;
}

const struct lh_cfg_schema lh_in_file_schema = {
    .name = "file input",
    .size = sizeof(struct in_file_cfg),
    .fields = fields,
    .validate = validate,
};

static void on_more(evutil_socket_t fd, short what, void *arg)
{
    in_file_read_all(arg);
}

static void on_ml_timer(evutil_socket_t fd, short what, void *arg)
{
    struct in_file *in = arg;
    in_file_ml_expire(in);
    if (!in->paused && !in->stopped)
        lh_route_idle(in->route); /* a record the timeout completed goes out now */
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct in_file *in = arg;
    bool poll = !in->watch;
    in_file_scan(in, poll || ++in->ticks % RESCAN_TICKS == 0);
    in->all_ready |= poll;
    in_file_read_all(in);
}

static int in_file_create(const struct lh_cfg_item *item, const struct lh_agent_ctx *ctx,
                          void **state, char *err, size_t errlen)
{
    struct in_file *in = calloc(1, sizeof *in);
    if (!in)
        return LH_ENOMEM;
    *state = in;
    in->cfg = (const struct in_file_cfg *)item;
    in->ctx = *ctx;
    in->host_len = strlen(ctx->host);
    lh_rb_init(&in->rb);
    int rc = lh_transform_new(&in->cfg->tx, in->cfg->tag, ctx->filters, ctx->metrics,
                              &in->tx, err, errlen);
    if (rc == 0 && in->cfg->multiline.present)
        rc = lh_regex_new(in->cfg->multiline.start, &in->ml_start, err, errlen);
    if (rc != 0)
        return rc;
    in->tick = event_new(ctx->base, -1, EV_PERSIST, on_tick, in);
    in->more = event_new(ctx->base, -1, 0, on_more, in);
    in->ml_timer = evtimer_new(ctx->base, on_ml_timer, in);
    rc = in->tick && in->more && in->ml_timer ? in_file_watch_new(in) : LH_ENOMEM;
    if (rc == 0)
        rc = lh_pipeline_route(ctx->pl, in->cfg->tag, &in->route);
    if (rc != 0)
        snprintf(err, errlen, "file input '%s': %s", in->cfg->tag, lh_strerror(rc));
    return rc;
}

static int in_file_start(void *state)
{
    struct in_file *in = state;
    in_file_scan(in, true);
    struct timeval sec = {1, 0};
    if (event_add(in->tick, &sec) != 0)
        return LH_ENOMEM;
    in->all_ready = true;
    event_active(in->more, EV_TIMEOUT, 0);
    return LH_OK;
}

static void in_file_pause(void *state)
{
    struct in_file *in = state;
    in->paused = true;
}

static void in_file_resume(void *state)
{
    struct in_file *in = state;
    in->paused = false;
    in->all_ready = true;
    if (!in->stopped)
        event_active(in->more, EV_TIMEOUT, 0);
}

static void in_file_stop(void *state)
{
    struct in_file *in = state;
    in->stopped = true;
    event_del(in->tick);
    event_del(in->more);
    event_del(in->ml_timer);
    in_file_watch_free(in->watch);
    in->watch = NULL;
}

static void in_file_destroy(void *state)
{
    struct in_file *in = state;
    if (!in)
        return;
    while (in->files)
        in_file_release(in, in->files);
    in_file_watch_free(in->watch);
    if (in->tick)
        event_free(in->tick);
    if (in->more)
        event_free(in->more);
    if (in->ml_timer)
        event_free(in->ml_timer);
    free(in->buf);
    lh_regex_free(in->ml_start);
    lh_transform_free(in->tx);
    lh_rb_free(&in->rb);
    free(in);
}

static void in_file_status(void *state, json_t *files)
{
    struct in_file *in = state;
    for (struct tfile *tf = in->files; tf; tf = tf->next) {
        if (tf->fd < 0)
            continue;
        uint64_t committed = tf->ck->committed;
        json_array_append_new(
            files, json_pack("{sssssIsIsIsIsb}", "input", in->cfg->tag, "path", tf->path,
                             "offset", (json_int_t)tf->offset, "committed", (json_int_t)committed,
                             "size", (json_int_t)tf->size, "lag",
                             (json_int_t)(tf->size > committed ? tf->size - committed : 0),
                             "rotated", tf->draining));
    }
}

const struct lh_input_ops lh_in_file_ops = {
    .type = "file",
    .schema = &lh_in_file_schema,
    .create = in_file_create,
    .start = in_file_start,
    .pause = in_file_pause,
    .resume = in_file_resume,
    .stop = in_file_stop,
    .destroy = in_file_destroy,
    .status = in_file_status,
};
