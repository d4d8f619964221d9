#include "agent/core/checkpoint.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/base/util.h"

/* A checkpoint file lists every file being read; a few MiB is far beyond
 * any real host, and the cap keeps a corrupt file from exhausting memory. */
#define CKPT_MAX_BYTES (16u << 20)

int lh_ckpt_new(const char *path, struct lh_ckpt **out)
{
    struct lh_ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return LH_ENOMEM;
    c->path = strdup(path);
    if (!c->path) {
        free(c);
        return LH_ENOMEM;
    }
    *out = c;
    return LH_OK;
}

static void free_saved(struct lh_ckpt *c)
{
    for (size_t i = 0; i < c->n_saved; i++)
        free(c->saved[i].path);
    free(c->saved);
    c->saved = NULL;
    c->n_saved = 0;
}

static void file_free(struct lh_ckpt_file *f)
{
    struct lh_ckpt_seg *s = f->head;
    while (s) {
        struct lh_ckpt_seg *next = s->next;
        free(s);
        s = next;
    }
    free(f->path);
    free(f);
}

void lh_ckpt_free(struct lh_ckpt *c)
{
    if (!c)
        return;
    struct lh_ckpt_file *f = c->files;
    while (f) {
        struct lh_ckpt_file *next = f->next;
        file_free(f);
        f = next;
    }
    free_saved(c);
    free(c->path);
    free(c);
}

/* "fp"/"fp_len" came with fingerprints: files saved before have neither
 * (fp_len 0: unknown, resumed by identity alone). */
static int parse_fp(json_t *e, struct lh_ckpt_saved *s)
{
    json_t *fp = json_object_get(e, "fp"), *len = json_object_get(e, "fp_len");
    if (!fp && !len)
        return LH_OK;
    const char *hex = json_string_value(fp);
    if (!hex || strlen(hex) != 16 || strspn(hex, "0123456789abcdefABCDEF") != 16 ||
        !json_is_integer(len) || json_integer_value(len) < 0 ||
        json_integer_value(len) > UINT32_MAX)
        return LH_ECORRUPT;
    s->fp_hash = strtoull(hex, NULL, 16);
    s->fp_len = (uint32_t)json_integer_value(len);
    return LH_OK;
}

static int parse_entry(json_t *e, struct lh_ckpt_saved *s)
{
    json_t *dev = json_object_get(e, "dev"), *ino = json_object_get(e, "inode");
    json_t *path = json_object_get(e, "path"), *off = json_object_get(e, "offset");
    if (!json_is_integer(dev) || !json_is_integer(ino) || !json_is_string(path) ||
        !json_is_integer(off) || json_integer_value(off) < 0 || parse_fp(e, s) != LH_OK)
        return LH_ECORRUPT;
    s->path = strdup(json_string_value(path));
    if (!s->path)
        return LH_ENOMEM;
    s->dev = (uint64_t)json_integer_value(dev);
    s->ino = (uint64_t)json_integer_value(ino);
    s->offset = (uint64_t)json_integer_value(off);
    return LH_OK;
}

static int parse_files(struct lh_ckpt *c, json_t *files, char *err, size_t errlen)
{
    size_t n = json_array_size(files);
    c->saved = calloc(n ? n : 1, sizeof *c->saved);
    if (!c->saved)
        return LH_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = parse_entry(json_array_get(files, i), &c->saved[c->n_saved]);
        if (rc != LH_OK) {
            snprintf(err, errlen, "%s: entry %zu: %s", c->path, i,
                     rc == LH_ECORRUPT ? "needs dev, inode, path and offset (fp: 16 hex digits with fp_len)" : lh_strerror(rc));
            return rc;
        }
        c->n_saved++;
    }
    return LH_OK;
}

int lh_ckpt_load(struct lh_ckpt *c, char *err, size_t errlen)
{
    char *data = NULL;
    size_t len = 0;
    free_saved(c);
    int rc = lh_read_file(c->path, CKPT_MAX_BYTES, &data, &len);
    if (rc == LH_ENOENT)
        return LH_OK;
    if (rc != LH_OK) {
        snprintf(err, errlen, "%s: %s", c->path, lh_strerror(rc));
        return rc == LH_ETOOBIG ? LH_ECORRUPT : rc;
    }
    json_error_t je;
    json_t *root = json_loadb(data, len, 0, &je);
    free(data);
    json_t *files = root ? json_object_get(root, "files") : NULL;
    if (!json_is_array(files)) {
        if (root)
            snprintf(err, errlen, "%s: not a checkpoint file (no \"files\" array)", c->path);
        else
            snprintf(err, errlen, "%s:%d:%d: not a checkpoint file (%s)", c->path, je.line,
                     je.column, je.text);
        json_decref(root);
        return LH_ECORRUPT;
    }
    rc = parse_files(c, files, err, errlen);
    json_decref(root);
    if (rc != LH_OK)
        free_saved(c);
    return rc;
}

static json_t *file_json(const struct lh_ckpt_file *f)
{
    char fp[17];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)f->fp_hash);
    return json_pack("{sIsIsssIsssI}", "dev", (json_int_t)f->dev, "inode", (json_int_t)f->ino,
                     "path", f->path, "offset", (json_int_t)f->committed, "fp", fp, "fp_len",
                     (json_int_t)f->fp_len);
}

int lh_ckpt_save(struct lh_ckpt *c)
{
    json_t *files = json_array();
    json_t *root = json_pack("{siso}", "version", 1, "files", files);
    if (!root)
        return LH_ENOMEM;
    for (const struct lh_ckpt_file *f = c->files; f; f = f->next) {
        if (json_array_append_new(files, file_json(f)) != 0) {
            json_decref(root);
            return LH_ENOMEM;
        }
    }
    char *text = json_dumps(root, JSON_INDENT(1));
    json_decref(root);
    if (!text)
        return LH_ENOMEM;
    int rc = lh_write_file_atomic(c->path, text, strlen(text));
    free(text);
    if (rc == LH_OK)
        c->dirty = false;
    return rc;
}

int lh_ckpt_recover(struct lh_ckpt *c, uint64_t dev, uint64_t ino, uint64_t end)
{
    bool found = false;
    for (size_t i = 0; i < c->n_saved; i++) {
        struct lh_ckpt_saved *s = &c->saved[i];
        if (s->dev != dev || s->ino != ino)
            continue;
        found = true;
        if (s->offset < end)
            s->offset = end;
    }
    if (found)
        return LH_OK;
    /* Never saved (a crash before the first save): known by identity only. */
    struct lh_ckpt_saved *v = realloc(c->saved, (c->n_saved + 1) * sizeof *v);
    if (!v)
        return LH_ENOMEM;
    c->saved = v;
    v[c->n_saved] = (struct lh_ckpt_saved){.dev = dev, .ino = ino, .path = strdup(""),
                                           .offset = end};
    if (!v[c->n_saved].path)
        return LH_ENOMEM;
    c->n_saved++;
    return LH_OK;
}

bool lh_ckpt_covers(const struct lh_ckpt *c, uint64_t dev, uint64_t ino, uint64_t end)
{
    for (const struct lh_ckpt_file *f = c->files; f; f = f->next)
        if (f->dev == dev && f->ino == ino)
            return f->committed >= end;
    for (size_t i = 0; i < c->n_saved; i++)
        if (c->saved[i].dev == dev && c->saved[i].ino == ino)
            return c->saved[i].offset >= end;
    return true;
}

const struct lh_ckpt_saved *lh_ckpt_find(const struct lh_ckpt *c, uint64_t dev, uint64_t ino,
                                         const char *path, uint64_t size)
{
    /* Identity is dev+inode (a rotated file keeps it under a new name); an
     * entry that also has the same path wins when an inode was reused. */
    const struct lh_ckpt_saved *best = NULL;
    for (size_t i = 0; i < c->n_saved; i++) {
        const struct lh_ckpt_saved *s = &c->saved[i];
        if (s->dev != dev || s->ino != ino || s->offset > size)
            continue;
        if (!best || strcmp(s->path, path) == 0)
            best = s;
    }
    return best;
}

bool lh_ckpt_lookup(const struct lh_ckpt *c, uint64_t dev, uint64_t ino, const char *path,
                    uint64_t size, uint64_t *offset)
{
    const struct lh_ckpt_saved *s = lh_ckpt_find(c, dev, ino, path, size);
    if (s)
        *offset = s->offset;
    return s != NULL;
}

struct lh_ckpt_file *lh_ckpt_file_open(struct lh_ckpt *c, uint64_t dev, uint64_t ino,
                                       const char *path, uint64_t offset)
{
    struct lh_ckpt_file *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->path = strdup(path);
    if (!f->path) {
        free(f);
        return NULL;
    }
    f->dev = dev;
    f->ino = ino;
    f->committed = offset;
    f->open = true;
    f->next = c->files;
    c->files = f;
    c->dirty = true;
    return f;
}

static void forget_if_done(struct lh_ckpt *c, struct lh_ckpt_file *f)
{
    if (f->open || f->head)
        return;
    for (struct lh_ckpt_file **p = &c->files; *p; p = &(*p)->next) {
        if (*p == f) {
            *p = f->next;
            break;
        }
    }
    file_free(f);
    c->dirty = true;
}

void lh_ckpt_file_set_fp(struct lh_ckpt *c, struct lh_ckpt_file *f, uint64_t hash, uint32_t len)
{
    if (f->fp_hash == hash && f->fp_len == len)
        return;
    f->fp_hash = hash;
    f->fp_len = len;
    c->dirty = true;
}

void lh_ckpt_file_close(struct lh_ckpt *c, struct lh_ckpt_file *f)
{
    f->open = false;
    forget_if_done(c, f);
}

void lh_ckpt_file_restart(struct lh_ckpt *c, struct lh_ckpt_file *f)
{
    if (f->tail)
        f->tail->sealed = true;
    if (!f->head) {
        f->committed = 0;
        c->dirty = true;
    }
}

/* Pops the acknowledged prefix; committed follows each popped segment. */
static void advance(struct lh_ckpt *c, struct lh_ckpt_file *f)
{
    while (f->head && f->head->refs == 0 && f->head->sealed) {
        struct lh_ckpt_seg *s = f->head;
        f->head = s->next;
        if (!f->head)
            f->tail = NULL;
        f->committed = s->end;
        c->dirty = true;
        free(s);
    }
    forget_if_done(c, f);
}

struct lh_ckpt_seg *lh_ckpt_track(struct lh_ckpt *c, struct lh_ckpt_file *f, uint64_t end,
                                  unsigned refs, bool *fresh)
{
    *fresh = false;
    if (refs == 0 && !f->head) {
        f->committed = end;
        c->dirty = true;
        return NULL;
    }
    if (f->tail && !f->tail->sealed && refs > 0) {
        f->tail->end = end;
        return f->tail;
    }
    struct lh_ckpt_seg *s = calloc(1, sizeof *s);
    *fresh = true;
    if (!s)
        return NULL;
    s->file = f;
    s->end = end;
    s->refs = refs;
    s->sealed = refs == 0;
    if (f->tail) {
        f->tail->sealed = true;
        f->tail->next = s;
    } else {
        f->head = s;
    }
    f->tail = s;
    if (refs == 0) {
        *fresh = false;
        advance(c, f);
        return NULL;
    }
    return s;
}

void lh_ckpt_release(struct lh_ckpt *c, struct lh_ckpt_seg *s)
{
    if (s->refs > 0)
        s->refs--;
    if (s->refs == 0)
        s->sealed = true;
    advance(c, s->file);
}
