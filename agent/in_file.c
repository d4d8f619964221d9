/* The file input: globs, follows growth, basic rotation, lines → records.
 *
 * Growth is found by polling every open file once a second and by reading
 * again at once while reads keep filling the buffer; the tick is the one
 * place that looks at the file system, so an inotify watcher can later
 * replace the poll by calling the same scan/read steps. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/pipeline.h"
#include "agent/recbuilder.h"
#include "agent/transform.h"
#include "common/err.h"
#include "common/log.h"
#include "common/record.h"
#include "common/util.h"

#define READ_BUF (256u * 1024)
/* Chunks one file may read per loop turn, so one busy file cannot starve
 * the others or the network. */
#define READS_PER_TURN 4

enum { READ_FROM_TAIL, READ_FROM_HEAD };
static const char *const read_from_values[] = {"tail", "head", NULL};

struct in_file_cfg {
    struct lh_cfg_item item;
    char *tag;
    struct lh_strlist paths;
    struct lh_strlist exclude;
    int read_from;
    int64_t max_line;
    struct lh_tx_cfg tx;
};

static const struct lh_cfg_field fields[] = {
    {.key = "tag", .type = LH_CFG_STR, .offset = offsetof(struct in_file_cfg, tag),
     .flags = LH_CFG_F_REQUIRED, .help = "routing key of the records, e.g. nginx.access"},
    {.key = "paths", .type = LH_CFG_STRLIST, .offset = offsetof(struct in_file_cfg, paths),
     .flags = LH_CFG_F_REQUIRED, .help = "glob(3) patterns of files to follow"},
    {.key = "exclude", .type = LH_CFG_STRLIST, .offset = offsetof(struct in_file_cfg, exclude),
     .help = "fnmatch(3) patterns on the path or the base name to skip"},
    {.key = "read_from", .type = LH_CFG_ENUM, .offset = offsetof(struct in_file_cfg, read_from),
     .defval = "tail", .enum_values = read_from_values,
     .help = "where files seen at start without a checkpoint begin"},
    {.key = "max_line", .type = LH_CFG_SIZE, .offset = offsetof(struct in_file_cfg, max_line),
     .defval = "64KiB", .min = 16, .max = 16 << 20,
     .help = "longer lines are split into pieces flagged truncated: true"},
    {.key = "parser", .type = LH_CFG_ENUM, .offset = offsetof(struct in_file_cfg, tx.parser),
     .defval = "none", .enum_values = lh_parser_names, .help = "none | json | logfmt | regex"},
    {.key = "regex", .type = LH_CFG_STR, .offset = offsetof(struct in_file_cfg, tx.regex),
     .help = "PCRE2 pattern with named groups, for parser: regex"},
    {.key = "time_key", .type = LH_CFG_STR, .offset = offsetof(struct in_file_cfg, tx.time_key),
     .help = "parsed field holding the record time"},
    {.key = "time_format", .type = LH_CFG_STR,
     .offset = offsetof(struct in_file_cfg, tx.time_format),
     .help = "rfc3339 (default) | epoch | epoch_ms | epoch_us | epoch_ns | strptime pattern"},
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
    return 0;
}

const struct lh_cfg_schema lh_in_file_schema = {
    .name = "file input",
    .size = sizeof(struct in_file_cfg),
    .fields = fields,
    .validate = validate,
};

struct tfile {
    struct tfile *next;
    char *path;
    int fd;                   /* -1: could not be opened (warned once) */
    uint64_t dev, ino;
    uint64_t offset;          /* next byte to read */
    uint64_t size;            /* at the last look */
    char *partial;            /* an unfinished line, at most max_line bytes */
    size_t partial_len;
    bool long_line;           /* pieces of the current line were emitted */
    bool draining;            /* the path names another file now: read to EOF */
    struct lh_ckpt_file *ck;
};

struct in_file {
    const struct in_file_cfg *cfg;
    struct lh_agent_ctx ctx;
    struct lh_route *route;
    struct lh_transform *tx;
    struct lh_recbuilder rb;
    size_t host_len;
    struct tfile *files;
    struct event *tick;
    struct event *more;
    char *buf;
    bool paused, stopped, started;
};

/* ---- lines → records ---------------------------------------------------- */

static void emit(struct in_file *in, struct tfile *tf, const char *p, size_t n, bool truncated,
                 uint64_t end)
{
    struct lh_tx_line l = {p, n, in->ctx.host, in->host_len, tf->path, strlen(tf->path), truncated};
    /* Read time per line (a vDSO clock read): lines of one chunk keep
     * their file order when results are sorted by time. */
    int64_t ns = lh_now_ns();
    if (lh_transform_line(in->tx, &in->rb, &l, &ns))
        lh_route_emit(in->route, tf->ck, end, ns, lh_rb_pack, &in->rb);
}

/* Bytes p[0..len) of a line; end = file offset just past them; complete
 * when a newline follows them (at offset end). */
static int take(struct in_file *in, struct tfile *tf, const char *p, size_t len, uint64_t end,
                bool complete)
{
    size_t max = (size_t)in->cfg->max_line;
    while (tf->partial_len + len > max) {
        if (tf->partial_len) {
            size_t n = max - tf->partial_len;
            memcpy(tf->partial + tf->partial_len, p, n);
            p += n;
            len -= n;
            tf->partial_len = 0;
            emit(in, tf, tf->partial, max, true, end - len);
        } else {
            emit(in, tf, p, max, true, end - (len - max));
            p += max;
            len -= max;
        }
        tf->long_line = true;
    }
    if (len && (tf->partial_len || !complete)) {
        if (!tf->partial && !(tf->partial = malloc(max)))
            return LH_ENOMEM;
        memcpy(tf->partial + tf->partial_len, p, len);
        tf->partial_len += len;
    }
    if (!complete)
        return LH_OK;
    const char *line = tf->partial_len ? tf->partial : p;
    size_t n = tf->partial_len ? tf->partial_len : len;
    if (n && line[n - 1] == '\r')
        n--;
    /* A line exactly a multiple of max_line long already went out whole. */
    if (n || !tf->long_line)
        emit(in, tf, line, n, tf->long_line, end + 1);
    tf->partial_len = 0;
    tf->long_line = false;
    return LH_OK;
}

static int split_lines(struct in_file *in, struct tfile *tf, const char *data, size_t n)
{
    size_t pos = 0;
    while (pos < n) {
        const char *nl = memchr(data + pos, '\n', n - pos);
        size_t stop = nl ? (size_t)(nl - data) : n;
        int rc = take(in, tf, data + pos, stop - pos, tf->offset + stop, nl != NULL);
        if (rc != 0)
            return rc;
        pos = nl ? stop + 1 : n;
    }
    return LH_OK;
}

/* ---- files -------------------------------------------------------------- */

static void tfile_free(struct in_file *in, struct tfile *tf)
{
    if (tf->fd >= 0)
        close(tf->fd);
    if (tf->ck)
        lh_ckpt_file_close(in->ctx.ckpt, tf->ck);
    free(tf->partial);
    free(tf->path);
    free(tf);
}

static void tfile_unlink(struct in_file *in, struct tfile *tf)
{
    for (struct tfile **p = &in->files; *p; p = &(*p)->next) {
        if (*p == tf) {
            *p = tf->next;
            break;
        }
    }
    tfile_free(in, tf);
}

/* Reads up to READS_PER_TURN chunks. True when more data is waiting. */
static bool read_some(struct in_file *in, struct tfile *tf)
{
    for (int i = 0; i < READS_PER_TURN && !in->paused && !in->stopped; i++) {
        ssize_t n = pread(tf->fd, in->buf, READ_BUF, (off_t)tf->offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            LH_WARN("in_file", "[%s] reading %s: %s", in->cfg->tag, tf->path, strerror(errno));
            return false;
        }
        if (n == 0) {
            if (tf->draining) {
                LH_INFO("in_file", "[%s] finished rotated file %s at offset %llu", in->cfg->tag,
                        tf->path, (unsigned long long)tf->offset);
                tfile_unlink(in, tf);
            }
            return false;
        }
        if (split_lines(in, tf, in->buf, (size_t)n) != 0)
            LH_ERROR("in_file", "[%s] %s: out of memory splitting lines", in->cfg->tag, tf->path);
        tf->offset += (uint64_t)n;
        if (tf->offset > tf->size)
            tf->size = tf->offset;
        if ((size_t)n < READ_BUF)
            return false;
    }
    return !in->stopped;
}

static void read_all(struct in_file *in)
{
    bool more = false;
    struct tfile *tf = in->files;
    while (tf && !in->paused && !in->stopped) {
        struct tfile *next = tf->next; /* read_some may free tf */
        if (tf->fd >= 0 && read_some(in, tf))
            more = true;
        tf = next;
    }
    if (more)
        event_active(in->more, EV_TIMEOUT, 0);
}

static void on_more(evutil_socket_t fd, short what, void *arg)
{
    read_all(arg);
}

static bool excluded(const struct in_file *in, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < in->cfg->exclude.n; i++) {
        const char *pat = in->cfg->exclude.v[i];
        if (fnmatch(pat, path, 0) == 0 || fnmatch(pat, base, 0) == 0)
            return true;
    }
    return false;
}

static struct tfile *find_live(struct in_file *in, const char *path)
{
    for (struct tfile *tf = in->files; tf; tf = tf->next)
        if (!tf->draining && strcmp(tf->path, path) == 0)
            return tf;
    return NULL;
}

static uint64_t start_offset(struct in_file *in, const struct stat *st, const char *path)
{
    uint64_t off = 0;
    if (lh_ckpt_lookup(in->ctx.ckpt, (uint64_t)st->st_dev, (uint64_t)st->st_ino, path,
                       (uint64_t)st->st_size, &off))
        return off;
    /* Only files already there at start may skip their content: a file that
     * appears later is new, every line of it unread. */
    if (!in->started && in->cfg->read_from == READ_FROM_TAIL)
        return (uint64_t)st->st_size;
    return 0;
}

static int tfile_open(struct in_file *in, struct tfile *tf)
{
    struct stat st;
    int fd = open(tf->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = fd < 0 ? errno : EINVAL;
        if (fd >= 0)
            close(fd);
        return e;
    }
    tf->fd = fd;
    tf->dev = (uint64_t)st.st_dev;
    tf->ino = (uint64_t)st.st_ino;
    tf->size = (uint64_t)st.st_size;
    tf->offset = start_offset(in, &st, tf->path);
    tf->ck = lh_ckpt_file_open(in->ctx.ckpt, tf->dev, tf->ino, tf->path, tf->offset);
    if (!tf->ck) {
        close(fd);
        tf->fd = -1;
        return ENOMEM;
    }
    LH_INFO("in_file", "[%s] following %s from offset %llu", in->cfg->tag, tf->path,
            (unsigned long long)tf->offset);
    return 0;
}

static void add_path(struct in_file *in, const char *path)
{
    struct tfile *tf = find_live(in, path);
    if (tf && tf->fd >= 0)
        return;
    if (!tf) {
        tf = calloc(1, sizeof *tf);
        if (!tf || !(tf->path = strdup(path))) {
            free(tf);
            LH_ERROR("in_file", "[%s] out of memory adding %s", in->cfg->tag, path);
            return;
        }
        tf->fd = -1;
        tf->next = in->files;
        in->files = tf;
        int e = tfile_open(in, tf);
        if (e)
            LH_WARN("in_file", "[%s] cannot read %s: %s (retrying every second)", in->cfg->tag,
                    path, strerror(e));
        return;
    }
    tfile_open(in, tf); /* retried quietly: the warning was given */
}

static void expand_globs(struct in_file *in)
{
    for (size_t i = 0; i < in->cfg->paths.n; i++) {
        glob_t g;
        int rc = glob(in->cfg->paths.v[i], GLOB_NOSORT | GLOB_BRACE, NULL, &g);
        if (rc == 0) {
            for (size_t j = 0; j < g.gl_pathc; j++)
                if (!excluded(in, g.gl_pathv[j]))
                    add_path(in, g.gl_pathv[j]);
        } else if (rc != GLOB_NOMATCH) {
            LH_WARN("in_file", "[%s] glob %s failed", in->cfg->tag, in->cfg->paths.v[i]);
        }
        globfree(&g);
    }
}

/* Rotation and truncation, from what the path and the fd say now. */
static void check_file(struct in_file *in, struct tfile *tf)
{
    struct stat st, fst;
    if (tf->fd < 0 || tf->draining || fstat(tf->fd, &fst) != 0)
        return;
    tf->size = (uint64_t)fst.st_size;
    if (stat(tf->path, &st) != 0 || (uint64_t)st.st_ino != tf->ino ||
        (uint64_t)st.st_dev != tf->dev) {
        LH_INFO("in_file", "[%s] %s was rotated or removed: reading the old file to its end",
                in->cfg->tag, tf->path);
        tf->draining = true;
        return;
    }
    if (tf->size < tf->offset) {
        LH_WARN("in_file", "[%s] %s was truncated (size %llu < offset %llu): reading from 0",
                in->cfg->tag, tf->path, (unsigned long long)tf->size,
                (unsigned long long)tf->offset);
        tf->offset = 0;
        tf->partial_len = 0;
        tf->long_line = false;
        lh_ckpt_file_restart(in->ctx.ckpt, tf->ck);
    }
}

static void scan(struct in_file *in)
{
    for (struct tfile *tf = in->files; tf; tf = tf->next)
        check_file(in, tf);
    expand_globs(in);
    in->started = true;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct in_file *in = arg;
    scan(in);
    read_all(in);
}

/* ---- hooks -------------------------------------------------------------- */

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
    int rc = lh_transform_new(&in->cfg->tx, in->cfg->tag, lh_transform_filters(), ctx->metrics,
                              &in->tx, err, errlen);
    if (rc != 0)
        return rc;
    in->buf = malloc(READ_BUF);
    in->tick = event_new(ctx->base, -1, EV_PERSIST, on_tick, in);
    in->more = event_new(ctx->base, -1, 0, on_more, in);
    rc = in->buf && in->tick && in->more ? lh_pipeline_route(ctx->pl, in->cfg->tag, &in->route)
                                              : LH_ENOMEM;
    if (rc != 0)
        snprintf(err, errlen, "file input '%s': %s", in->cfg->tag, lh_strerror(rc));
    return rc;
}

static int in_file_start(void *state)
{
    struct in_file *in = state;
    scan(in);
    struct timeval sec = {1, 0};
    if (event_add(in->tick, &sec) != 0)
        return LH_ENOMEM;
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
    if (!in->stopped)
        event_active(in->more, EV_TIMEOUT, 0);
}

static void in_file_stop(void *state)
{
    struct in_file *in = state;
    in->stopped = true;
    event_del(in->tick);
    event_del(in->more);
}

static void in_file_destroy(void *state)
{
    struct in_file *in = state;
    if (!in)
        return;
    while (in->files) {
        struct tfile *tf = in->files;
        in->files = tf->next;
        tfile_free(in, tf);
    }
    if (in->tick)
        event_free(in->tick);
    if (in->more)
        event_free(in->more);
    free(in->buf);
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
