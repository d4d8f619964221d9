/* A record's fields as key/value slices, packed into a batch by the
 * lh_route_emit callback.
 *
 * Keys and string values point into memory the caller keeps alive until
 * the record is packed (the read buffer, a parser's document). Values the
 * builder must hold itself (nested maps, set values, rendered numbers) go
 * into its scratch buffer. The field array and the scratch buffer are
 * reused from record to record: after the first few lines nothing is
 * allocated per line.
 *
 * Ownership: the builder owns its arrays; lh_rb_free releases them. */
#ifndef LH_AGENT_RECBUILDER_H
#define LH_AGENT_RECBUILDER_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fields per record; a parser that finds more fails (the line stays raw). */
#define LH_RB_MAX_FIELDS 512

enum lh_rb_kind {
    LH_RBV_STR,     /* p/n borrowed */
    LH_RBV_SCRATCH, /* a str in scratch at off/n */
    LH_RBV_RAW,     /* packed msgpack in scratch at off/n (nested maps, arrays) */
    LH_RBV_INT,
    LH_RBV_UINT,
    LH_RBV_DOUBLE,
    LH_RBV_BOOL,
    LH_RBV_NIL,
};

struct lh_rb_val {
    enum lh_rb_kind kind;
    const char *p;
    size_t off, n;
    union {
        int64_t i;
        uint64_t u;
        double d;
        bool b;
    } num;
};

struct lh_rb_field {
    const char *k;
    size_t kn;
    bool k_scratch;           /* k is an offset into scratch (renamed keys) */
    size_t k_off;
    struct lh_rb_val v;
};

struct lh_recbuilder {
    struct lh_rb_field *f;
    size_t n, cap;
    msgpack_sbuffer scratch;
    msgpack_packer spk;       /* packs into scratch */
};

void lh_rb_init(struct lh_recbuilder *rb);
void lh_rb_free(struct lh_recbuilder *rb);
/* Forgets the fields of the previous record (keeps the memory). */
void lh_rb_reset(struct lh_recbuilder *rb);

/* Sets key to v: replaces a field of that name, else appends one.
 * 0, LH_ENOMEM, or LH_ETOOBIG past LH_RB_MAX_FIELDS. */
int lh_rb_set(struct lh_recbuilder *rb, const char *k, size_t kn, const struct lh_rb_val *v);
int lh_rb_set_str(struct lh_recbuilder *rb, const char *k, size_t kn, const char *s, size_t n);
/* Appends a field whose name the record does not have yet, without
 * looking (a fresh record's first fields). */
int lh_rb_add_str(struct lh_recbuilder *rb, const char *k, size_t kn, const char *s, size_t n);
/* Copies s into scratch first (for values whose memory goes away). */
int lh_rb_set_copy(struct lh_recbuilder *rb, const char *k, size_t kn, const char *s, size_t n);
/* Raw values: pack into rb->spk between begin (returns the scratch offset)
 * and lh_rb_set_raw (which takes that offset). */
size_t lh_rb_raw_begin(const struct lh_recbuilder *rb);
int lh_rb_set_raw(struct lh_recbuilder *rb, const char *k, size_t kn, size_t off);

/* Index of the field named k, or -1. */
int lh_rb_find(const struct lh_recbuilder *rb, const char *k, size_t kn);
void lh_rb_remove(struct lh_recbuilder *rb, size_t idx);
/* Renames field idx (the new name is copied); a field already named `to`
 * is replaced. 0 or LH_ENOMEM. */
int lh_rb_rename(struct lh_recbuilder *rb, size_t idx, const char *to, size_t ton);
/* Key of field idx. */
void lh_rb_key(const struct lh_recbuilder *rb, size_t idx, const char **k, size_t *kn);
/* The value of field idx as text: strings as they are, numbers and booleans
 * rendered into buf (cap bytes). False for maps, arrays and nil. */
bool lh_rb_text(const struct lh_recbuilder *rb, size_t idx, char *buf, size_t cap,
                const char **p, size_t *n);

/* Appends the fields as one msgpack map to sb, the bytes msgpack_packer
 * would write, with one reservation per record. lh_pack_fields_fn-compatible
 * when ud is the builder. 0 or LH_ENOMEM. */
int lh_rb_pack(msgpack_sbuffer *sb, void *ud);

#endif
