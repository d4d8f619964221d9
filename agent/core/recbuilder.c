#include "agent/core/recbuilder.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/mpwrite.h"

void lh_rb_init(struct lh_recbuilder *rb)
{
    memset(rb, 0, sizeof *rb);
    msgpack_sbuffer_init(&rb->scratch);
    msgpack_packer_init(&rb->spk, &rb->scratch, msgpack_sbuffer_write);
}

void lh_rb_free(struct lh_recbuilder *rb)
{
    free(rb->f);
    msgpack_sbuffer_destroy(&rb->scratch);
    rb->f = NULL;
    rb->n = rb->cap = 0;
}

void lh_rb_reset(struct lh_recbuilder *rb)
{
    rb->n = 0;
    rb->scratch.size = 0;
}

static const char *key_of(const struct lh_recbuilder *rb, const struct lh_rb_field *f)
{
    return f->k_scratch ? rb->scratch.data + f->k_off : f->k;
}

int lh_rb_find(const struct lh_recbuilder *rb, const char *k, size_t kn)
{
    for (size_t i = 0; i < rb->n; i++) {
        const struct lh_rb_field *f = &rb->f[i];
        if (f->kn == kn && memcmp(key_of(rb, f), k, kn) == 0)
            return (int)i;
    }
    return -1;
}

void lh_rb_key(const struct lh_recbuilder *rb, size_t idx, const char **k, size_t *kn)
{
    *k = key_of(rb, &rb->f[idx]);
    *kn = rb->f[idx].kn;
}

static struct lh_rb_field *append_slot(struct lh_recbuilder *rb, const char *k, size_t kn,
                                       int *rc)
{
    if (rb->n == LH_RB_MAX_FIELDS) {
        *rc = LH_ETOOBIG;
        return NULL;
    }
    if (rb->n == rb->cap) {
        size_t cap = rb->cap ? rb->cap * 2 : 16;
        struct lh_rb_field *v = realloc(rb->f, cap * sizeof *v);
        if (!v) {
            *rc = LH_ENOMEM;
            return NULL;
        }
        rb->f = v;
        rb->cap = cap;
    }
    struct lh_rb_field *f = &rb->f[rb->n++];
    f->k = k;
    f->kn = kn;
    f->k_scratch = false;
    return f;
}

static struct lh_rb_field *slot_for(struct lh_recbuilder *rb, const char *k, size_t kn, int *rc)
{
    int at = lh_rb_find(rb, k, kn);
    return at >= 0 ? &rb->f[at] : append_slot(rb, k, kn, rc);
}

int lh_rb_add_str(struct lh_recbuilder *rb, const char *k, size_t kn, const char *s, size_t n)
{
    int rc = LH_OK;
    struct lh_rb_field *f = append_slot(rb, k, kn, &rc);
    if (f)
        f->v = (struct lh_rb_val){.kind = LH_RBV_STR, .p = s, .n = n};
    return rc;
}

int lh_rb_set(struct lh_recbuilder *rb, const char *k, size_t kn, const struct lh_rb_val *v)
{
    int rc = LH_OK;
    struct lh_rb_field *f = slot_for(rb, k, kn, &rc);
    if (f)
        f->v = *v;
    return rc;
}

int lh_rb_set_str(struct lh_recbuilder *rb, const char *k, size_t kn, const char *s, size_t n)
{
    struct lh_rb_val v = {.kind = LH_RBV_STR, .p = s, .n = n};
    return lh_rb_set(rb, k, kn, &v);
}

int lh_rb_set_copy(struct lh_recbuilder *rb, const char *k, size_t kn, const char *s, size_t n)
{
    size_t off = rb->scratch.size;
    if (msgpack_sbuffer_write(&rb->scratch, s, n) != 0)
        return LH_ENOMEM;
    struct lh_rb_val v = {.kind = LH_RBV_SCRATCH, .off = off, .n = n};
    return lh_rb_set(rb, k, kn, &v);
}

size_t lh_rb_raw_begin(const struct lh_recbuilder *rb)
{
    return rb->scratch.size;
}

int lh_rb_set_raw(struct lh_recbuilder *rb, const char *k, size_t kn, size_t off)
{
    struct lh_rb_val v = {.kind = LH_RBV_RAW, .off = off, .n = rb->scratch.size - off};
    return lh_rb_set(rb, k, kn, &v);
}

void lh_rb_remove(struct lh_recbuilder *rb, size_t idx)
{
    memmove(&rb->f[idx], &rb->f[idx + 1], (rb->n - idx - 1) * sizeof rb->f[0]);
    rb->n--;
}

int lh_rb_rename(struct lh_recbuilder *rb, size_t idx, const char *to, size_t ton)
{
    int other = lh_rb_find(rb, to, ton);
    if (other == (int)idx)
        return LH_OK;
    size_t off = rb->scratch.size;
    if (msgpack_sbuffer_write(&rb->scratch, to, ton) != 0)
        return LH_ENOMEM;
    struct lh_rb_field *f = &rb->f[idx];
    f->k_scratch = true;
    f->k_off = off;
    f->kn = ton;
    if (other >= 0)
        lh_rb_remove(rb, (size_t)other);
    return LH_OK;
}

bool lh_rb_text(const struct lh_recbuilder *rb, size_t idx, char *buf, size_t cap,
                const char **p, size_t *n)
{
    const struct lh_rb_val *v = &rb->f[idx].v;
    int len = -1;
    switch (v->kind) {
    case LH_RBV_STR:
        *p = v->p;
        *n = v->n;
        return true;
    case LH_RBV_SCRATCH:
        *p = rb->scratch.data + v->off;
        *n = v->n;
        return true;
    case LH_RBV_INT:
        len = snprintf(buf, cap, "%" PRId64, v->num.i);
        break;
    case LH_RBV_UINT:
        len = snprintf(buf, cap, "%" PRIu64, v->num.u);
        break;
    case LH_RBV_DOUBLE:
        len = snprintf(buf, cap, "%.17g", v->num.d);
        break;
    case LH_RBV_BOOL:
        len = snprintf(buf, cap, "%s", v->num.b ? "true" : "false");
        break;
    default:
        return false;
    }
    if (len < 0 || (size_t)len >= cap)
        return false;
    *p = buf;
    *n = (size_t)len;
    return true;
}

/* The largest encoding of every header and number: exact sizes would cost
 * a second pass of the branches the writes take anyway. */
static size_t pack_bound(const struct lh_recbuilder *rb)
{
    size_t n = LH_MPW_HDR_MAX;
    for (size_t i = 0; i < rb->n; i++) {
        const struct lh_rb_field *f = &rb->f[i];
        n += LH_MPW_HDR_MAX + f->kn + LH_MPW_SCALAR_MAX;
        if (f->v.kind == LH_RBV_STR || f->v.kind == LH_RBV_SCRATCH || f->v.kind == LH_RBV_RAW)
            n += f->v.n;
    }
    return n;
}

static char *write_val(char *p, const struct lh_recbuilder *rb, const struct lh_rb_val *v)
{
    switch (v->kind) {
    case LH_RBV_STR:
        return lh_mpw_str(p, v->p, v->n);
    case LH_RBV_SCRATCH:
        return lh_mpw_str(p, rb->scratch.data + v->off, v->n);
    case LH_RBV_RAW:
        return lh_mpw_raw(p, rb->scratch.data + v->off, v->n);
    case LH_RBV_INT:
        return lh_mpw_int(p, v->num.i);
    case LH_RBV_UINT:
        return lh_mpw_uint(p, v->num.u);
    case LH_RBV_DOUBLE:
        return lh_mpw_double(p, v->num.d);
    case LH_RBV_BOOL:
        return lh_mpw_bool(p, v->num.b);
    case LH_RBV_NIL:
        break;
    }
    return lh_mpw_nil(p);
}

int lh_rb_pack(msgpack_sbuffer *sb, void *ud)
{
    const struct lh_recbuilder *rb = ud;
    char *p = lh_mpw_reserve(sb, pack_bound(rb));
    if (!p)
        return LH_ENOMEM;
    p = lh_mpw_map_hdr(p, rb->n);
    for (size_t i = 0; i < rb->n; i++) {
        const struct lh_rb_field *f = &rb->f[i];
        p = lh_mpw_str(p, key_of(rb, f), f->kn);
        p = write_val(p, rb, &f->v);
    }
    lh_mpw_commit(sb, p);
    return LH_OK;
}
