/* The `file` output: every accepted batch whose tag matches is appended to
 * a file as NDJSON (the lines `loghaul search` prints) and fdatasync'd
 * before the batch is acknowledged. The path may hold ${tag}; a tag comes
 * from the sender, so it is made safe for one path component first.
 *
 * Files stay open (a few, the most recent) and are reopened when the path
 * no longer names the open file (logrotate moved it). A batch that cannot
 * be written whole is cut off again, so a retry does not leave half of it
 * twice. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collector/outputs/output.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/base/util.h"

#define FILE_LOG "out_file"
#define OPEN_FILES 16

struct file_cfg {
    struct lh_cfg_item item;
    char *match;
    char *path;
};

static int validate(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct file_cfg *c = obj;
    const char *t = strstr(c->path, "${");
    if (t && strncmp(t, "${tag}", 6) != 0)
        return lh_cfg_error(d, line, col, "file output: path may use ${tag} and nothing else");
    if (t && strstr(t + 6, "${"))
        return lh_cfg_error(d, line, col, "file output: ${tag} may appear once in path");
    return 0;
}

static const struct lh_cfg_field fields[] = {
    {.key = "match", .type = LH_CFG_STR, .offset = offsetof(struct file_cfg, match), .defval = "*",
     .help = "fnmatch(3) glob on the tag"},
    {.key = "path", .type = LH_CFG_STR, .offset = offsetof(struct file_cfg, path),
     .flags = LH_CFG_F_REQUIRED,
     .help = "file to append NDJSON to; ${tag} is replaced by the batch's tag"},
    {0},
};

const struct lh_cfg_schema lh_coll_out_file_schema = {
    .name = "file output",
    .size = sizeof(struct file_cfg),
    .fields = fields,
    .validate = validate,
};

struct open_file {
    char path[PATH_MAX];
    int fd;
    uint64_t last_use;
};

struct out_file {
    const struct file_cfg *cfg;
    struct open_file files[OPEN_FILES];
    uint64_t uses;
    msgpack_sbuffer text;
    struct lh_coll_output_metrics m;
};

/* The tag as one path component: [A-Za-z0-9._-] kept, anything else '_',
 * and a leading dot too (no "..", no hidden files). */
static void safe_tag(const char *tag, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        char ch = tag[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || (ch == '.' && k > 0);
        out[k++] = ok ? ch : '_';
    }
    if (k == 0 && cap > 1)
        out[k++] = '_';
    out[k] = '\0';
}

static int expand_path(const struct out_file *o, const char *tag, size_t tag_len, char *buf,
                       size_t cap)
{
    const char *t = strstr(o->cfg->path, "${tag}");
    if (!t)
        return snprintf(buf, cap, "%s", o->cfg->path) < (int)cap ? LH_OK : LH_ETOOBIG;
    char safe[256];
    safe_tag(tag, tag_len, safe, sizeof safe);
    int n = snprintf(buf, cap, "%.*s%s%s", (int)(t - o->cfg->path), o->cfg->path, safe, t + 6);
    return n >= 0 && n < (int)cap ? LH_OK : LH_ETOOBIG;
}

static void close_slot(struct open_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    f->path[0] = '\0';
}

/* The open file for path, (re)opened when the path names another file now
 * or none, the least recently used one closed to make room. */
static int file_for(struct out_file *o, const char *path)
{
    struct open_file *slot = &o->files[0];
    for (size_t i = 0; i < OPEN_FILES; i++) {
        struct open_file *f = &o->files[i];
        if (f->fd >= 0 && strcmp(f->path, path) == 0) {
            struct stat a, b;
            if (stat(path, &a) == 0 && fstat(f->fd, &b) == 0 && a.st_ino == b.st_ino &&
                a.st_dev == b.st_dev) {
                f->last_use = ++o->uses;
                return f->fd;
            }
            slot = f;
            break;
        }
        if (f->fd < 0 || f->last_use < slot->last_use)
            slot = f;
    }
    close_slot(slot);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        lh_mkdir_p(dir);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        LH_ERROR(FILE_LOG, "opening %s: %s", path, strerror(errno));
        return -1;
    }
    snprintf(slot->path, sizeof slot->path, "%s", path);
    slot->fd = fd;
    slot->last_use = ++o->uses;
    return fd;
}

static int file_write(void *state, const struct lh_coll_batch *b)
{
    struct out_file *o = state;
    if (b->n_events == 0 || fnmatch(o->cfg->match, b->tag, 0) != 0)
        return LH_OK;
    char path[PATH_MAX];
    int rc = expand_path(o, b->tag, strlen(b->tag), path, sizeof path);
    if (rc == LH_OK)
        rc = lh_coll_batch_ndjson(b, NULL, &o->text);
    int fd = rc == LH_OK ? file_for(o, path) : -1;
    if (rc == LH_OK && fd < 0)
        rc = LH_EIO;
    off_t before = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
    if (rc == LH_OK && (lh_write_all(fd, o->text.data, o->text.size) != 0 || fdatasync(fd) != 0)) {
        LH_ERROR(FILE_LOG, "writing %s: %s (the batch is not acknowledged; the sender retries)",
                 path, strerror(errno));
        if (before >= 0 && ftruncate(fd, before) != 0)
            LH_ERROR(FILE_LOG, "cannot cut the partial batch off %s: %s", path, strerror(errno));
        rc = LH_EIO;
    }
    if (rc != LH_OK) {
        lh_metric_add(o->m.errors, 1);
        return rc;
    }
    lh_metric_add(o->m.records, (int64_t)b->n_events);
    lh_metric_add(o->m.batches, 1);
    return LH_OK;
}

static int file_create(const struct lh_cfg_item *cfg, const struct lh_coll_output_ctx *ctx,
                       size_t index, void **state, char *err, size_t errlen)
{
    struct out_file *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, errlen, "file output: out of memory");
        return LH_ENOMEM;
    }
    *state = o;
    o->cfg = (const struct file_cfg *)cfg;
    for (size_t i = 0; i < OPEN_FILES; i++)
        o->files[i].fd = -1;
    msgpack_sbuffer_init(&o->text);
    return lh_coll_output_metrics(ctx->metrics, "file", &o->m);
}

static void file_destroy(void *state)
{
    struct out_file *o = state;
    if (!o)
        return;
    for (size_t i = 0; i < OPEN_FILES; i++)
        close_slot(&o->files[i]);
    msgpack_sbuffer_destroy(&o->text);
    free(o);
}

const struct lh_coll_output_ops lh_coll_out_file_ops = {
    .type = "file",
    .schema = &lh_coll_out_file_schema,
    .create = file_create,
    .write = file_write,
    .destroy = file_destroy,
};
