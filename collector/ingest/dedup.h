/* Forward dedup: the chunk ids committed within the dedup window, so a
 * batch the sender resends (its ack was lost, or came too late) is acked
 * again without being written anywhere twice. It works with the store on
 * or off.
 *
 * The ids live in memory (a chunkset) and in an index file of their own,
 * so a restart loads the window's ids instead of reading every stored
 * byte. The index is a cache of what the store holds, never ahead of it:
 *
 *   - An entry is written after its batch is durable (outputs, then the
 *     store), never before: an entry written first could claim a chunk the
 *     store never got, and its resend would be acked and lost.
 *   - Written after, an entry can be missing after a crash (the process
 *     died between the store's fsync and the entry's write, or the
 *     unsynced end of the index was lost with the page cache). So every
 *     entry also carries a store position: every batch stored before it
 *     has its entry earlier in the file. At open the index catches up on
 *     the store's tail from the last entry's position (lh_store_tail), so
 *     what the store holds within the window is in the set before anything
 *     is accepted: no duplicate either. The tail is what was stored after
 *     the last entry that reached the disk: one batch after a process
 *     crash, a few seconds of writes (the kernel's writeback) after a power
 *     loss, never the whole store.
 *   - Entries are checksummed one by one; the index is read up to its
 *     first bad entry, cut there, and the store's tail from the last good
 *     entry's position restores what followed.
 *   - An index that claims positions the store does not have (the store
 *     directory was emptied or replaced) is thrown away and rebuilt from
 *     the whole store, as the store itself used to.
 *
 * With the store off the outputs are the durable end and there is no tail
 * to catch up on: an entry is written right after the outputs took the
 * batch, so only a crash in between makes a resend go to the outputs
 * twice; nothing is lost.
 *
 * The file, version 1 (all numbers big-endian):
 *   header: "lhdedup\0", u32 version, u32 crc32 of the 12 bytes before
 *   entry:  u32 length, u32 crc32 of the body, body =
 *           i64 recv_ns, u64 segment, i64 offset (the store position),
 *           u16 chunk length, chunk bytes (0: a batch without chunk id,
 *           which only moves the position)
 * Entries past the window are dropped when the file is rewritten (it is
 * compacted once it holds twice as many entries as the window). What a
 * reader does with other versions is in docs/ARCHITECTURE.md.
 *
 * Runs on the collector's event loop thread; not thread safe. */
#ifndef LH_DEDUP_H
#define LH_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/store/store.h"
#include "common/base/metrics.h"

#define LH_DEDUP_VERSION 1

struct lh_dedup;

struct lh_dedup_opts {
    const char *path;           /* the index file, created when missing */
    int64_t window_ns;          /* ids are remembered this long after receipt */
    struct lh_store *store;     /* NULL: store off (borrowed, outlives the dedup) */
    struct lh_metrics *metrics; /* NULL, or where loghaul_collector_dedup_* go */
};

/* Loads the index, catches up on the store's tail (see above), drops what
 * is past the window. 0 with *out, or an LH_E* code with err set: LH_EIO,
 * LH_ENOMEM, or LH_ECORRUPT for an index of a newer version than this
 * reader knows (the file is left untouched). */
int lh_dedup_open(const struct lh_dedup_opts *o, struct lh_dedup **out, char *err,
                  size_t errlen);
/* Syncs the index and frees everything. NULL is a no-op. */
void lh_dedup_close(struct lh_dedup *d);

/* True when chunk was committed within the window before now_ns. */
bool lh_dedup_has(const struct lh_dedup *d, const char *chunk, size_t len, int64_t now_ns);

/* Records a committed batch: chunk (NULL: none) received at recv_ns, and
 * from, a store position every batch stored before which is recorded by
 * now (the position where the oldest batch not yet recorded went; {0, 0}
 * with the store off). Call it only once the batch is durable. The set
 * takes the id in every case; a failed index write (logged, counted) only
 * makes the next open read more of the store's tail. 0, LH_EINVAL (chunk
 * longer than LH_STORE_MAX_CHUNK_ID) or LH_ENOMEM. */
int lh_dedup_add(struct lh_dedup *d, const char *chunk, size_t len, int64_t recv_ns,
                 const struct lh_store_pos *from);

/* Ids in the set. */
size_t lh_dedup_count(const struct lh_dedup *d);

#endif
