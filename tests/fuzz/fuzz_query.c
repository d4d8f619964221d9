/* libFuzzer harness: the input is query text. It is parsed, and when it
 * parses it is matched against a fixed record holding every value type and
 * its stats clause read back. Errors, and a regex too costly to match,
 * must carry a UTF-8 message and a position inside the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/query/query.h"
#include "common/codec/record.h"

static msgpack_sbuffer fz_sb;
static msgpack_unpacked fz_u;
static struct lh_query_record fz_rec;

static void fz_kv(msgpack_packer *pk, const char *k, const char *v)
{
    lh_pack_cstr(pk, k);
    lh_pack_cstr(pk, v);
}

static void fz_pack(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 8);
    fz_kv(pk, "message", "GET /api/v1/users 503 timeout after 30s caf\xc3\xa9");
    fz_kv(pk, "host", "web-1");
    lh_pack_cstr(pk, "status");
    msgpack_pack_int(pk, 503);
    lh_pack_cstr(pk, "latency");
    msgpack_pack_double(pk, 0.25);
    lh_pack_cstr(pk, "ok");
    msgpack_pack_true(pk);
    lh_pack_cstr(pk, "nothing");
    msgpack_pack_nil(pk);
    lh_pack_cstr(pk, "tags");
    msgpack_pack_array(pk, 2);
    lh_pack_cstr(pk, "a");
    msgpack_pack_uint64(pk, UINT64_MAX);
    lh_pack_cstr(pk, "sd");
    msgpack_pack_map(pk, 1);
    lh_pack_cstr(pk, "origin");
    msgpack_pack_map(pk, 1);
    fz_kv(pk, "ip", "10.0.0.5");
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    msgpack_packer pk;
    size_t off = 0;

    msgpack_sbuffer_init(&fz_sb);
    msgpack_packer_init(&pk, &fz_sb, msgpack_sbuffer_write);
    fz_pack(&pk);
    msgpack_unpacked_init(&fz_u);
    if (msgpack_unpack_next(&fz_u, fz_sb.data, fz_sb.size, &off) != MSGPACK_UNPACK_SUCCESS)
        abort();
    fz_rec.tag = "nginx.access";
    fz_rec.tag_len = strlen(fz_rec.tag);
    fz_rec.time_ns = 1700000000LL * 1000000000LL;
    fz_rec.fields = &fz_u.data;
    return 0;
}

/* Messages end up in JSON answers: they must be UTF-8 whatever the text. */
static void fz_check_error(int rc, const struct lh_query_error *err, size_t len)
{
    if (rc == LH_ENOMEM)
        return;
    if (rc != LH_EINVAL || err->msg[0] == '\0' || err->position < 0 ||
        (size_t)err->position > len || !lh_utf8_valid(err->msg, strlen(err->msg)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lh_query *q = NULL;
    struct lh_query_error err;
    const char *const *by;
    size_t n_by;
    char *text = malloc(size + 1);

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    int rc = lh_query_parse(text, &q, &err);
    if (rc != 0) {
        fz_check_error(rc, &err, strlen(text));
    } else {
        lh_query_match(q, &fz_rec);
        /* A regex PCRE2 gave up on is reported like a parse error. */
        if (lh_query_status(q, &err) != 0)
            fz_check_error(LH_EINVAL, &err, strlen(text));
        if (lh_query_stats(q, &by, &n_by)) {
            for (size_t i = 0; i < n_by; i++)
                if (by[i][0] == '\0')
                    abort();
        }
        lh_query_free(q);
    }
    free(text);
    return 0;
}
