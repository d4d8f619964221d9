/* libFuzzer harness: the input is a stream as a TCP sender would write it.
 * The first byte chooses the arrival chunk size and the second max_message,
 * so resumed and truncated frames are exercised; every framed message goes
 * through the parser in all three formats, and every parsed field is read
 * so ASan sees any slice outside the message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/codec/syslog.h"
#include "common/codec/syslog_frame.h"

#define NOW_NS (1767312000LL * 1000000000LL)

static size_t touch(const struct lh_syslog_str *s)
{
    size_t sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += (unsigned char)s->p[i];
    return sum;
}

static void check_message(void *ud, const char *p, size_t n, bool truncated)
{
    static struct lh_syslog_msg m;
    size_t *sum = ud;
    *sum += truncated;
    /* An exact-size copy: reading past the message is caught. */
    char *copy = malloc(n ? n : 1);
    if (!copy)
        return;
    memcpy(copy, p, n);
    for (int fmt = LH_SYSLOG_AUTO; fmt <= LH_SYSLOG_RFC5424; fmt++) {
        if (lh_syslog_parse(copy, n, (enum lh_syslog_format)fmt, NOW_NS, &m) != 0)
            continue;
        *sum += touch(&m.hostname) + touch(&m.appname) + touch(&m.procid) + touch(&m.msgid) +
                touch(&m.message);
        for (size_t i = 0; i < m.n_sd; i++) {
            *sum += touch(&m.sd[i].id);
            for (size_t j = m.sd[i].first; j < m.sd[i].first + m.sd[i].n; j++) {
                char out[1];
                char *buf = m.params[j].value.n ? malloc(m.params[j].value.n) : out;
                if (!buf)
                    continue;
                *sum += lh_syslog_unescape(m.params[j].value.p, m.params[j].value.n, buf);
                *sum += touch(&m.params[j].name);
                if (buf != out)
                    free(buf);
            }
        }
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t step = data[0] % 16 + 1, max = (size_t)data[1] * 8 + 1;
    data += 2;
    size -= 2;
    struct lh_syslog_frame f;
    size_t sum = 0;
    lh_syslog_frame_init(&f, max);
    for (size_t i = 0; i < size; i += step)
        lh_syslog_frame_feed(&f, (const char *)data + i, size - i < step ? size - i : step,
                             check_message, &sum);
    lh_syslog_frame_finish(&f, check_message, &sum);
    lh_syslog_frame_free(&f);
    /* The whole input as one datagram, too. */
    check_message(&sum, (const char *)data, size, false);
    return sum == (size_t)-1;
}
