/* Which files the input follows and what became of them: patterns (with
 * `**`) walked from their fixed directory prefix, `exclude`, inotify on
 * every directory walked (growth, creation, renames; a full re-scan on
 * queue overflow) or polling once a second (`watch: poll`); identity as
 * device + inode + a hash of the first bytes; rename and delete (the old
 * file is read to its end), truncation (read again from 0), and at start
 * files rotated away while the agent was stopped. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/inputs/file/in_file_int.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/base/util.h"

/* Bounds on one walk, so a pattern spanning "/" with ** cannot run away. */
#define WALK_MAX_DEPTH 16
#define WALK_MAX_DIRS 20000

struct wdir {
    int wd;
    char *path;
};

struct in_file_watch {
    int fd;
    struct event *ev;
    struct wdir *dirs;
    size_t n, cap;
};

/* ---- identity ----------------------------------------------------------- */

int in_file_fingerprint(int fd, uint64_t size, struct in_file_fp *fp)
{
    unsigned char buf[IN_FILE_FP_MAX], md[EVP_MAX_MD_SIZE];
    size_t want = size < IN_FILE_FP_MAX ? (size_t)size : IN_FILE_FP_MAX;
    ssize_t n = want ? pread(fd, buf, want, 0) : 0;
    if (n < 0)
        return -errno;
    unsigned mdlen = 0;
    if (!EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha256(), NULL))
        return -ENOMEM;
    memcpy(&fp->hash, md, sizeof fp->hash);
    fp->len = (uint32_t)n;
    return 0;
}

/* The first fp->len bytes still hash the same. */
static bool same_prefix(int fd, const struct in_file_fp *fp)
{
    struct in_file_fp now = {0};
    return fp->len == 0 || (in_file_fingerprint(fd, fp->len, &now) == 0 &&
                            now.len == fp->len && now.hash == fp->hash);
}

/* ---- patterns ----------------------------------------------------------- */

static bool is_recursive(const char *pat)
{
    return strstr(pat, "**") != NULL;
}

static bool pattern_matches(const char *pat, const char *path)
{
    if (!is_recursive(pat))
        return fnmatch(pat, path, FNM_PATHNAME | FNM_PERIOD) == 0;
    /* `**` spans directories, none included: pattern dir, then ** then /x.log,
     * matches dir/x.log too. */
    if (fnmatch(pat, path, 0) == 0)
        return true;
    char alt[PATH_MAX];
    const char *at = strstr(pat, "**/");
    if (!at || strlen(pat) >= sizeof alt)
        return false;
    size_t head = (size_t)(at - pat);
    memcpy(alt, pat, head);
    strcpy(alt + head, at + 3);
    return fnmatch(alt, path, 0) == 0;
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

static bool wanted(const struct in_file *in, const char *path)
{
    for (size_t i = 0; i < in->cfg->paths.n; i++)
        if (pattern_matches(in->cfg->paths.v[i], path))
            return !excluded(in, path);
    return false;
}

/* ---- inotify ------------------------------------------------------------ */

static void watch_dir(struct in_file *in, const char *dir)
{
    struct in_file_watch *w = in->watch;
    if (!w)
        return;
    int wd = inotify_add_watch(w->fd, dir,
                               IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_MODIFY |
                                   IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
    if (wd < 0)
        return; /* gone or unreadable: the periodic scan still looks */
    for (size_t i = 0; i < w->n; i++)
        if (w->dirs[i].wd == wd)
            return;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        struct wdir *v = realloc(w->dirs, cap * sizeof *v);
        if (!v)
            return;
        w->dirs = v;
        w->cap = cap;
    }
    char *p = strdup(dir);
    if (p)
        w->dirs[w->n++] = (struct wdir){wd, p};
}

static const struct wdir *dir_of(const struct in_file_watch *w, int wd)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->dirs[i].wd == wd)
            return &w->dirs[i];
    return NULL;
}

static void forget_wd(struct in_file_watch *w, int wd)
{
    for (size_t i = 0; i < w->n; i++) {
        if (w->dirs[i].wd == wd) {
            free(w->dirs[i].path);
            w->dirs[i] = w->dirs[--w->n];
            return;
        }
    }
}

/* A file grew: mark it, so the read turn looks only at files that moved. */
static bool mark_ready(struct in_file *in, const char *dir, const char *name)
{
    size_t dl = strlen(dir), nl = strlen(name);
    bool found = false;
    for (struct tfile *tf = in->files; tf; tf = tf->next) {
        if (tf->path_len == dl + 1 + nl && memcmp(tf->path, dir, dl) == 0 &&
            tf->path[dl] == '/' && memcmp(tf->path + dl + 1, name, nl) == 0) {
            tf->ready = true;
            found = true;
        }
    }
    return found;
}

static void follow_renamed(struct in_file *in, const char *dir, const char *name);

/* A wanted name renamed to an unwanted one: a file that may have been
 * created and rotated between two looks (rotating twice fast). */
static void on_rename(struct in_file *in, const struct wdir *d, const struct inotify_event *ev,
                      uint32_t *from_cookie, bool *from_wanted)
{
    char path[PATH_MAX];
    if (!d || !ev->len ||
        snprintf(path, sizeof path, "%s/%s", d->path, ev->name) >= (int)sizeof path)
        return;
    if (ev->mask & IN_MOVED_FROM) {
        *from_cookie = ev->cookie;
        *from_wanted = wanted(in, path);
    } else if (ev->cookie == *from_cookie && *from_wanted && !wanted(in, path)) {
        follow_renamed(in, d->path, ev->name);
    }
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    uint32_t from_cookie = 0;
    bool from_wanted = false;
    struct in_file *in = arg;
    struct in_file_watch *w = in->watch;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool rescan = false;
    ssize_t n;
    while ((n = read(w->fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                LH_WARN(IN_FILE_LOG, "[%s] inotify queue overflow: scanning everything",
                        in->cfg->tag);
                rescan = true;
                in->all_ready = true;
                continue;
            }
            if (ev->mask & IN_IGNORED) {
                forget_wd(w, ev->wd);
                continue;
            }
            const struct wdir *d = dir_of(w, ev->wd);
            if (ev->mask & (IN_MOVED_FROM | IN_MOVED_TO))
                on_rename(in, d, ev, &from_cookie, &from_wanted);
            if ((ev->mask & IN_MODIFY) && d && ev->len && mark_ready(in, d->path, ev->name))
                continue;
            rescan |= !(ev->mask & IN_MODIFY);
        }
    }
    if (rescan)
        in_file_scan(in, true);
    in_file_read_all(in);
}

int in_file_watch_new(struct in_file *in)
{
    if (in->cfg->watch == WATCH_POLL)
        return LH_OK;
    struct in_file_watch *w = calloc(1, sizeof *w);
    if (!w)
        return LH_ENOMEM;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        LH_WARN(IN_FILE_LOG, "[%s] inotify unavailable (%s): polling every second",
                in->cfg->tag, strerror(errno));
        free(w);
        return LH_OK;
    }
    w->ev = event_new(in->ctx.base, w->fd, EV_READ | EV_PERSIST, on_inotify, in);
    if (!w->ev || event_add(w->ev, NULL) != 0) {
        in_file_watch_free(w);
        return LH_ENOMEM;
    }
    in->watch = w;
    return LH_OK;
}

void in_file_watch_free(struct in_file_watch *w)
{
    if (!w)
        return;
    if (w->ev)
        event_free(w->ev);
    for (size_t i = 0; i < w->n; i++)
        free(w->dirs[i].path);
    free(w->dirs);
    close(w->fd);
    free(w);
}

/* ---- files -------------------------------------------------------------- */

static struct tfile *find_identity(struct in_file *in, uint64_t dev, uint64_t ino)
{
    for (struct tfile *tf = in->files; tf; tf = tf->next)
        if (tf->fd >= 0 && tf->dev == dev && tf->ino == ino)
            return tf;
    return NULL;
}

static struct tfile *find_path(struct in_file *in, const char *path)
{
    for (struct tfile *tf = in->files; tf; tf = tf->next)
        if (!tf->draining && strcmp(tf->path, path) == 0)
            return tf;
    return NULL;
}

/* A file seen at start without a checkpoint: a successor of a file we
 * followed (same path, new inode: rotated while stopped) is read whole. */
static bool followed_before(const struct in_file *in, const char *path)
{
    const struct lh_ckpt *c = in->ctx.ckpt;
    for (size_t i = 0; i < c->n_saved; i++)
        if (strcmp(c->saved[i].path, path) == 0)
            return true;
    return false;
}

/* The saved entry describes the file fd holds: its first fp_len bytes hash
 * the same (an inode reused by another file while stopped does not). */
static bool saved_matches(int fd, const struct lh_ckpt_saved *s)
{
    struct in_file_fp fp = {.hash = s->fp_hash, .len = s->fp_len};
    return same_prefix(fd, &fp);
}

static uint64_t start_offset(struct in_file *in, int fd, const struct stat *st, const char *path)
{
    const struct lh_ckpt_saved *s = lh_ckpt_find(in->ctx.ckpt, (uint64_t)st->st_dev,
                                                 (uint64_t)st->st_ino, path,
                                                 (uint64_t)st->st_size);
    if (s && saved_matches(fd, s))
        return s->offset;
    if (s) {
        LH_WARN(IN_FILE_LOG, "[%s] %s reuses the inode of %s but its first bytes differ: a new "
                "file, read from 0", in->cfg->tag, path, s->path[0] ? s->path : "a file read before");
        return 0;
    }
    /* Only files already there at start may skip their content: a file that
     * appears later is new, every line of it unread. */
    if (!in->started && in->cfg->read_from == READ_FROM_TAIL && !followed_before(in, path))
        return (uint64_t)st->st_size;
    return 0;
}

/* The fingerprint changed: the checkpoint keeps it with the offset. */
static void take_fingerprint(struct in_file *in, struct tfile *tf, uint64_t size)
{
    in_file_fingerprint(tf->fd, size, &tf->fp);
    if (tf->ck)
        lh_ckpt_file_set_fp(in->ctx.ckpt, tf->ck, tf->fp.hash, tf->fp.len);
}

static int tfile_open(struct in_file *in, struct tfile *tf, int fd, const struct stat *st)
{
    tf->fd = fd;
    tf->dev = (uint64_t)st->st_dev;
    tf->ino = (uint64_t)st->st_ino;
    tf->size = (uint64_t)st->st_size;
    tf->offset = start_offset(in, fd, st, tf->path);
    tf->ready = true;
    tf->ck = lh_ckpt_file_open(in->ctx.ckpt, tf->dev, tf->ino, tf->path, tf->offset);
    if (!tf->ck)
        return ENOMEM;
    take_fingerprint(in, tf, tf->size);
    LH_INFO(IN_FILE_LOG, "[%s] following %s from offset %llu", in->cfg->tag, tf->path,
            (unsigned long long)tf->offset);
    return 0;
}

static struct tfile *tfile_new(struct in_file *in, const char *path)
{
    struct tfile *tf = calloc(1, sizeof *tf);
    if (!tf || !(tf->path = strdup(path))) {
        free(tf);
        LH_ERROR(IN_FILE_LOG, "[%s] out of memory adding %s", in->cfg->tag, path);
        return NULL;
    }
    tf->path_len = strlen(path);
    tf->fd = -1;
    tf->next = in->files;
    in->files = tf;
    in->n_files++;
    return tf;
}

void in_file_release(struct in_file *in, struct tfile *tf)
{
    for (struct tfile **p = &in->files; *p; p = &(*p)->next) {
        if (*p == tf) {
            *p = tf->next;
            in->n_files--;
            break;
        }
    }
    if (tf->fd >= 0)
        close(tf->fd);
    if (tf->ck)
        lh_ckpt_file_close(in->ctx.ckpt, tf->ck);
    free(tf->partial);
    free(tf->ml);
    free(tf->path);
    free(tf);
}

/* A path the patterns matched: follow it unless its file is followed
 * already (under this name, or under an old name it was renamed from). */
static void add_path(struct in_file *in, const char *path)
{
    struct tfile *tf = find_path(in, path);
    if (tf && tf->fd >= 0)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = fd < 0 ? errno : EINVAL;
        if (fd >= 0)
            close(fd);
        if (!tf && (tf = tfile_new(in, path)))
            LH_WARN(IN_FILE_LOG, "[%s] cannot read %s: %s (retrying every second)",
                    in->cfg->tag, path, strerror(e));
        return;
    }
    struct tfile *same = find_identity(in, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
    if (same) {
        /* A rotated file renamed to a name we also follow: keep reading it
         * under its new name instead of starting it over. */
        if (same->draining && strcmp(same->path, path) != 0) {
            char *p = strdup(path);
            if (p) {
                free(same->path);
                same->path = p;
                same->path_len = strlen(p);
                same->draining = false;
            }
        }
        close(fd);
        return;
    }
    if (!tf && !(tf = tfile_new(in, path))) {
        close(fd);
        return;
    }
    if (tfile_open(in, tf, fd, &st) != 0) {
        close(fd);
        tf->fd = -1;
    }
}

static void walk_dir(struct in_file *in, const char *dir, const char *pat, int depth)
{
    if (++in->walked > WALK_MAX_DIRS)
        return;
    watch_dir(in, dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int n = snprintf(path, sizeof path, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "",
                         e->d_name);
        if (n < 0 || (size_t)n >= sizeof path)
            continue;
        bool is_dir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
            struct stat st;
            is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        }
        if (is_dir) {
            if (depth > 0)
                walk_dir(in, path, pat, depth - 1);
        } else if (pattern_matches(pat, path) && !excluded(in, path)) {
            add_path(in, path);
        }
    }
    closedir(d);
}

/* The directory before the first wildcard, and how deep below it matches
 * can be. */
static void walk_pattern(struct in_file *in, const char *pat)
{
    size_t magic = strcspn(pat, "*?[");
    if (!pat[magic]) {
        char dir[PATH_MAX];
        const char *slash = strrchr(pat, '/');
        size_t dl = slash ? (size_t)(slash - pat) : 0;
        if (dl < sizeof dir) {
            memcpy(dir, pat, dl);
            dir[dl] = '\0';
            watch_dir(in, dl ? dir : slash ? "/" : ".");
        }
        if (!excluded(in, pat) && access(pat, F_OK) == 0)
            add_path(in, pat);
        return;
    }
    char base[PATH_MAX];
    size_t bl = magic;
    while (bl > 0 && pat[bl - 1] != '/')
        bl--;
    if (bl >= sizeof base)
        return;
    memcpy(base, pat, bl);
    base[bl ? bl - (bl > 1) : 0] = '\0';
    int depth = 0;
    for (const char *p = pat + bl; *p; p++)
        depth += *p == '/';
    if (is_recursive(pat))
        depth = WALK_MAX_DEPTH;
    walk_dir(in, bl ? base : ".", pat, depth);
}

/* ---- rotation ----------------------------------------------------------- */

static void restart(struct in_file *in, struct tfile *tf, const char *why)
{
    LH_WARN(IN_FILE_LOG, "[%s] %s %s (size %llu, offset %llu): reading from 0", in->cfg->tag,
            tf->path, why, (unsigned long long)tf->size, (unsigned long long)tf->offset);
    tf->offset = 0;
    in_file_forget_partial(tf);
    take_fingerprint(in, tf, tf->size);
    lh_ckpt_file_restart(in->ctx.ckpt, tf->ck);
    tf->ready = true;
}

/* What the path and the fd say now: renamed or removed (drain the old
 * file), truncated or rewritten in place (start over). */
void in_file_check(struct in_file *in, struct tfile *tf)
{
    struct stat st, fst;
    if (tf->fd < 0 || tf->draining || fstat(tf->fd, &fst) != 0)
        return;
    uint64_t size = (uint64_t)fst.st_size;
    bool grew = size != tf->size;
    tf->size = size;
    if (stat(tf->path, &st) != 0 || (uint64_t)st.st_ino != tf->ino ||
        (uint64_t)st.st_dev != tf->dev) {
        LH_INFO(IN_FILE_LOG, "[%s] %s was rotated or removed: reading the old file to its end",
                in->cfg->tag, tf->path);
        tf->draining = true;
        tf->drain_since_ms = lh_mono_ms();
        return;
    }
    if (size < tf->offset) {
        restart(in, tf, "was truncated");
        return;
    }
    if (!grew)
        return;
    tf->ready = true;
    if (!same_prefix(tf->fd, &tf->fp))
        restart(in, tf, "was rewritten (its first bytes changed)");
    else if (tf->fp.len < IN_FILE_FP_MAX)
        take_fingerprint(in, tf, size);
}

static void follow_renamed(struct in_file *in, const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        find_identity(in, (uint64_t)st.st_dev, (uint64_t)st.st_ino)) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct tfile *tf = tfile_new(in, path);
    if (!tf || tfile_open(in, tf, fd, &st) != 0) {
        close(fd);
        if (tf)
            tf->fd = -1;
        return;
    }
    LH_INFO(IN_FILE_LOG, "[%s] %s was renamed to %s before it was seen: reading it",
            in->cfg->tag, name, path);
    tf->draining = true;
    tf->drain_since_ms = lh_mono_ms();
}

static bool same_file_at(int dfd, const char *name, const struct lh_ckpt_saved *s)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    bool same = fd >= 0 && saved_matches(fd, s);
    if (fd >= 0)
        close(fd);
    return same;
}

/* At start: a file we followed that was renamed while the agent was
 * stopped still sits in the same directory under another name (same
 * identity, fingerprint included). */
static void find_rotated(struct in_file *in, const struct lh_ckpt_saved *s)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(s->path, '/');
    size_t dl = slash ? (size_t)(slash - s->path) : 0;
    if (!slash || dl >= sizeof dir)
        return;
    memcpy(dir, s->path, dl);
    dir[dl] = '\0';
    DIR *d = opendir(dl ? dir : "/");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st;
        if ((uint64_t)e->d_ino != s->ino || fstatat(dirfd(d), e->d_name, &st, 0) != 0 ||
            (uint64_t)st.st_dev != s->dev || (uint64_t)st.st_size < s->offset ||
            !S_ISREG(st.st_mode) || !same_file_at(dirfd(d), e->d_name, s))
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        LH_INFO(IN_FILE_LOG, "[%s] %s was rotated to %s while stopped: draining it",
                in->cfg->tag, s->path, path);
        add_path(in, path);
        struct tfile *tf = find_identity(in, s->dev, s->ino);
        if (tf && strcmp(tf->path, path) == 0 && !wanted(in, path)) {
            tf->draining = true;
            tf->drain_since_ms = lh_mono_ms() - IN_FILE_DRAIN_GRACE_MS;
        }
        break;
    }
    closedir(d);
}

static void recover_rotated(struct in_file *in)
{
    const struct lh_ckpt *c = in->ctx.ckpt;
    for (size_t i = 0; i < c->n_saved; i++) {
        const struct lh_ckpt_saved *s = &c->saved[i];
        if (wanted(in, s->path) && !find_identity(in, s->dev, s->ino))
            find_rotated(in, s);
    }
}

void in_file_scan(struct in_file *in, bool walk)
{
    for (struct tfile *tf = in->files; tf; tf = tf->next)
        in_file_check(in, tf);
    if (!walk)
        return;
    in->walked = 0;
    for (size_t i = 0; i < in->cfg->paths.n; i++)
        walk_pattern(in, in->cfg->paths.v[i]);
    if (!in->started)
        recover_rotated(in);
    /* Files that could not be opened are retried here. */
    for (struct tfile *tf = in->files; tf; tf = tf->next)
        if (tf->fd < 0 && !tf->draining)
            add_path(in, tf->path);
    in->started = true;
}
