/* The set of recently committed chunk ids, dedup's memory: a hash table
 * whose entries are also queued in arrival order, so expiring the old ones
 * costs nothing per lookup. The set owns copies of the ids. */
#ifndef LH_CHUNKSET_H
#define LH_CHUNKSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lh_chunkset;

struct lh_chunkset *lh_chunkset_new(void);
void lh_chunkset_free(struct lh_chunkset *cs);

/* True when id was added with a receive time >= since_ns. */
bool lh_chunkset_has(const struct lh_chunkset *cs, const char *id, size_t len, int64_t since_ns);
/* Adds id received at recv_ns. Ids should arrive in receive order; expiry
 * walks from the oldest. 0 or LH_ENOMEM. */
int lh_chunkset_add(struct lh_chunkset *cs, const char *id, size_t len, int64_t recv_ns);
/* Forgets ids received before before_ns (from the oldest on). */
void lh_chunkset_expire(struct lh_chunkset *cs, int64_t before_ns);
size_t lh_chunkset_count(const struct lh_chunkset *cs);
/* Calls cb for every id, oldest first; a non-zero return stops the walk
 * and is returned. */
int lh_chunkset_each(const struct lh_chunkset *cs,
                     int (*cb)(void *ud, const char *id, size_t len, int64_t recv_ns), void *ud);

#endif
