/* Reading files and turning bytes into records: large preads, memchr
 * splitting, lines longer than max_line cut into flagged pieces, CRLF,
 * multiline records, and the file positions handed to the pipeline.
 *
 * A record's position is the offset just past its last byte: a checkpoint
 * never covers a half-written line or a multiline record still gathering,
 * so after a restart they are read again whole. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/inputs/file/in_file_int.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/base/util.h"

#define READ_BUF (1024u * 1024)
/* Chunks one file may read per loop turn, so one busy file cannot starve
 * the others or the network. */
#define READS_PER_TURN 4

/* A record a filter dropped moves the file position like any other: it is
 * tracked with no output holding it before the file is left. */
static void track_skipped(struct in_file *in, struct tfile *tf)
{
    if (!tf->skipped_end)
        return;
    bool fresh;
    lh_ckpt_track(in->ctx.ckpt, tf->ck, tf->skipped_end, 0, &fresh);
    tf->skipped_end = 0;
}

static void emit(struct in_file *in, struct tfile *tf, const char *p, size_t n, bool truncated,
                 uint64_t end)
{
    struct lh_tx_line l = {p,        n,         in->ctx.host, in->host_len,
                           tf->path, tf->path_len, truncated};
    int64_t ns = in->read_ns;
    if (!lh_transform_line(in->tx, &in->rb, &l, &ns)) {
        tf->skipped_end = end;
        return;
    }
    tf->skipped_end = 0;
    lh_route_emit(in->route, tf->ck, end, ns, lh_rb_pack, &in->rb);
}

static void ml_flush(struct in_file *in, struct tfile *tf)
{
    if (!tf->ml_end)
        return;
    emit(in, tf, tf->ml, tf->ml_len, tf->ml_truncated, tf->ml_end);
    tf->ml_len = 0;
    tf->ml_end = 0;
    tf->ml_truncated = false;
}

/* One physical line of a multiline input: a start line closes the record
 * gathering and opens the next; other lines join it (with their newline). */
static int ml_line(struct in_file *in, struct tfile *tf, const char *p, size_t n, bool truncated,
                   uint64_t end)
{
    size_t max = (size_t)in->cfg->max_line;
    if (tf->ml_end && lh_regex_match(in->ml_start, p, n))
        ml_flush(in, tf);
    if (tf->ml_end && tf->ml_len + 1 + n > max) {
        tf->ml_truncated = true;
        ml_flush(in, tf);
        truncated = true;
    }
    if (!tf->ml && !(tf->ml = malloc(max)))
        return LH_ENOMEM;
    if (tf->ml_end)
        tf->ml[tf->ml_len++] = '\n';
    memcpy(tf->ml + tf->ml_len, p, n);
    tf->ml_len += n;
    tf->ml_end = end;
    tf->ml_truncated |= truncated;
    return LH_OK;
}

static int line_out(struct in_file *in, struct tfile *tf, const char *p, size_t n, bool truncated,
                    uint64_t end)
{
    if (in->ml_start)
        return ml_line(in, tf, p, n, truncated, end);
    emit(in, tf, p, n, truncated, end);
    return LH_OK;
}

/* Bytes p[0..len) of a line; end = file offset just past them; complete
 * when a newline follows them (at offset end). */
static int take(struct in_file *in, struct tfile *tf, const char *p, size_t len, uint64_t end,
                bool complete)
{
    size_t max = (size_t)in->cfg->max_line;
    int rc = LH_OK;
    while (tf->partial_len + len > max && rc == 0) {
        if (tf->partial_len) {
            size_t n = max - tf->partial_len;
            memcpy(tf->partial + tf->partial_len, p, n);
            p += n;
            len -= n;
            tf->partial_len = 0;
            rc = line_out(in, tf, tf->partial, max, true, end - len);
        } else {
            rc = line_out(in, tf, p, max, true, end - (len - max));
            p += max;
            len -= max;
        }
        tf->long_line = true;
    }
    if (rc == 0 && len && (tf->partial_len || !complete)) {
        if (!tf->partial && !(tf->partial = malloc(max)))
            return LH_ENOMEM;
        memcpy(tf->partial + tf->partial_len, p, len);
        tf->partial_len += len;
    }
    if (!complete || rc != 0)
        return rc;
    const char *line = tf->partial_len ? tf->partial : p;
    size_t n = tf->partial_len ? tf->partial_len : len;
    if (n && line[n - 1] == '\r')
        n--;
    /* A line exactly a multiple of max_line long already went out whole. */
    if (n || !tf->long_line)
        rc = line_out(in, tf, line, n, tf->long_line, end + 1);
    tf->partial_len = 0;
    tf->long_line = false;
    return rc;
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

void in_file_forget_partial(struct tfile *tf)
{
    tf->partial_len = 0;
    tf->long_line = false;
    tf->ml_len = 0;
    tf->ml_end = 0;
    tf->ml_truncated = false;
    tf->skipped_end = 0;
}

void in_file_flush(struct in_file *in, struct tfile *tf)
{
    in->read_ns = lh_now_ns();
    if (tf->partial_len) {
        size_t n = tf->partial_len;
        tf->partial_len = 0;
        line_out(in, tf, tf->partial, n, tf->long_line, tf->offset);
        tf->long_line = false;
    }
    ml_flush(in, tf);
    track_skipped(in, tf);
}

/* At the end of a rotated file: released after the grace period. */
static bool drained(struct in_file *in, struct tfile *tf)
{
    if (lh_mono_ms() - tf->drain_since_ms < IN_FILE_DRAIN_GRACE_MS)
        return false;
    in_file_flush(in, tf);
    LH_INFO(IN_FILE_LOG, "[%s] finished rotated file %s at offset %llu", in->cfg->tag, tf->path,
            (unsigned long long)tf->offset);
    in_file_release(in, tf);
    return true;
}

enum { READ_IDLE, READ_MORE, READ_GONE };

/* Reads up to READS_PER_TURN chunks: READ_MORE when more data is waiting,
 * READ_GONE when a rotated file was finished and released. */
static int read_some(struct in_file *in, struct tfile *tf)
{
    /* Truncation is looked for before every read, not only on the tick: a
     * copytruncate'd file refilled past the old offset would otherwise be
     * read from the middle. */
    struct stat st;
    if (!tf->draining && fstat(tf->fd, &st) == 0 && (uint64_t)st.st_size < tf->offset)
        in_file_check(in, tf);
    for (int i = 0; i < READS_PER_TURN && !in->paused && !in->stopped; i++) {
        ssize_t n = pread(tf->fd, in->buf, READ_BUF, (off_t)tf->offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            LH_WARN(IN_FILE_LOG, "[%s] reading %s: %s", in->cfg->tag, tf->path, strerror(errno));
            return READ_IDLE;
        }
        if (n == 0) {
            if (tf->draining && drained(in, tf))
                return READ_GONE;
            track_skipped(in, tf);
            return READ_IDLE;
        }
        tf->ml_last_ms = lh_mono_ms();
        /* One clock read per chunk, not per line: the lines of a read share
         * its time (equal times keep file order), and no line is stamped
         * later than the moment it was read. */
        in->read_ns = lh_now_ns();
        lh_route_bytes(in->route, (uint64_t)n);
        lh_route_hold(in->route);
        int rc = split_lines(in, tf, in->buf, (size_t)n);
        lh_route_release(in->route);
        if (rc != 0)
            LH_ERROR(IN_FILE_LOG, "[%s] %s: out of memory splitting lines", in->cfg->tag,
                     tf->path);
        tf->offset += (uint64_t)n;
        if (tf->offset > tf->size)
            tf->size = tf->offset;
        if ((size_t)n < READ_BUF) {
            track_skipped(in, tf);
            return READ_IDLE;
        }
    }
    return in->stopped ? READ_IDLE : READ_MORE;
}

void in_file_read_all(struct in_file *in)
{
    if (!in->buf && !(in->buf = malloc(READ_BUF))) {
        LH_ERROR(IN_FILE_LOG, "[%s] out of memory for the read buffer", in->cfg->tag);
        return;
    }
    bool more = false, all = in->all_ready;
    in->all_ready = false;
    struct tfile *tf = in->files;
    while (tf && !in->paused && !in->stopped) {
        struct tfile *next = tf->next; /* read_some may free tf */
        if (tf->fd >= 0 && (all || tf->ready || tf->draining)) {
            int r = read_some(in, tf);
            if (r != READ_GONE)
                tf->ready = r == READ_MORE;
            more |= r == READ_MORE;
        }
        tf = next;
    }
    if (in->paused)
        in->all_ready = true;
    /* A zero timer, not event_active: libevent runs events activated from
     * a callback in the same pass, so a backlog would starve every socket
     * (acks, /metrics) until it is read; a timer waits for the next poll. */
    in_file_ml_expire(in);
    if (more) {
        struct timeval now = {0, 0};
        event_add(in->more, &now);
    } else if (!in->paused && !in->stopped) {
        lh_route_idle(in->route);
    }
}

void in_file_ml_expire(struct in_file *in)
{
    if (!in->ml_start || in->stopped)
        return;
    int64_t now = lh_mono_ms(), next = -1, timeout = in->cfg->multiline.timeout_ms;
    for (struct tfile *tf = in->files; tf; tf = tf->next) {
        if (!tf->ml_end && !tf->partial_len)
            continue;
        int64_t due = tf->ml_last_ms + timeout;
        if (due <= now)
            in_file_flush(in, tf);
        else if (next < 0 || due - now < next)
            next = due - now;
    }
    if (next >= 0 && !evtimer_pending(in->ml_timer, NULL)) {
        struct timeval tv = {next / 1000, (next % 1000) * 1000};
        evtimer_add(in->ml_timer, &tv);
    }
}
