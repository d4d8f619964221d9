#include <errno.h>
#include <math.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "agent/transform/parsers/parse.h"
#include "common/base/err.h"
#include "common/codec/forward.h"
#include "common/codec/record.h"

/* A parsed record, one level down in its event, must stay readable by the
 * collector. */
_Static_assert(LH_PARSE_JSON_MAX_DEPTH + 1 < LH_MP_MAX_DEPTH,
               "JSON records nest deeper than the collector reads");

/* yajl's event (SAX) parser packs a line straight into msgpack: building a
 * tree first (jansson) cost 70 % of the time of a JSON tail. */

/* yajl 2.1 has no reset, so each line gets a fresh handle. Its few small
 * allocations come from a bump arena on the stack; what does not fit (the
 * decode buffer of a long escaped string) falls through to the heap. */
#define ARENA_BYTES 8192

struct arena {
    alignas(max_align_t) unsigned char buf[ARENA_BYTES];
    size_t used;
};

/* Each arena block starts with its size, for realloc. */
#define BLOCK_HDR sizeof(max_align_t)

static bool in_arena(const struct arena *a, const void *p)
{
    uintptr_t u = (uintptr_t)p, lo = (uintptr_t)a->buf;
    return u >= lo && u < lo + ARENA_BYTES;
}

static void *arena_malloc(void *ctx, size_t n)
{
    struct arena *a = ctx;
    size_t need = (n + 2 * BLOCK_HDR - 1) / BLOCK_HDR * BLOCK_HDR;
    if (n > ARENA_BYTES || ARENA_BYTES - a->used < need)
        return malloc(n);
    unsigned char *p = a->buf + a->used;
    a->used += need;
    memcpy(p, &n, sizeof n);
    return p + BLOCK_HDR;
}

static void arena_free(void *ctx, void *p)
{
    if (!in_arena(ctx, p))
        free(p);
}

static void *arena_realloc(void *ctx, void *p, size_t n)
{
    if (!p)
        return arena_malloc(ctx, n);
    if (!in_arena(ctx, p))
        return realloc(p, n);
    size_t old;
    memcpy(&old, (unsigned char *)p - BLOCK_HDR, sizeof old);
    void *q = arena_malloc(ctx, n);
    if (q)
        memcpy(q, p, old < n ? old : n);
    return q;
}

/* A nested map or array being packed: its header is written with a
 * placeholder count, patched when it closes. */
struct open_container {
    size_t off;               /* of the header in scratch */
    uint32_t count;           /* pairs of a map, elements of an array */
    bool map;
};

#define HDR32 5               /* map32/array32: a type byte, a 32-bit count */

struct jctx {
    struct lh_recbuilder *rb;
    const char *line;
    size_t n;
    int rc;                   /* why a callback stopped the parse */
    bool top_seen;            /* the line's object has opened */
    bool in_top;              /* ...and has not closed yet */
    /* The key of the top-level member being parsed: a slice of the line,
     * or (when yajl unescaped it into its own buffer) copied to scratch. */
    const char *key;
    size_t kn, key_off;
    bool key_scratch;
    size_t raw_off;           /* where a container member's msgpack starts */
    size_t sp;                /* open nested containers */
    struct open_container stack[LH_PARSE_JSON_MAX_DEPTH - 1];
};

static int stop(struct jctx *c, int rc)
{
    c->rc = rc;
    return 0;
}

static bool in_line(const struct jctx *c, const void *p)
{
    uintptr_t u = (uintptr_t)p, lo = (uintptr_t)c->line;
    return u >= lo && u < lo + c->n;
}

/* Sets the current top-level member to v. */
static int put_field(struct jctx *c, const struct lh_rb_val *v)
{
    struct lh_recbuilder *rb = c->rb;
    const char *k = c->key_scratch ? rb->scratch.data + c->key_off : c->key;
    size_t before = rb->n;
    int rc = lh_rb_set(rb, k, c->kn, v);
    if (rc != 0)
        return stop(c, rc);
    if (c->key_scratch && rb->n > before) {
        /* Scratch may move as it grows: the key is kept by offset. */
        struct lh_rb_field *f = &rb->f[rb->n - 1];
        f->k_scratch = true;
        f->k_off = c->key_off;
    }
    return 1;
}

/* A value inside a nested container counts toward its header (a map
 * counts its keys instead). */
static void count_element(struct jctx *c)
{
    if (c->sp > 0 && !c->stack[c->sp - 1].map)
        c->stack[c->sp - 1].count++;
}

/* A scalar: a field of its own at the top level, else packed in place. */
static int scalar(struct jctx *c, const struct lh_rb_val *v)
{
    if (!c->in_top)
        return stop(c, LH_EINVAL);
    if (c->sp == 0)
        return put_field(c, v);
    count_element(c);
    msgpack_packer *pk = &c->rb->spk;
    int rc;
    switch (v->kind) {
    case LH_RBV_INT:
        rc = msgpack_pack_int64(pk, v->num.i);
        break;
    case LH_RBV_DOUBLE:
        rc = msgpack_pack_double(pk, v->num.d);
        break;
    case LH_RBV_BOOL:
        rc = v->num.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        break;
    default:
        rc = msgpack_pack_nil(pk);
        break;
    }
    return rc ? stop(c, LH_ENOMEM) : 1;
}

static int on_null(void *ctx)
{
    struct lh_rb_val v = {.kind = LH_RBV_NIL};
    return scalar(ctx, &v);
}

static int on_bool(void *ctx, int b)
{
    struct lh_rb_val v = {.kind = LH_RBV_BOOL, .num.b = b != 0};
    return scalar(ctx, &v);
}

/* Longer numbers (digits no double keeps) leave the line raw. */
#define NUMBER_MAX 512

/* yajl's own integer conversion refuses INT64_MIN: numbers come as text
 * (already checked against the JSON grammar) and go through strtoll and
 * strtod. Integers are int64, overflow is an error, as are infinite
 * doubles. */
static int on_number(void *ctx, const char *s, size_t n)
{
    char buf[NUMBER_MAX + 1];
    if (n > NUMBER_MAX)
        return stop(ctx, LH_EINVAL);
    memcpy(buf, s, n);
    buf[n] = '\0';
    struct lh_rb_val v;
    errno = 0;
    if (strpbrk(buf, ".eE")) {
        v = (struct lh_rb_val){.kind = LH_RBV_DOUBLE, .num.d = strtod(buf, NULL)};
        if (isinf(v.num.d))
            return stop(ctx, LH_EINVAL);
    } else {
        v = (struct lh_rb_val){.kind = LH_RBV_INT, .num.i = strtoll(buf, NULL, 10)};
        if (errno == ERANGE)
            return stop(ctx, LH_EINVAL);
    }
    return scalar(ctx, &v);
}

/* Strings of the line are borrowed; unescaped ones live in yajl's decode
 * buffer, reused at the next string, and are copied. */
static int on_string(void *ctx, const unsigned char *s, size_t n)
{
    struct jctx *c = ctx;
    struct lh_recbuilder *rb = c->rb;
    if (!c->in_top)
        return stop(c, LH_EINVAL);
    if (c->sp > 0) {
        count_element(c);
        return lh_pack_strn(&rb->spk, (const char *)s, n) ? stop(c, LH_ENOMEM) : 1;
    }
    struct lh_rb_val v = {.kind = LH_RBV_STR, .p = (const char *)s, .n = n};
    if (!in_line(c, s)) {
        v = (struct lh_rb_val){.kind = LH_RBV_SCRATCH, .off = rb->scratch.size, .n = n};
        if (msgpack_sbuffer_write(&rb->scratch, (const char *)s, n) != 0)
            return stop(c, LH_ENOMEM);
    }
    return put_field(c, &v);
}

static int on_key(void *ctx, const unsigned char *k, size_t n)
{
    struct jctx *c = ctx;
    struct lh_recbuilder *rb = c->rb;
    if (c->sp > 0) {
        c->stack[c->sp - 1].count++;
        return lh_pack_strn(&rb->spk, (const char *)k, n) ? stop(c, LH_ENOMEM) : 1;
    }
    c->kn = n;
    c->key_scratch = !in_line(c, k);
    if (!c->key_scratch) {
        c->key = (const char *)k;
        return 1;
    }
    c->key_off = rb->scratch.size;
    return msgpack_sbuffer_write(&rb->scratch, (const char *)k, n) ? stop(c, LH_ENOMEM) : 1;
}

static int open_nested(struct jctx *c, bool map)
{
    struct lh_recbuilder *rb = c->rb;
    if (c->sp == sizeof c->stack / sizeof c->stack[0])
        return stop(c, LH_EINVAL);
    count_element(c);
    if (c->sp == 0)
        c->raw_off = rb->scratch.size;
    static const char placeholder[HDR32] = {0};
    c->stack[c->sp++] = (struct open_container){.off = rb->scratch.size, .map = map};
    return msgpack_sbuffer_write(&rb->scratch, placeholder, HDR32) ? stop(c, LH_ENOMEM) : 1;
}

static int on_start_map(void *ctx)
{
    struct jctx *c = ctx;
    if (c->in_top)
        return open_nested(c, true);
    if (c->top_seen)
        return stop(c, LH_EINVAL);
    c->top_seen = c->in_top = true;
    return 1;
}

static int on_start_array(void *ctx)
{
    struct jctx *c = ctx;
    return c->in_top ? open_nested(c, false) : stop(c, LH_EINVAL);
}

/* Writes the smallest header msgpack has for the count (as
 * msgpack_pack_map/array would) and moves the elements up against it. */
static void patch_header(msgpack_sbuffer *sb, const struct open_container *oc)
{
    unsigned char *h = (unsigned char *)sb->data + oc->off;
    uint32_t n = oc->count;
    size_t len;
    if (n < 16) {
        h[0] = (unsigned char)((oc->map ? 0x80 : 0x90) | n);
        len = 1;
    } else if (n < 65536) {
        h[0] = oc->map ? 0xde : 0xdc;
        h[1] = (unsigned char)(n >> 8);
        h[2] = (unsigned char)n;
        len = 3;
    } else {
        h[0] = oc->map ? 0xdf : 0xdd;
        for (int i = 0; i < 4; i++)
            h[1 + i] = (unsigned char)(n >> (24 - 8 * i));
        len = HDR32;
    }
    size_t body = sb->size - oc->off - HDR32;
    memmove(h + len, h + HDR32, body);
    sb->size -= HDR32 - len;
}

static int close_container(void *ctx)
{
    struct jctx *c = ctx;
    if (c->sp == 0) {
        c->in_top = false;
        return 1;
    }
    patch_header(&c->rb->scratch, &c->stack[--c->sp]);
    if (c->sp > 0)
        return 1;
    struct lh_rb_val v = {
        .kind = LH_RBV_RAW, .off = c->raw_off, .n = c->rb->scratch.size - c->raw_off};
    return put_field(c, &v);
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_bool,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = close_container,
    .yajl_start_array = on_start_array,
    .yajl_end_array = close_container,
};

int lh_parse_json(struct lh_recbuilder *rb, const char *line, size_t n)
{
    /* Cheap reject before the parser is set up. */
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == n || line[i] != '{')
        return LH_EINVAL;
    struct arena arena;
    arena.used = 0;
    yajl_alloc_funcs af = {arena_malloc, arena_realloc, arena_free, &arena};
    struct jctx c = {.rb = rb, .line = line, .n = n, .rc = LH_EINVAL};
    yajl_handle h = yajl_alloc(&callbacks, &af, &c);
    if (!h)
        return LH_ENOMEM;
    bool ok = yajl_parse(h, (const unsigned char *)line, n) == yajl_status_ok &&
              yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    return ok ? LH_OK : c.rc;
}
