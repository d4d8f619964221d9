/* RFC 6587 framing of syslog over a byte stream (TCP, TLS, unix stream),
 * detected per message: a frame starting with a non-zero digit followed
 * by more digits and a space is octet counted ("LEN SP MSG"); anything
 * else is a message ended by LF or NUL (a CR before the LF is dropped,
 * empty lines are skipped).
 *
 * The decoder is resumable: bytes may arrive in any split, one at a time
 * included. Messages are handed to a callback, straight from the caller's
 * bytes when they lie whole in one feed, else from the decoder's buffer.
 * A message longer than max is cut to its first max bytes and flagged
 * truncated; the rest of that frame is skipped.
 *
 * Memory: the buffer holds only what a message split across feeds needs:
 * it is allocated when bytes must wait, grows by doubling from a few
 * hundred bytes to at most max + 1 with what it holds, and one grown past
 * a few KiB is released again once its message is delivered. Many idle or
 * slow connections therefore cost what they sent, not max each.
 *
 * Ownership: the decoder owns its buffer; lh_syslog_frame_free releases
 * it. */
#ifndef LH_SYSLOG_FRAME_H
#define LH_SYSLOG_FRAME_H

#include <stdbool.h>
#include <stddef.h>

/* One message: p[0..n) is valid only during the call. */
typedef void (*lh_syslog_frame_cb)(void *ud, const char *p, size_t n, bool truncated);

struct lh_syslog_frame {
    size_t max;
    int state;
    size_t want;           /* octet counting: bytes of the frame still to come */
    char *buf;
    size_t len, cap;
    size_t limit;          /* the most cap may grow to during this feed */
    bool truncated;
};

void lh_syslog_frame_init(struct lh_syslog_frame *f, size_t max);
void lh_syslog_frame_free(struct lh_syslog_frame *f);

/* Decodes p[0..n), calling cb for every message completed. 0, or
 * LH_ENOMEM when the buffer cannot grow (drop the connection: the message
 * being buffered is lost). */
int lh_syslog_frame_feed(struct lh_syslog_frame *f, const char *p, size_t n,
                         lh_syslog_frame_cb cb, void *ud);

/* Like lh_syslog_frame_feed, within a memory budget: the buffer grows to
 * at most limit bytes (it keeps what it has if that is more). 0 with
 * *used = n, or LH_AGAIN with *used < n when the next byte would need
 * more: feed p[*used..n) again once memory allows (nothing is lost, the
 * decoder is resumable there), or LH_ENOMEM. */
int lh_syslog_frame_feed_upto(struct lh_syslog_frame *f, const char *p, size_t n, size_t limit,
                              lh_syslog_frame_cb cb, void *ud, size_t *used);

/* Bytes of buffer the decoder holds now. */
size_t lh_syslog_frame_held(const struct lh_syslog_frame *f);

/* End of stream: a pending line without its delimiter is delivered; a
 * short octet-counted frame is delivered flagged truncated. */
void lh_syslog_frame_finish(struct lh_syslog_frame *f, lh_syslog_frame_cb cb, void *ud);

#endif
