/* The Forward v1 listener: TLS (optionally mTLS) or plain TCP, the
 * shared-key handshake, frame decoding; each batch goes to commit
 * (commit.h: dedup, outputs, store, sinks) and is acked from its done.
 *
 * Single-threaded for now: every connection runs on the one event_base
 * given here. A connection reads no further frame while its batch is being
 * committed, and the reference store's append is synchronous, so while the
 * store syncs no connection is read (that is the backpressure). */
#ifndef LH_IN_FORWARD_H
#define LH_IN_FORWARD_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "collector/collector_config.h"
#include "collector/ingest/commit.h"
#include "common/base/metrics.h"

struct lh_in_forward;

/* Binds cfg->address and logs "forward listening on HOST:PORT". cfg,
 * commit and metrics are borrowed; cfg and metrics must outlive the
 * listener, commit must outlive every commit it was handed (freeing the
 * listener first is fine: done then acks nothing). 0 with *out, or an LH_E*
 * code with err set (a TLS error names the file at fault). */
int lh_in_forward_new(struct event_base *base, const struct lh_forward_listen_cfg *cfg,
                      struct lh_commit *commit, struct lh_metrics *metrics,
                      struct lh_in_forward **out, char *err, size_t errlen);

/* Reads the TLS certificate, key and CA files again (same paths) for the
 * connections accepted from now on; open connections keep theirs. Without
 * TLS, 0 and nothing happens. On failure the running context stays and err
 * says why. */
int lh_in_forward_reload_tls(struct lh_in_forward *f, char *err, size_t errlen);

/* Stops accepting and reading, lets each connection finish its commit and
 * write out its pending acks, then calls done(ud) once no connection is
 * left (perhaps at once). */
void lh_in_forward_shutdown(struct lh_in_forward *f, void (*done)(void *ud), void *ud);

/* Closes every connection and the listener. */
void lh_in_forward_free(struct lh_in_forward *f);

#endif
