#include "common/codec/syslog_frame.h"

#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"

/* MSG-LEN digits kept before the stream is taken for a line instead. */
#define MAX_LEN_DIGITS 10
/* The buffer must hold the digits of a length that turned out to start a line. */
#define MIN_MAX 16

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
    f->len = 0;
    f->state = ST_START;
}

static int need_buf(struct lh_syslog_frame *f)
{
    if (!f->buf && !(f->buf = malloc(f->max + 1)))
        return LH_ENOMEM;
    return LH_OK;
}

static void reset(struct lh_syslog_frame *f)
{
    f->len = 0;
    f->truncated = false;
    f->state = ST_START;
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

/* The buffer holds max + 1 bytes so that a line of exactly max bytes can
 * wait for its CR LF without counting as too long. */
static size_t feed_line(struct lh_syslog_frame *f, const char *p, size_t n, lh_syslog_frame_cb cb,
                        void *ud)
{
    size_t d = find_delim(p, n), used = d < n ? d + 1 : n;
    if (f->state == ST_SKIP_LINE) {
        if (d < n)
            f->state = ST_START;
        return used;
    }
    if (f->len == 0 && d < n) {
        deliver_line(f, p, d, cb, ud);
        return used;
    }
    size_t room = f->max + 1 - f->len;
    if (d > room) {
        memcpy(f->buf + f->len, p, room);
        cb(ud, f->buf, f->max, true);
        reset(f);
        f->state = d < n ? ST_START : ST_SKIP_LINE;
        return used;
    }
    memcpy(f->buf + f->len, p, d);
    f->len += d;
    if (d < n)
        deliver_line(f, f->buf, f->len, cb, ud);
    return used;
}

static size_t feed_octets(struct lh_syslog_frame *f, const char *p, size_t n,
                          lh_syslog_frame_cb cb, void *ud)
{
    if (f->len == 0 && !f->truncated && f->want <= n) {
        size_t take = f->want;
        f->want = 0;
        deliver_frame(f, p, take < f->max ? take : f->max, take > f->max, cb, ud);
        return take;
    }
    size_t take = f->want < n ? f->want : n, room = f->max - f->len;
    size_t store = take < room ? take : room;
    memcpy(f->buf + f->len, p, store);
    f->len += store;
    f->truncated |= take > store;
    f->want -= take;
    if (f->want == 0)
        deliver_frame(f, f->buf, f->len, f->truncated, cb, ud);
    return take;
}

/* One byte of the MSG-LEN, or the turn to a line when it is not one. */
static size_t feed_count(struct lh_syslog_frame *f, char c)
{
    if (c == ' ') {
        size_t v = 0;
        for (size_t i = 0; i < f->len; i++)
            v = v * 10 + (size_t)(f->buf[i] - '0');
        f->len = 0;
        f->want = v;
        f->state = ST_OCTETS;
        return 1;
    }
    if (c >= '0' && c <= '9' && f->len < MAX_LEN_DIGITS) {
        f->buf[f->len++] = c;
        return 1;
    }
    f->state = ST_LINE;
    return 0;
}

static size_t feed_start(struct lh_syslog_frame *f, char c)
{
    if (c == '\n' || c == '\0' || c == '\r')
        return 1;
    if (c >= '1' && c <= '9') {
        f->buf[0] = c;
        f->len = 1;
        f->state = ST_COUNT;
        return 1;
    }
    f->state = ST_LINE;
    return 0;
}

int lh_syslog_frame_feed(struct lh_syslog_frame *f, const char *p, size_t n,
                         lh_syslog_frame_cb cb, void *ud)
{
    size_t i = 0;
    if (n && need_buf(f) != 0)
        return LH_ENOMEM;
    while (i < n) {
        switch (f->state) {
        case ST_START:
            i += feed_start(f, p[i]);
            break;
        case ST_COUNT:
            i += feed_count(f, p[i]);
            break;
        case ST_OCTETS:
            i += feed_octets(f, p + i, n - i, cb, ud);
            break;
        default:
            i += feed_line(f, p + i, n - i, cb, ud);
            break;
        }
    }
    return LH_OK;
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
