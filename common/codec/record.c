/* Record helpers: EventTime, msgpack accessors, record -> JSON line. */
#include "common/codec/record.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/base/util.h"

#define EVENTTIME_EXT 0
#define EVENTTIME_LEN 8

static void put_be32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static uint32_t get_be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

int lh_pack_time(msgpack_packer *pk, int64_t ns)
{
    char body[EVENTTIME_LEN];

    if (ns < 0 || ns > LH_TIME_MAX_NS)
        return LH_EINVAL;
    put_be32(body, (uint32_t)(ns / LH_NS_PER_SEC));
    put_be32(body + 4, (uint32_t)(ns % LH_NS_PER_SEC));
    if (msgpack_pack_ext(pk, EVENTTIME_LEN, EVENTTIME_EXT) != 0 ||
        msgpack_pack_ext_body(pk, body, EVENTTIME_LEN) != 0)
        return LH_ENOMEM;
    return 0;
}

static bool is_event_time(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_EXT && o->via.ext.type == EVENTTIME_EXT &&
           o->via.ext.size == EVENTTIME_LEN;
}

int64_t lh_event_time_body_ns(const char *body)
{
    uint32_t nsec = get_be32(body + 4);
    if (nsec >= LH_NS_PER_SEC)
        nsec = LH_NS_PER_SEC - 1;
    return (int64_t)get_be32(body) * LH_NS_PER_SEC + nsec;
}

static int64_t event_time_ns(const msgpack_object *o)
{
    return lh_event_time_body_ns(o->via.ext.ptr);
}

int lh_time_from_obj(const msgpack_object *o, int64_t *ns)
{
    const int64_t max_sec = LH_TIME_MAX_NS / LH_NS_PER_SEC;
    double f;

    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *ns = o->via.u64 > (uint64_t)max_sec ? LH_TIME_MAX_NS
                                             : (int64_t)o->via.u64 * LH_NS_PER_SEC;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *ns = 0;
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        f = o->via.f64;
        if (!isfinite(f))
            return LH_EINVAL;
        f *= (double)LH_NS_PER_SEC;
        *ns = f <= 0 ? 0 : f >= (double)LH_TIME_MAX_NS ? LH_TIME_MAX_NS : (int64_t)llround(f);
        if (*ns > LH_TIME_MAX_NS)
            *ns = LH_TIME_MAX_NS;
        return 0;
    case MSGPACK_OBJECT_EXT:
        if (!is_event_time(o))
            return LH_EINVAL;
        *ns = event_time_ns(o);
        return 0;
    default:
        return LH_EINVAL;
    }
}

int lh_pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
    if (msgpack_pack_str(pk, n) != 0 || msgpack_pack_str_body(pk, s, n) != 0)
        return LH_ENOMEM;
    return 0;
}

int lh_pack_cstr(msgpack_packer *pk, const char *s)
{
    return lh_pack_strn(pk, s, strlen(s));
}

bool lh_obj_bytes(const msgpack_object *o, const char **ptr, size_t *len)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        *ptr = o->via.str.ptr;
        *len = o->via.str.size;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        *ptr = o->via.bin.ptr;
        *len = o->via.bin.size;
        return true;
    }
    return false;
}

static bool obj_equals(const msgpack_object *o, const char *key, size_t klen)
{
    const char *p;
    size_t n;

    return lh_obj_bytes(o, &p, &n) && n == klen && memcmp(p, key, n) == 0;
}

static const msgpack_object_kv *map_find(const msgpack_object *map, const char *key)
{
    size_t klen = strlen(key);

    if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        if (obj_equals(&map->via.map.ptr[i].key, key, klen))
            return &map->via.map.ptr[i];
    }
    return NULL;
}

const msgpack_object *lh_map_get(const msgpack_object *map, const char *key)
{
    const msgpack_object_kv *kv = map_find(map, key);

    return kv != NULL ? &kv->val : NULL;
}

/* ---- JSON rendering ----------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF), or 0 when the byte at s starts none. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    }
    return len;
}

bool lh_utf8_valid(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0, k;

    while (i < n) {
        k = utf8_seq_len(s + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* A JSON string of the bytes, each byte that starts no valid UTF-8
 * sequence replaced by U+FFFD so the line stays valid JSON. */
static json_t *json_bytes(const char *p, size_t n)
{
    static const char repl[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0, o = 0, k;
    json_t *j;
    char *buf;

    if (n == 0)
        return json_string("");
    if (lh_utf8_valid(p, n))
        return json_stringn(p, n);
    if (n > SIZE_MAX / 3)
        return NULL;
    buf = malloc(n * 3);
    if (buf == NULL)
        return NULL;
    while (i < n) {
        k = utf8_seq_len(s + i, n - i);
        if (k == 0) {
            memcpy(buf + o, repl, sizeof(repl));
            o += sizeof(repl);
            i++;
        } else {
            memcpy(buf + o, s + i, k);
            o += k;
            i += k;
        }
    }
    j = json_stringn_nocheck(buf, o);
    free(buf);
    return j;
}

/* Extension values other than EventTime have no JSON form: they render as
 * the lowercase hex of their payload, so nothing is silently dropped. */
static json_t *json_hex(const char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    json_t *j;
    char *buf;

    if (n > SIZE_MAX / 2 - 1)
        return NULL;
    buf = malloc(n * 2 + 1);
    if (buf == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        buf[2 * i] = digits[(unsigned char)p[i] >> 4];
        buf[2 * i + 1] = digits[(unsigned char)p[i] & 0xF];
    }
    j = json_stringn_nocheck(buf, n * 2);
    free(buf);
    return j;
}

static json_t *json_from_obj(const msgpack_object *o);

static json_t *json_from_array(const msgpack_object *o)
{
    json_t *arr = json_array();

    for (uint32_t i = 0; arr != NULL && i < o->via.array.size; i++) {
        if (json_array_append_new(arr, json_from_obj(&o->via.array.ptr[i])) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* Sets obj[key] (stealing val) from a msgpack key of any type: keys that
 * render as JSON strings are used as such, others as their JSON text
 * ("1", "true", ...). */
static int json_set_objkey(json_t *obj, const msgpack_object *key, json_t *val)
{
    json_t *k = json_from_obj(key);
    char *text = NULL;
    int rc = -1;

    if (val == NULL || k == NULL)
        goto done;
    if (json_is_string(k)) {
        rc = json_object_setn_new_nocheck(obj, json_string_value(k), json_string_length(k), val);
        val = NULL;
        goto done;
    }
    text = json_dumps(k, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text != NULL) {
        rc = json_object_set_new_nocheck(obj, text, val);
        val = NULL;
    }
done:
    json_decref(val);
    json_decref(k);
    free(text);
    return rc;
}

static json_t *json_from_map(const msgpack_object *o)
{
    json_t *obj = json_object();

    for (uint32_t i = 0; obj != NULL && i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (json_set_objkey(obj, &kv->key, json_from_obj(&kv->val)) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

static json_t *json_from_obj(const msgpack_object *o)
{
    char tbuf[LH_TIME_STRLEN];
    json_t *j;

    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        /* JSON integers here are int64: larger values become reals. */
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return json_real((double)o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        j = json_real(o->via.f64); /* NULL for NaN and infinities */
        return j != NULL ? j : json_null();
    case MSGPACK_OBJECT_STR:
        return json_bytes(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return json_bytes(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY:
        return json_from_array(o);
    case MSGPACK_OBJECT_MAP:
        return json_from_map(o);
    case MSGPACK_OBJECT_EXT:
        if (is_event_time(o))
            return json_string(lh_format_time(event_time_ns(o), tbuf));
        return json_hex(o->via.ext.ptr, o->via.ext.size);
    }
    return json_null();
}

static const char *const reserved_keys[] = {"time", "tag", "host", "message"};

static bool is_reserved(const msgpack_object *key, const msgpack_object *log_key)
{
    if (key == log_key)
        return true;
    for (size_t i = 0; i < sizeof(reserved_keys) / sizeof(reserved_keys[0]); i++) {
        if (obj_equals(key, reserved_keys[i], strlen(reserved_keys[i])))
            return true;
    }
    return false;
}

static int json_put(json_t *obj, const char *key, json_t *val)
{
    return val == NULL ? -1 : json_object_set_new_nocheck(obj, key, val);
}

static int render_head(json_t *obj, const char *tag, size_t tag_len, int64_t ns,
                       const msgpack_object *fields, const char *default_host,
                       const msgpack_object **log_key)
{
    char tbuf[LH_TIME_STRLEN];
    const msgpack_object *host = lh_map_get(fields, "host");
    const msgpack_object *msg = lh_map_get(fields, "message");
    const msgpack_object_kv *log;

    *log_key = NULL;
    if (msg == NULL && (log = map_find(fields, "log")) != NULL) {
        msg = &log->val;
        *log_key = &log->key;
    }
    if (json_put(obj, "time", json_string(lh_format_time(ns, tbuf))) != 0 ||
        json_put(obj, "tag", json_bytes(tag, tag_len)) != 0)
        return -1;
    if (host != NULL && json_put(obj, "host", json_from_obj(host)) != 0)
        return -1;
    if (host == NULL && default_host != NULL &&
        json_put(obj, "host", json_bytes(default_host, strlen(default_host))) != 0)
        return -1;
    if (msg != NULL && json_put(obj, "message", json_from_obj(msg)) != 0)
        return -1;
    return 0;
}

char *lh_record_json(const char *tag, size_t tag_len, int64_t ns, const msgpack_object *fields,
                     const char *default_host)
{
    const msgpack_object *log_key;
    json_t *obj = json_object();
    char *out = NULL;

    if (obj == NULL || render_head(obj, tag, tag_len, ns, fields, default_host, &log_key) != 0)
        goto done;
    if (fields != NULL && fields->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < fields->via.map.size; i++) {
            const msgpack_object_kv *kv = &fields->via.map.ptr[i];
            if (is_reserved(&kv->key, log_key))
                continue;
            if (json_set_objkey(obj, &kv->key, json_from_obj(&kv->val)) != 0)
                goto done;
        }
    }
    out = json_dumps(obj, JSON_COMPACT);
done:
    json_decref(obj);
    return out;
}
