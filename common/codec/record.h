/* The record model: (tag, time, fields) carried as msgpack.
 *
 * Records travel as msgpack bytes from input to store; nothing converts them
 * to an in-memory tree except where a field must be read. Time is int64
 * nanoseconds since the epoch, on the wire a Forward EventTime (ext type 0:
 * big-endian uint32 seconds + uint32 nanoseconds). */
#ifndef LH_RECORD_H
#define LH_RECORD_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The times an EventTime holds, and so every time a record has: 0 to
 * 2^32 - 1 seconds and 999999999 nanoseconds past the epoch
 * (1970-01-01T00:00:00Z to 2106-02-07T06:28:15.999999999Z). */
#define LH_TIME_MAX_NS (4294967295LL * 1000000000LL + 999999999LL)

/* Packs ns (0..LH_TIME_MAX_NS, else LH_EINVAL) as EventTime (fixext8,
 * type 0). */
int lh_pack_time(msgpack_packer *pk, int64_t ns);
/* Reads a Forward time: positive/negative integer (seconds), float
 * (seconds), or EventTime ext (fixext8 or ext8 of 8 bytes, type 0). A time
 * outside 0..LH_TIME_MAX_NS is clamped to the nearer end (the record is
 * kept; refusing it would have its sender resend it forever), so whatever
 * this reads lh_pack_time packs. 0, or LH_EINVAL for what is no time (a
 * string, NaN or infinity, another ext). */
int lh_time_from_obj(const msgpack_object *o, int64_t *ns);
/* Nanoseconds of an EventTime's 8-byte body (big-endian seconds, then
 * nanoseconds; a nanoseconds field past 999999999 counts as 999999999, the
 * last instant of that second, rather than moving the record into later
 * seconds). */
int64_t lh_event_time_body_ns(const char *body);

/* Packs a C string as msgpack str. */
int lh_pack_cstr(msgpack_packer *pk, const char *s);
int lh_pack_strn(msgpack_packer *pk, const char *s, size_t n);

/* Value of key in a msgpack map (str or bin keys), or NULL. */
const msgpack_object *lh_map_get(const msgpack_object *map, const char *key);
/* True when o is a str or bin; sets ptr/len. */
bool lh_obj_bytes(const msgpack_object *o, const char **ptr, size_t *len);

/* True when s[0..n) is UTF-8 as RFC 3629 defines it: no overlong forms, no
 * surrogates, nothing past U+10FFFF, no truncated sequence. */
bool lh_utf8_valid(const char *s, size_t n);

/* Renders one record as a single JSON object line (no newline), in the
 * order SPEC section 2 fixes: time, tag, host, message, then the other fields
 * in their stored order. A missing `message` is taken from `log`; a missing
 * `host` from default_host (may be NULL). Strings that are not valid UTF-8
 * are kept with each bad byte replaced by U+FFFD. Nested maps and arrays
 * become JSON objects and arrays; bin becomes a string.
 * Returns a malloc'd NUL-terminated string the caller frees, or NULL on OOM. */
char *lh_record_json(const char *tag, size_t tag_len, int64_t ns, const msgpack_object *fields,
                     const char *default_host);

#endif
