/* Fluent Forward protocol v1 codec. No I/O: bytes and msgpack objects in,
 * events and bytes out. The facts: shared/FORWARD-NOTES.md.
 *
 * Reading a connection is two steps: lh_mp_scan() finds the extent of the
 * next complete msgpack object in the stream (bounded, no allocation), then
 * lh_fwd_decode() walks exactly those bytes. A frame is never unpacked
 * whole: only its small parts are (capped at LH_FWD_MAX_SMALL), so memory
 * never grows with a frame's element count. */
#ifndef LH_FORWARD_H
#define LH_FORWARD_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- frame scanner ------------------------------------------------------ */

/* Nesting limit; msgpack-c's unpacker stops at the same depth
 * (MSGPACK_EMBED_STACK_SIZE), and the scanner applies its rule exactly: with
 * 32 containers open, any further container, even an empty one, is refused. */
#define LH_MP_MAX_DEPTH 32
/* Deepest nesting lh_mp_walk can measure. */
#define LH_MP_WALK_MAX 64

/* Resumable state of a scan over a buffer that only grows at its end. */
struct lh_mp_scan {
    size_t pos;        /* bytes of the frame already walked */
    uint64_t pending;  /* objects still to walk (0 before start) */
    bool started;
    unsigned depth;    /* open containers */
    uint64_t left[LH_MP_MAX_DEPTH]; /* per open container: children not yet started */
};

void lh_mp_scan_init(struct lh_mp_scan *s);
/* Looks for one complete msgpack object at buf[0..]. Returns 0 with
 * *frame_len set (then re-init before the next frame), LH_AGAIN when more
 * bytes are needed, LH_ETOOBIG when the frame would exceed max bytes (or
 * claims more elements than max allows), LH_EINVAL on a byte that starts no
 * msgpack type. Nesting deeper than LH_MP_MAX_DEPTH is LH_EINVAL. */
int lh_mp_scan(struct lh_mp_scan *s, const uint8_t *buf, size_t len, size_t max,
               size_t *frame_len);

/* ---- raw msgpack -------------------------------------------------------- */

/* Walks the one complete object at p[0..n) (the checks of lh_mp_scan, on
 * a buffer that is all there) with msgpack-c's depth rule at max_depth (at
 * most LH_MP_WALK_MAX): 0 with *len its bytes, LH_ETOOBIG when it nests
 * deeper, LH_EPROTO when there is no complete object. */
int lh_mp_walk(const uint8_t *p, size_t n, unsigned max_depth, size_t *len);
/* lh_mp_walk that also sets *deepest to the levels of containers the
 * object uses (the object itself counts: a scalar is 0, {} is 1). */
int lh_mp_walk_depth(const uint8_t *p, size_t n, unsigned max_depth, size_t *len,
                     unsigned *deepest);
/* lh_mp_walk at LH_MP_MAX_DEPTH: the bytes msgpack_unpack would take, or 0. */
size_t lh_mp_extent(const uint8_t *p, size_t n);
/* The element count and header bytes of the map header at map[0..len).
 * 0 or LH_EPROTO. */
int lh_mp_map_head(const char *map, size_t len, uint64_t *count, size_t *hdr);
/* True when the map at map[0..len) (one complete, scanned object) has a
 * key equal to key, as a str or a bin (the same bytes: rendering and
 * lh_map_get take both). */
bool lh_mp_map_has_key(const char *map, size_t len, const char *key, size_t klen);

/* ---- decoding events ---------------------------------------------------- */

enum lh_fwd_mode { LH_FWD_MESSAGE, LH_FWD_FORWARD, LH_FWD_PACKED, LH_FWD_COMPRESSED };

struct lh_fwd_event {
    const char *tag;
    size_t tag_len;
    int64_t time_ns;
    /* The record, a msgpack map: its bytes in the frame (or the inflated
     * payload), never unpacked. It nests at most LH_MP_WALK_MAX levels; a
     * consumer that unpacks it checks the depth it can take against depth. */
    const char *record;
    size_t record_len;
    /* Levels of containers in the record, the record itself counted, as
     * the decoder's one walk found them; for a packed entry the entry's
     * depth less one (its head counts too: never less than the record's). */
    unsigned depth;
    const msgpack_object *metadata; /* Fluent Bit 2+ [[time, meta], record]; or NULL */
};

/* Options of a frame. Pointers reference the frame's bytes. */
struct lh_fwd_options {
    const char *chunk; /* NULL when absent */
    size_t chunk_len;
    int64_t size;      /* -1 when absent */
    bool compressed;   /* "compressed": "gzip" */
};

/* Called once per event, in order; a non-zero return stops decoding and is
 * returned by lh_fwd_decode. Events are only valid during the call. */
typedef int (*lh_fwd_event_cb)(void *ud, const struct lh_fwd_event *ev);

/* The small parts of a frame that are unpacked (options map, entry head,
 * Message time) are at most this big; a bigger one is LH_EPROTO. */
#define LH_FWD_MAX_SMALL (64 * 1024)

/* First bytes of a frame after the handshake: nil (heartbeat) or an array
 * of 2 to 4 elements whose first is a string. 0, LH_AGAIN (too few bytes to
 * tell), or LH_EPROTO: the frame can be refused before it is buffered. */
int lh_fwd_check_head(const uint8_t *p, size_t n);

/* Decodes one transport frame in any mode from its bytes, frame[0..len)
 * exactly one object (as lh_mp_scan found it). The shape is checked from
 * headers first, then the options; entries and records are walked, never
 * unpacked. Compressed payloads (gzip, several members back to back) are
 * inflated up to max_decompressed bytes (LH_ETOOBIG past that).
 * A malformed frame is LH_EPROTO; callbacks may already have run for the
 * events before the fault, so callers stage events and commit on success.
 * opts and mode may be NULL. */
int lh_fwd_decode(const uint8_t *frame, size_t len, size_t max_decompressed, lh_fwd_event_cb cb,
                  void *ud, struct lh_fwd_options *opts, enum lh_fwd_mode *mode);

/* ---- encoding ----------------------------------------------------------- */

/* Starts one PackedForward entry: packs [ EventTime, ...; the caller packs
 * the record map next. */
int lh_fwd_pack_entry_begin(msgpack_packer *pk, int64_t ns);

/* Packs a PackedForward frame [tag, bin(entries), {"size": n, "chunk": id}]
 * where entries are concatenated [time, record] arrays. With gzip, entries
 * are compressed first and "compressed": "gzip" is added. */
int lh_fwd_pack_packed(msgpack_packer *pk, const char *tag, size_t tag_len, const char *entries,
                       size_t entries_len, size_t n_entries, const char *chunk, size_t chunk_len,
                       bool gzip);

/* The same frame in three pieces, for a caller that keeps the (already
 * compressed, if gzip) entries where they are: the head [tag, bin header
 * for entries_len bytes, then the entries, then the tail (the options). */
int lh_fwd_pack_packed_head(msgpack_packer *pk, const char *tag, size_t tag_len,
                            size_t entries_len);
int lh_fwd_pack_packed_tail(msgpack_packer *pk, size_t n_entries, const char *chunk,
                            size_t chunk_len, bool gzip);

/* gzip (one member) of in into a malloc'd buffer. 0 or LH_ENOMEM/LH_EIO. */
int lh_gzip(const void *in, size_t len, char **out, size_t *out_len);
/* Inflates every gzip member in in, up to max bytes. 0, LH_ETOOBIG, LH_EPROTO. */
int lh_gunzip(const void *in, size_t len, size_t max, char **out, size_t *out_len);

/* A fresh chunk id: base64 of 16 random bytes, NUL-terminated (25 bytes). */
#define LH_CHUNK_ID_LEN 24
int lh_fwd_chunk_id(char out[LH_CHUNK_ID_LEN + 1]);

/* {"ack": chunk} */
int lh_fwd_pack_ack(msgpack_packer *pk, const char *chunk, size_t chunk_len);
/* Parses {"ack": id}: 0 with id pointing into o, or LH_EPROTO. */
int lh_fwd_parse_ack(const msgpack_object *o, const char **chunk, size_t *chunk_len);

/* ---- shared-key handshake ----------------------------------------------- */

#define LH_FWD_MAX_NONCE 64
#define LH_FWD_HEX512 129 /* 128 hex chars + NUL */

struct lh_fwd_helo {
    uint8_t nonce[LH_FWD_MAX_NONCE];
    size_t nonce_len;
    uint8_t auth[LH_FWD_MAX_NONCE]; /* user-auth salt; empty = no user auth */
    size_t auth_len;
    bool keepalive;
};

struct lh_fwd_ping {
    char hostname[256];
    uint8_t salt[LH_FWD_MAX_NONCE]; /* shared_key_salt */
    size_t salt_len;
    char username[256];
};

/* Server: fills a fresh random nonce (16 bytes) and no user auth. */
int lh_fwd_helo_init(struct lh_fwd_helo *h);
int lh_fwd_pack_helo(msgpack_packer *pk, const struct lh_fwd_helo *h);
/* Client: 0 or LH_EPROTO. Nonce and auth may be str or bin. */
int lh_fwd_parse_helo(const msgpack_object *o, struct lh_fwd_helo *h);

/* Client: packs PING with a fresh random salt, which is stored in *ping so
 * the PONG can be checked. username/password may be NULL (sent as ""). */
int lh_fwd_pack_ping(msgpack_packer *pk, const struct lh_fwd_helo *h, const char *hostname,
                     const char *shared_key, const char *username, const char *password,
                     struct lh_fwd_ping *ping);
/* Server: checks a PING's digest against shared_key. 0, LH_EAUTH (wrong
 * key; reason set), or LH_EPROTO (not a PING). Fills *ping. */
int lh_fwd_check_ping(const msgpack_object *o, const struct lh_fwd_helo *h,
                      const char *shared_key, struct lh_fwd_ping *ping, const char **reason);
/* Server: PONG. With ok=false the hostname and digest are "" as the spec says. */
int lh_fwd_pack_pong(msgpack_packer *pk, bool ok, const char *reason, const char *server_hostname,
                     const struct lh_fwd_helo *h, const struct lh_fwd_ping *ping,
                     const char *shared_key);
/* Client: 0 when the server accepted and its digest proves it knows the key;
 * LH_EAUTH with reason copied otherwise; LH_EPROTO for a malformed PONG. */
int lh_fwd_check_pong(const msgpack_object *o, const struct lh_fwd_helo *h,
                      const struct lh_fwd_ping *ping, const char *shared_key, char *reason,
                      size_t reason_len);

#endif
