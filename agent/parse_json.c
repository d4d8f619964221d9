#include <stdlib.h>
#include <string.h>

#include "agent/parse.h"
#include "common/err.h"
#include "common/record.h"

/* jansson allocates every value, key, string and hash table of a line and
 * frees them all at json_decref: a third of the time parsing went to
 * malloc and free. A line's allocations come from a per-thread arena
 * instead, reset at the next line once nothing of it is alive; the frees
 * of arena memory do nothing. jansson's allocation functions are global,
 * so everything else falls through to malloc/free (outside a parse, past
 * the arena, on another thread). */
#define ARENA_BYTES (256u * 1024)

struct arena {
    char *base;
    size_t used;
    size_t live;              /* arena blocks not freed yet */
    bool parsing;
};

static _Thread_local struct arena arena;

static void *arena_malloc(size_t n)
{
    struct arena *a = &arena;
    size_t need = (n + 15) & ~(size_t)15;
    if (a->parsing && need >= n && ARENA_BYTES - a->used >= need) {
        void *p = a->base + a->used;
        a->used += need;
        a->live++;
        return p;
    }
    return malloc(n);
}

static void arena_free(void *p)
{
    struct arena *a = &arena;
    if (a->base && (char *)p >= a->base && (char *)p < a->base + ARENA_BYTES)
        a->live--;
    else
        free(p);
}

/* Starts a parse on the arena (plain malloc when it cannot be had). */
static void arena_begin(void)
{
    static _Thread_local bool installed;
    struct arena *a = &arena;
    if (!installed) {
        json_set_alloc_funcs(arena_malloc, arena_free);
        installed = true;
    }
    if (!a->base)
        a->base = malloc(ARENA_BYTES);
    if (a->live == 0)
        a->used = 0;
    a->parsing = a->base != NULL;
}

static void arena_end(void)
{
    arena.parsing = false;
}

static int pack_json(msgpack_packer *pk, const json_t *v, int depth);

static int pack_object(msgpack_packer *pk, const json_t *obj, int depth)
{
    if (msgpack_pack_map(pk, json_object_size(obj)) != 0)
        return LH_ENOMEM;
    for (void *it = json_object_iter((json_t *)obj); it;
         it = json_object_iter_next((json_t *)obj, it)) {
        if (lh_pack_strn(pk, json_object_iter_key(it), json_object_iter_key_len(it)) != 0)
            return LH_ENOMEM;
        int rc = pack_json(pk, json_object_iter_value(it), depth + 1);
        if (rc != 0)
            return rc;
    }
    return LH_OK;
}

static int pack_array(msgpack_packer *pk, const json_t *arr, int depth)
{
    if (msgpack_pack_array(pk, json_array_size(arr)) != 0)
        return LH_ENOMEM;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        int rc = pack_json(pk, json_array_get(arr, i), depth + 1);
        if (rc != 0)
            return rc;
    }
    return LH_OK;
}

static int pack_json(msgpack_packer *pk, const json_t *v, int depth)
{
    if (depth > LH_PARSE_JSON_MAX_DEPTH)
        return LH_EINVAL;
    int rc;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return pack_object(pk, v, depth);
    case JSON_ARRAY:
        return pack_array(pk, v, depth);
    case JSON_STRING:
        rc = lh_pack_strn(pk, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        rc = msgpack_pack_int64(pk, json_integer_value(v));
        break;
    case JSON_REAL:
        rc = msgpack_pack_double(pk, json_real_value(v));
        break;
    case JSON_TRUE:
        rc = msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        rc = msgpack_pack_false(pk);
        break;
    default:
        rc = msgpack_pack_nil(pk);
        break;
    }
    return rc ? LH_ENOMEM : LH_OK;
}

/* A top-level member: scalars are slices, containers packed into scratch. */
static int add_member(struct lh_recbuilder *rb, const char *k, size_t kn, const json_t *v)
{
    struct lh_rb_val val = {.kind = LH_RBV_NIL};
    switch (json_typeof(v)) {
    case JSON_STRING:
        return lh_rb_set_str(rb, k, kn, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        val.kind = LH_RBV_INT;
        val.num.i = json_integer_value(v);
        break;
    case JSON_REAL:
        val.kind = LH_RBV_DOUBLE;
        val.num.d = json_real_value(v);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        val.kind = LH_RBV_BOOL;
        val.num.b = json_is_true(v);
        break;
    case JSON_OBJECT:
    case JSON_ARRAY: {
        size_t off = lh_rb_raw_begin(rb);
        int rc = pack_json(&rb->spk, v, 1);
        return rc ? rc : lh_rb_set_raw(rb, k, kn, off);
    }
    default:
        break;
    }
    return lh_rb_set(rb, k, kn, &val);
}

int lh_parse_json(struct lh_recbuilder *rb, const char *line, size_t n, json_t **doc)
{
    /* Cheap reject before the parser allocates anything. */
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    *doc = NULL;
    if (i == n || line[i] != '{')
        return LH_EINVAL;
    json_error_t jerr;
    arena_begin();
    json_t *obj = json_loadb(line, n, JSON_ALLOW_NUL, &jerr);
    arena_end();
    if (!obj)
        return LH_EINVAL;
    *doc = obj;
    if (!json_is_object(obj))
        return LH_EINVAL;
    for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
        int rc = add_member(rb, json_object_iter_key(it), json_object_iter_key_len(it),
                            json_object_iter_value(it));
        if (rc != 0)
            return rc;
    }
    return LH_OK;
}
