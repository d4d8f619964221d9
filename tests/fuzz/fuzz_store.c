/* libFuzzer harness: the collector store's read path (open, recovery,
 * scan) over arbitrary segment bytes. The first byte holds flags: bit 0
 * rewrites every record checksum the length fields lead to (so mutations
 * reach the batch decoder, not only the checksum), bit 1 splits the bytes
 * over two segments at the offset in the next two bytes (an older segment
 * is never truncated). Each run opens the store, scans it rendering every
 * event as JSON, appends a batch, and opens it again, which must find no
 * torn tail, the same events plus the appended one, and the same bytes.
 * Never a crash, a leak or a hang; the temporary directory is made once per
 * process. */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "collector/store/store.h"
#include "tests/unit/lh_store_test.h"
#include "common/base/log.h"
#include "tests/fuzz/fuzz_dir.h"
#include "common/codec/record.h"

#define F_FIX_CRC 1
#define F_SPLIT 2

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void fix_crcs(uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= 8) {
        uint32_t len = be32(p + off);
        if (len == 0 || len > n - off - 8)
            return;
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), p + off + 8, len);
        for (int i = 0; i < 4; i++)
            p[off + 4 + i] = (uint8_t)(crc >> (24 - 8 * i));
        off += 8 + (size_t)len;
    }
}

static void write_seg(const char *dir, int id, const uint8_t *p, size_t n)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/seg-%016x.lhs", dir, id);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
        abort();
    close(fd);
}

struct tally {
    size_t events;
    size_t sum;
};

static int on_event(void *ud, const struct lh_store_event *ev)
{
    struct tally *t = ud;
    char *json = lh_record_json(ev->tag, ev->tag_len, ev->time_ns, ev->fields, "h");
    if (!json)
        abort();
    t->sum += strlen(json);
    free(json);
    t->events++;
    return 0;
}

static struct lh_store *open_store(const char *dir)
{
    struct lh_store_opts o = {.dir = dir};
    struct lh_store *s;
    char err[512];
    if (lh_store_open(&o, &s, err, sizeof err) != 0)
        abort(); /* arbitrary bytes are damage to read past, not an error */
    return s;
}

static size_t scan(struct lh_store *s)
{
    struct tally t = {0};
    if (lh_test_store_scan(s, on_event, &t) != 0)
        abort();
    return t.events;
}

/* One small batch, as the collector appends it. */
static void append_one(struct lh_store *s)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    lh_pack_cstr(&pk, "fuzz");
    lh_pack_time(&pk, 1);
    msgpack_pack_map(&pk, 1);
    lh_pack_cstr(&pk, "message");
    lh_pack_cstr(&pk, "appended");
    if (lh_test_store_append(s, "fz", 2, 1, sb.data, sb.size, 1) != 0)
        abort();
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = lh_fuzz_dir("fuzz_store");
    if (size < 3)
        return 0;
    uint8_t flags = data[0];
    size_t split = (size_t)data[1] << 8 | data[2];
    size_t n = size - 3;
    uint8_t *body = malloc(n ? n : 1);
    if (!body)
        abort();
    memcpy(body, data + 3, n);
    if (flags & F_FIX_CRC)
        fix_crcs(body, n);
    lh_fuzz_dir_clear(dir);
    if (flags & F_SPLIT) {
        split = split < n ? split : n;
        write_seg(dir, 1, body, split);
        write_seg(dir, 2, body + split, n - split);
    } else {
        write_seg(dir, 1, body, n);
    }
    free(body);

    struct lh_store *s = open_store(dir);
    size_t events = scan(s);
    struct lh_store_stats st;
    lh_store_stats(s, &st);
    append_one(s);
    uint64_t bytes = st.bytes;
    lh_store_stats(s, &st);
    lh_store_close(s);

    /* Recovery is done once: the second open cuts nothing and reads the
     * same events, and the appended one. */
    s = open_store(dir);
    struct lh_store_stats again;
    lh_store_stats(s, &again);
    if (again.torn != 0 || again.bytes != st.bytes || st.bytes <= bytes ||
        scan(s) != events + 1)
        abort();
    lh_store_close(s);
    return 0;
}
