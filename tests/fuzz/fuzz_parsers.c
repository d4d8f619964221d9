/* libFuzzer harness: the file input's line parsers on arbitrary bytes. The
 * first byte chooses a time_format; the rest is one line, copied to an
 * exact-size buffer so a slice read past it is caught. Every parser runs
 * on it (json, logfmt, a regex with named groups), every field a parser
 * set is packed and read back as text, and each string field is tried as
 * a time, so ASan sees any field pointing outside the line or its scratch
 * memory. A parser may reject a line; it must not crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/transform/parsers/parse.h"
#include "common/base/err.h"

static const char *const time_formats[] = {NULL, "epoch", "epoch_ms", "epoch_us", "epoch_ns",
                                           "%Y-%m-%d %H:%M:%S.%L", "%d/%b/%Y:%H:%M:%S %z"};
#define N_FORMATS (sizeof time_formats / sizeof time_formats[0])

static struct lh_regex *line_regex(void)
{
    static struct lh_regex *re;
    char err[256];
    if (!re &&
        lh_regex_new("^(?<ts>\\S+) (?<level>[A-Z]+)(?: (?<msg>.*))?$", &re, err, sizeof err) != 0)
        abort();
    return re;
}

static size_t read_fields(struct lh_recbuilder *rb, const struct lh_time_fmt *tf)
{
    size_t sum = 0;
    char num[64];
    for (size_t i = 0; i < rb->n; i++) {
        const char *k, *p;
        size_t kn, n;
        int64_t ns;
        lh_rb_key(rb, i, &k, &kn);
        for (size_t j = 0; j < kn; j++)
            sum += (unsigned char)k[j];
        if (lh_rb_text(rb, i, num, sizeof num, &p, &n))
            for (size_t j = 0; j < n; j++)
                sum += (unsigned char)p[j];
        if (lh_time_from_field(tf, rb, i, &ns) == 0)
            sum += (size_t)ns;
    }
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    if (lh_rb_pack(&out, rb) == 0)
        sum += out.size;
    msgpack_sbuffer_destroy(&out);
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct lh_time_fmt tf;
    char err[256];
    if (lh_time_fmt_init(&tf, time_formats[data[0] % N_FORMATS], err, sizeof err) != 0)
        abort();
    data++;
    size--;
    char *line = malloc(size ? size : 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    size_t sum = 0;
    lh_rb_reset(&rb);
    if (lh_parse_json(&rb, line, size) == 0)
        sum += read_fields(&rb, &tf);
    lh_rb_reset(&rb);
    if (lh_parse_logfmt(&rb, line, size) == 0)
        sum += read_fields(&rb, &tf);
    lh_rb_reset(&rb);
    if (lh_parse_regex(line_regex(), &rb, line, size) == 0)
        sum += read_fields(&rb, &tf);
    int64_t ns;
    if (lh_time_parse(&tf, line, size, &ns) == 0)
        sum += (size_t)ns;
    lh_rb_free(&rb);
    free(line);
    return sum == (size_t)-1;
}
