/* File offsets that only move over acknowledged data, saved atomically.
 *
 * Every file an input reads has an lh_ckpt_file. The bytes read from it are
 * cut into segments: one segment is the run of consecutive records that went
 * into the same open batch of every output the file routes to. A segment has
 * one reference per output; an output's ack releases its reference. The
 * file's committed offset advances over the contiguous prefix of segments
 * whose references are all released, so acks arriving out of order never
 * move a checkpoint past a record some output still holds.
 *
 * No I/O besides load/save, no sockets: the ack accounting is unit-testable
 * on its own (tests/unit/test_checkpoint.c).
 *
 * Ownership: the store owns every lh_ckpt_file and every segment. A batch
 * holds borrowed segment pointers until it releases them. A file stays in
 * the store while its input holds it open or segments of it are pending. */
#ifndef LH_AGENT_CHECKPOINT_H
#define LH_AGENT_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lh_ckpt_file;

struct lh_ckpt_seg {
    struct lh_ckpt_seg *next;
    struct lh_ckpt_file *file;
    uint64_t end;   /* offset just past the last record of the segment */
    unsigned refs;  /* outputs that have not acknowledged it yet */
    bool sealed;    /* a batch holding it was sealed: no more records join */
};

struct lh_ckpt_file {
    struct lh_ckpt_file *next;
    uint64_t dev, ino;
    char *path;
    uint64_t fp_hash;         /* fingerprint of the first fp_len bytes */
    uint32_t fp_len;          /* 0: not known (empty file) */
    uint64_t committed;       /* every record before it is acknowledged */
    struct lh_ckpt_seg *head; /* oldest pending segment */
    struct lh_ckpt_seg *tail; /* newest; the only one records may join */
    bool open;                /* an input still reads it */
};

/* An entry of the checkpoint file as loaded at start. */
struct lh_ckpt_saved {
    uint64_t dev, ino;
    char *path;
    uint64_t offset;
    uint64_t fp_hash;
    uint32_t fp_len;           /* 0: no fingerprint saved (older file, empty file) */
};

struct lh_ckpt {
    char *path;                /* data_dir/checkpoints.json */
    struct lh_ckpt_file *files;
    struct lh_ckpt_saved *saved;
    size_t n_saved;
    bool dirty;                /* a committed offset moved since the last save */
};

/* A store saving to path (not read yet). 0 or LH_ENOMEM. */
int lh_ckpt_new(const char *path, struct lh_ckpt **out);
/* Frees the store, its files and pending segments. NULL is fine. */
void lh_ckpt_free(struct lh_ckpt *c);

/* Reads the checkpoint file. A missing file is 0 (first start). A file that
 * cannot be parsed is LH_ECORRUPT with err naming the file and the fault;
 * the caller decides whether to start over. */
int lh_ckpt_load(struct lh_ckpt *c, char *err, size_t errlen);
/* Writes every file's committed offset atomically (temp + fsync + rename)
 * and clears dirty. 0 or LH_EIO/LH_ENOMEM. */
int lh_ckpt_save(struct lh_ckpt *c);

/* A durable buffer holds records of file (dev, ino) up to end: resume no
 * earlier than that, whatever the checkpoint file says (it may lag the
 * buffer by a save interval after a crash). Call after lh_ckpt_load. 0 or
 * LH_ENOMEM. */
int lh_ckpt_recover(struct lh_ckpt *c, uint64_t dev, uint64_t ino, uint64_t end);
/* Whether a save now would let no restart read file (dev, ino) before end:
 * its committed offset (or, for a file no input holds, its loaded one) is
 * past it. A file the store does not know is covered. */
bool lh_ckpt_covers(const struct lh_ckpt *c, uint64_t dev, uint64_t ino, uint64_t end);

/* The saved entry to resume a file from: same dev and inode, an offset the
 * file is at least as long as (else the inode was reused), the entry with
 * the same path preferred. A saved entry for the same path but another
 * inode means the file was replaced: no resume. NULL when none. The caller
 * compares the entry's fingerprint with the file's first fp_len bytes. */
const struct lh_ckpt_saved *lh_ckpt_find(const struct lh_ckpt *c, uint64_t dev, uint64_t ino,
                                         const char *path, uint64_t size);
/* lh_ckpt_find's offset, ignoring the fingerprint. True when found. */
bool lh_ckpt_lookup(const struct lh_ckpt *c, uint64_t dev, uint64_t ino, const char *path,
                    uint64_t size, uint64_t *offset);

/* Starts tracking a file read from offset. NULL on OOM. */
struct lh_ckpt_file *lh_ckpt_file_open(struct lh_ckpt *c, uint64_t dev, uint64_t ino,
                                       const char *path, uint64_t offset);
/* The fingerprint of f (saved with its offset); dirty when it changed. */
void lh_ckpt_file_set_fp(struct lh_ckpt *c, struct lh_ckpt_file *f, uint64_t hash, uint32_t len);
/* The input no longer reads f; it is forgotten once its segments drain. */
void lh_ckpt_file_close(struct lh_ckpt *c, struct lh_ckpt_file *f);
/* The file was truncated and is read again from 0: committed follows. */
void lh_ckpt_file_restart(struct lh_ckpt *c, struct lh_ckpt_file *f);

/* Records up to end join the open tail segment, or a new one with refs
 * references when the tail is sealed or absent (*fresh set: the caller adds
 * the new segment to each output's open batch). With refs == 0 (routed
 * nowhere) the offset is committed at once and NULL is returned with
 * *fresh false. NULL with *fresh true is LH_ENOMEM. */
struct lh_ckpt_seg *lh_ckpt_track(struct lh_ckpt *c, struct lh_ckpt_file *f, uint64_t end,
                                  unsigned refs, bool *fresh);
/* One output acknowledged the segment. */
void lh_ckpt_release(struct lh_ckpt *c, struct lh_ckpt_seg *s);

#endif
