#include "common/codec/syslog_frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"

/* MSG-LEN digits kept before the stream is taken for a line instead. */
#define MAX_LEN_DIGITS 10
/* The buffer must hold the digits of a length that turned out to start a line. */
#define MIN_MAX 16
/* The buffer's first size, and the largest kept once its message is out:
 * typical lines reuse one small buffer, a long one's memory goes back. */
#define FIRST_CAP 256
#define KEEP_CAP 4096

enum { ST_START, ST_COUNT, ST_OCTETS, ST_LINE, ST_SKIP_LINE };

void lh_syslog_frame_init(struct lh_syslog_frame *f, size_t max)
{
    memset(f, 0, sizeof *f);
    f->max = max < MIN_MAX ? MIN_MAX : max;
}

void lh_syslog_frame_free(struct lh_syslog_frame *f)
{
    free(f->buf);
    f->buf = NULL;
    f->len = f->cap = 0;
    f->state = ST_START;
}

/* Grows the buffer to hold need bytes, doubling from FIRST_CAP, never past
 * max + 1 (a line of max bytes waiting for its CR LF) nor the feed's
 * limit (LH_AGAIN when need itself is past it). */
static int grow(struct lh_syslog_frame *f, size_t need)
{
    size_t top = f->max + 1, cap = f->cap ? f->cap : FIRST_CAP;
    if (need <= f->cap)
        return LH_OK;
    if (need > f->limit)
        return LH_AGAIN;
    while (cap < need && cap < top)
        cap *= 2;
    cap = cap < top ? cap : top;
    cap = cap < f->limit ? cap : f->limit;
    char *g = realloc(f->buf, cap);
    if (!g)
        return LH_ENOMEM;
    f->buf = g;
    f->cap = cap;
    return LH_OK;
}

size_t lh_syslog_frame_held(const struct lh_syslog_frame *f)
{
    return f->cap;
}

static void reset(struct lh_syslog_frame *f)
{
    f->len = 0;
    f->truncated = false;
    f->state = ST_START;
    if (f->cap > KEEP_CAP) {
        free(f->buf);
        f->buf = NULL;
        f->cap = 0;
    }
}

/* An octet-counted frame; a sender's trailing LF inside it is not content. */
static void deliver_frame(struct lh_syslog_frame *f, const char *p, size_t n, bool truncated,
                          lh_syslog_frame_cb cb, void *ud)
{
    if (n && p[n - 1] == '\n')
        n--;
    cb(ud, p, n, truncated);
    reset(f);
}

/* A line without its delimiter: a CR before it goes, empty lines are
 * skipped, past max it is cut. */
static void deliver_line(struct lh_syslog_frame *f, const char *p, size_t n, lh_syslog_frame_cb cb,
                         void *ud)
{
    if (n && p[n - 1] == '\r')
        n--;
    if (n)
        cb(ud, p, n < f->max ? n : f->max, n > f->max);
    reset(f);
}

/* Offset of the first LF or NUL in p[0..n), or n. */
static size_t find_delim(const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n);
    size_t end = nl ? (size_t)(nl - p) : n;
    const char *nul = memchr(p, '\0', end);
    return nul ? (size_t)(nul - p) : end;
}

/* The buffer holds up to max + 1 bytes so that a line of exactly max
 * bytes can wait for its CR LF without counting as too long. */
static int feed_line(struct lh_syslog_frame *f, const char *p, size_t n, lh_syslog_frame_cb cb,
                     void *ud, size_t *used)
{
    size_t d = find_delim(p, n);
    *used = d < n ? d + 1 : n;
    if (f->state == ST_SKIP_LINE) {
        if (d < n)
            f->state = ST_START;
        return LH_OK;
    }
    if (f->len == 0 && d < n) {
        deliver_line(f, p, d, cb, ud);
        return LH_OK;
    }
    size_t room = f->max + 1 - f->len;
    int rc = grow(f, f->len + (d < room ? d : room));
    if (rc != 0)
        return rc;
    if (d > room) {
        memcpy(f->buf + f->len, p, room);
        cb(ud, f->buf, f->max, true);
        reset(f);
        f->state = d < n ? ST_START : ST_SKIP_LINE;
        return LH_OK;
    }
    memcpy(f->buf + f->len, p, d);
    f->len += d;
    if (d < n)
        deliver_line(f, f->buf, f->len, cb, ud);
    return LH_OK;
}

static int feed_octets(struct lh_syslog_frame *f, const char *p, size_t n, lh_syslog_frame_cb cb,
                       void *ud, size_t *used)
{
    if (f->len == 0 && !f->truncated && f->want <= n) {
        size_t take = f->want;
        f->want = 0;
        *used = take;
        deliver_frame(f, p, take < f->max ? take : f->max, take > f->max, cb, ud);
        return LH_OK;
    }
    size_t take = f->want < n ? f->want : n, room = f->max - f->len;
    size_t store = take < room ? take : room;
    int rc = grow(f, f->len + store);
    if (rc != 0)
        return rc;
    memcpy(f->buf + f->len, p, store);
    f->len += store;
    f->truncated |= take > store;
    f->want -= take;
    *used = take;
    if (f->want == 0)
        deliver_frame(f, f->buf, f->len, f->truncated, cb, ud);
    return LH_OK;
}

/* One byte of the MSG-LEN, or the turn to a line when it is not one. */
static int feed_count(struct lh_syslog_frame *f, char c, size_t *used)
{
    *used = 1;
    if (c == ' ') {
        size_t v = 0;
        for (size_t i = 0; i < f->len; i++)
            v = v * 10 + (size_t)(f->buf[i] - '0');
        f->len = 0;
        f->want = v;
        f->state = ST_OCTETS;
        return LH_OK;
    }
    if (c >= '0' && c <= '9' && f->len < MAX_LEN_DIGITS) {
        int rc = grow(f, f->len + 1);
        if (rc != 0)
            return rc;
        f->buf[f->len++] = c;
        return LH_OK;
    }
    *used = 0;
    f->state = ST_LINE;
    return LH_OK;
}

static int feed_start(struct lh_syslog_frame *f, char c, size_t *used)
{
    *used = 1;
    if (c == '\n' || c == '\0' || c == '\r')
        return LH_OK;
    if (c >= '1' && c <= '9') {
        int rc = grow(f, 1);
        if (rc != 0)
            return rc;
        f->buf[0] = c;
        f->len = 1;
        f->state = ST_COUNT;
        return LH_OK;
    }
    *used = 0;
    f->state = ST_LINE;
    return LH_OK;
}

int lh_syslog_frame_feed_upto(struct lh_syslog_frame *f, const char *p, size_t n, size_t limit,
                              lh_syslog_frame_cb cb, void *ud, size_t *used)
{
    int rc = LH_OK;
    size_t i = 0, step = 0;
    f->limit = limit;
    for (; i < n && rc == LH_OK; i += step) {
        step = 0;
        switch (f->state) {
        case ST_START:
            rc = feed_start(f, p[i], &step);
            break;
        case ST_COUNT:
            rc = feed_count(f, p[i], &step);
            break;
        case ST_OCTETS:
            rc = feed_octets(f, p + i, n - i, cb, ud, &step);
            break;
        default:
            rc = feed_line(f, p + i, n - i, cb, ud, &step);
            break;
        }
        if (rc != LH_OK)
            step = 0; /* a piece that could not grow the buffer was not taken */
    }
    *used = i;
    return rc;
}

int lh_syslog_frame_feed(struct lh_syslog_frame *f, const char *p, size_t n,
                         lh_syslog_frame_cb cb, void *ud)
{
    size_t used;
    return lh_syslog_frame_feed_upto(f, p, n, SIZE_MAX, cb, ud, &used);
}

void lh_syslog_frame_finish(struct lh_syslog_frame *f, lh_syslog_frame_cb cb, void *ud)
{
    if (f->state == ST_OCTETS && f->len)
        deliver_frame(f, f->buf, f->len, true, cb, ud);
    else if ((f->state == ST_LINE || f->state == ST_COUNT) && f->len)
        deliver_line(f, f->buf, f->len, cb, ud);
    reset(f);
    f->want = 0;
}
