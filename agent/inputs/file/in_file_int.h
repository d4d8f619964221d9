/* The file input's parts, shared by in_file.c (config, hooks, status),
 * in_file_lines.c (reading, line splitting, multiline, emitting) and
 * in_file_watch.c (discovery, inotify or polling, identity, rotation).
 * Everything runs on the event_base thread. */
#ifndef LH_AGENT_IN_FILE_INT_H
#define LH_AGENT_IN_FILE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/core/pipeline.h"
#include "agent/core/recbuilder.h"
#include "agent/transform/transform.h"

#define IN_FILE_LOG "in_file"
/* Bytes hashed into a file's fingerprint (fewer while the file is shorter). */
#define IN_FILE_FP_MAX 512
/* A rotated file is released once it has been at its end this long, so a
 * writer that still held the old file open has time to finish. */
#define IN_FILE_DRAIN_GRACE_MS 1000

enum { READ_FROM_TAIL, READ_FROM_HEAD };
enum { WATCH_INOTIFY, WATCH_POLL };

struct in_file_multiline {
    char *start;              /* PCRE2: a line matching it begins a record */
    int64_t timeout_ms;       /* a record with no next start line goes out after this */
    bool present;
};

struct in_file_cfg {
    struct lh_cfg_item item;
    char *tag;
    struct lh_strlist paths;
    struct lh_strlist exclude;
    int read_from;
    int64_t max_line;
    int watch;
    struct in_file_multiline multiline;
    struct lh_tx_cfg tx;
};

/* Identity beyond dev+inode: a hash of the first fp_len bytes. */
struct in_file_fp {
    uint64_t hash;
    uint32_t len;             /* 0: the file was empty when looked at */
};

struct tfile {
    struct tfile *next;
    char *path;
    size_t path_len;
    int fd;                   /* -1: could not be opened (warned once) */
    uint64_t dev, ino;
    struct in_file_fp fp;
    uint64_t offset;          /* next byte to read */
    uint64_t size;            /* at the last look */
    char *partial;            /* an unfinished line, at most max_line bytes */
    size_t partial_len;
    bool long_line;           /* pieces of the current line were emitted */
    char *ml;                 /* multiline: the record being gathered */
    size_t ml_len;
    uint64_t ml_end;          /* file offset just past it */
    int64_t ml_last_ms;       /* when a line last joined it */
    bool ml_truncated;
    uint64_t skipped_end;     /* a filtered record ended here, not yet tracked */
    bool ready;               /* inotify said it changed */
    bool draining;            /* the path names another file now: read to EOF */
    int64_t drain_since_ms;
    struct lh_ckpt_file *ck;
};

struct in_file_watch;

struct in_file {
    const struct in_file_cfg *cfg;
    struct lh_agent_ctx ctx;
    struct lh_route *route;
    struct lh_transform *tx;
    struct lh_recbuilder rb;
    struct lh_regex *ml_start;
    size_t host_len;
    struct tfile *files;
    size_t n_files;
    struct in_file_watch *watch;
    struct event *tick;
    struct event *more;
    struct event *ml_timer;
    char *buf;
    int64_t read_ns;          /* record time of the lines being emitted */
    size_t walked;            /* directories seen by the current walk */
    unsigned ticks;
    bool paused, stopped, started;
    bool all_ready;           /* read every file on the next turn */
};

/* in_file_lines.c */
/* Reads the ready files (or all); schedules another turn while data waits. */
void in_file_read_all(struct in_file *in);
/* Emits what a file holds unfinished (the last line without newline, a
 * multiline record): the file is going away. */
void in_file_flush(struct in_file *in, struct tfile *tf);
/* Multiline records older than the timeout go out; rearms the timer. */
void in_file_ml_expire(struct in_file *in);
/* The file restarts at offset 0 (truncated): unfinished data is dropped. */
void in_file_forget_partial(struct tfile *tf);

/* in_file_watch.c */
int in_file_watch_new(struct in_file *in);
void in_file_watch_free(struct in_file_watch *w);
/* Rotation checks on every open file, then (walk) discovery of new ones. */
void in_file_scan(struct in_file *in, bool walk);
/* Rotation and truncation checks of one open file. */
void in_file_check(struct in_file *in, struct tfile *tf);
/* Stops following tf (closing the fd, releasing its checkpoint file). */
void in_file_release(struct in_file *in, struct tfile *tf);
/* Reads and hashes the first bytes of fd (at most size). 0 or -errno. */
int in_file_fingerprint(int fd, uint64_t size, struct in_file_fp *fp);

#endif
