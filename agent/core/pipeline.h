/* The agent pipeline: inputs → router (match on tag) → output batches →
 * acks → checkpoints. Plugins are const vtables listed in registry.c.
 *
 * Ownership contract
 * ------------------
 * 1. An input reads into its own buffer and calls lh_route_emit() once per
 *    record. The record's msgpack map is packed by the input's callback
 *    straight into the open batch of every output its route selects (no
 *    per-record allocation). From then on the batch owns the record bytes;
 *    the input keeps only the file position (lh_ckpt_file).
 * 2. The pipeline owns open batches. It seals a batch (max_records,
 *    max_bytes, max_wait, or a flush) and hands it to the output's submit
 *    hook: from then on the output owns it, until it calls
 *    lh_output_acked() (the pipeline releases its checkpoint segments and
 *    frees it) — or, when the output is destroyed unacked, lh_batch_free().
 *    A sealed batch never changes: a resend sends the same bytes with the
 *    same chunk id.
 * 3. Checkpoint segments (agent/checkpoint.h) belong to the checkpoint
 *    store; a batch borrows pointers to the segments its records cover and
 *    releases each once. A file's offset moves only over segments every
 *    output has acknowledged.
 * 4. Backpressure: the bytes an output holds (open + sealed + in flight)
 *    are capped; past the cap every input is paused (pause hook) and
 *    resumed once acks bring every output back under it. Nothing is dropped.
 * 5. An output with a durable buffer (forward) acknowledges a batch as soon
 *    as it is in the buffer: files move on, and the buffer's bytes are
 *    reported with lh_output_queued() (for /metrics and for a graceful
 *    stop, which waits until they are delivered too).
 *
 * Everything here runs on the one event_base thread. */
#ifndef LH_AGENT_PIPELINE_H
#define LH_AGENT_PIPELINE_H

#include <event2/dns.h>
#include <event2/event.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/core/checkpoint.h"
#include "common/config/config.h"
#include "common/codec/forward.h"
#include "common/base/metrics.h"

struct lh_pipeline;
struct lh_output;
struct lh_route;
struct lh_plugins;

/* The small context every plugin gets (no god struct). */
struct lh_agent_ctx {
    struct event_base *base;
    struct evdns_base *dns;      /* NULL: blocking name resolution */
    const char *host;            /* agent.name: the `host` field */
    struct lh_metrics *metrics;
    struct lh_ckpt *ckpt;
    struct lh_pipeline *pl;
    const char *data_dir;        /* agent.data_dir: outputs keep buffers under it */
    const struct lh_cfg_list *filters; /* the `filters:` list (borrowed; may be NULL) */
    /* Where lh_pipeline_new finds each item's hooks; NULL: lh_agent_plugins.
     * A test passes fakes of its own without touching registry.c. */
    const struct lh_plugins *plugins;
};

/* Batch limits of an output. */
struct lh_batch_limits {
    int64_t max_records;
    int64_t max_bytes;
    int64_t max_wait_ms;
    int64_t max_in_flight;       /* batches; sets the memory cap with max_bytes */
};

struct lh_batch {
    struct lh_batch *next;       /* in the output's queues */
    struct lh_output *out;
    const char *tag;             /* owned by the output's slot */
    size_t tag_len;
    msgpack_sbuffer entries;     /* concatenated [time, record] */
    size_t n_records;
    struct lh_ckpt_seg **segs;   /* borrowed, released on ack */
    size_t n_segs, cap_segs;
    int64_t opened_ms;
    size_t bytes;                /* counted against the output's cap (set at seal) */
    /* Set when sealed, kept for life (resends repeat it). */
    char chunk[LH_CHUNK_ID_LEN + 1];
    msgpack_sbuffer wire;        /* the output's encoded frame, if it needs one */
    int64_t sent_ms;
    unsigned attempts;
};

/* Frees a batch without acknowledging it (its records stay uncommitted). */
void lh_batch_free(struct lh_batch *b);

/* ---- plugins ---------------------------------------------------------- */

/* Appends the fields map of one record to sb (common/mpwrite.h writes it
 * without msgpack_packer's per-value callback). 0 or LH_E*: what it
 * appended before failing is cut off by the caller. */
typedef int (*lh_pack_fields_fn)(msgpack_sbuffer *sb, void *ud);

struct lh_input_ops {
    const char *type;
    const struct lh_cfg_schema *schema;
    /* cfg is the loaded item (schema->size bytes, borrowed for the input's
     * life). The input asks lh_pipeline_route() where its records go. On
     * failure err says why; *state may be half-built (destroy frees it). */
    int (*create)(const struct lh_cfg_item *cfg, const struct lh_agent_ctx *ctx, void **state,
                  char *err, size_t errlen);
    int (*start)(void *state);
    void (*pause)(void *state);
    void (*resume)(void *state);
    void (*stop)(void *state);       /* stop reading; no more emits */
    void (*destroy)(void *state);    /* NULL is fine */
    void (*status)(void *state, json_t *files);  /* appends to /status files */
};

struct lh_output_ops {
    const char *type;
    const struct lh_cfg_schema *schema;
    /* Fills the batch limits from cfg. Errors as for inputs (a missing
     * certificate names the file). */
    int (*create)(const struct lh_cfg_item *cfg, const struct lh_agent_ctx *ctx,
                  struct lh_output *out, struct lh_batch_limits *limits, void **state,
                  char *err, size_t errlen);
    int (*start)(void *state);
    /* Takes ownership of a sealed batch (contract point 2). */
    void (*submit)(void *state, struct lh_batch *b);
    void (*destroy)(void *state);    /* frees batches still held; NULL is fine */
    void (*status)(void *state, json_t *outputs);
};

/* Every output item's config starts with this (after the lh_cfg_item). */
struct lh_output_cfg {
    struct lh_cfg_item item;
    char *match;                     /* fnmatch(3) glob on the tag */
};

/* The hooks of a set of plugins, each list NULL-terminated. */
struct lh_plugins {
    const struct lh_input_ops *const *inputs;
    const struct lh_output_ops *const *outputs;
};

/* registry.c: the config loader's type tables and every plugin's hooks.
 * The find functions give the hooks of a loaded item (matched by its
 * schema) in p, NULL when p has none. */
extern const struct lh_cfg_plugin_type lh_input_types[];
extern const struct lh_cfg_plugin_type lh_output_types[];
extern const struct lh_plugins lh_agent_plugins;
const struct lh_input_ops *lh_input_ops_find(const struct lh_plugins *p,
                                             const struct lh_cfg_item *item);
const struct lh_output_ops *lh_output_ops_find(const struct lh_plugins *p,
                                               const struct lh_cfg_item *item);

/* The plugins (one file each). */
extern const struct lh_cfg_schema lh_in_file_schema;
extern const struct lh_input_ops lh_in_file_ops;
extern const struct lh_cfg_schema lh_in_syslog_schema;
extern const struct lh_input_ops lh_in_syslog_ops;
extern const struct lh_cfg_schema lh_out_forward_schema;
extern const struct lh_output_ops lh_out_forward_ops;
extern const struct lh_cfg_schema lh_out_stdout_schema;
extern const struct lh_output_ops lh_out_stdout_ops;
extern const struct lh_cfg_schema lh_out_null_schema;
extern const struct lh_output_ops lh_out_null_ops;

/* ---- pipeline --------------------------------------------------------- */

/* Builds inputs and outputs from the loaded lists (items borrowed for the
 * pipeline's life). 0, or LH_E* with err filled (e.g. a missing
 * certificate, naming the file). */
int lh_pipeline_new(const struct lh_agent_ctx *ctx, const struct lh_cfg_list *inputs,
                    const struct lh_cfg_list *outputs, struct lh_pipeline **out, char *err,
                    size_t errlen);
int lh_pipeline_start(struct lh_pipeline *pl, char *err, size_t errlen);
/* Graceful stop: inputs stop, open batches are sealed, and done(ud) runs once
 * every output is drained or timeout_ms passed. */
void lh_pipeline_shutdown(struct lh_pipeline *pl, int64_t timeout_ms, void (*done)(void *ud),
                          void *ud);
/* Saves checkpoints now (also done every second while they move). */
int lh_pipeline_save(struct lh_pipeline *pl);
void lh_pipeline_free(struct lh_pipeline *pl);
/* {files: [...], outputs: [...]} for /status; caller owns the result. */
json_t *lh_pipeline_status(struct lh_pipeline *pl);

/* Routes: an input asks for its route once, by tag. */
int lh_pipeline_route(struct lh_pipeline *pl, const char *tag, struct lh_route **route);
/* Packs one record (time ns, fields by fn) into every target's open batch;
 * f/end: the file position just past the record (f NULL: an input with no
 * position to checkpoint, such as syslog). 0 or LH_ENOMEM (the record
 * then counts as dropped{reason="encode"} and its position stays pending). */
int lh_route_emit(struct lh_route *r, struct lh_ckpt_file *f, uint64_t end, int64_t ns,
                  lh_pack_fields_fn fn, void *ud);

/* Brackets the records of one read (a chunk of a file): the read counter
 * and the outputs' cap are then looked at once per chunk, not once per
 * record. Past the cap, inputs are paused at lh_route_release, so the
 * outputs may hold one chunk's records more than the cap. */
/* Counts n bytes the input read (loghaul_agent_bytes_read_total). */
void lh_route_bytes(struct lh_route *r, uint64_t n);
void lh_route_hold(struct lh_route *r);
void lh_route_release(struct lh_route *r);
/* The input has read all there is for now. An output with no sealed batch
 * still unacknowledged seals its open one at once (no max_wait at the end
 * of a backlog or a burst); one still waiting on acks seals it when they
 * are in, so batches grow exactly while the output is busy. */
void lh_route_idle(struct lh_route *r);

/* Outputs: a batch was acknowledged (or delivered, for stdout, or made
 * durable in a buffer). Frees it. */
void lh_output_acked(struct lh_output *out, struct lh_batch *b);
/* Bytes the output holds in its durable buffer, not yet delivered. */
void lh_output_queued(struct lh_output *out, uint64_t bytes);
/* The output's position among the outputs of its type, in config order:
 * a stable name for what it keeps on disk. */
size_t lh_output_index(const struct lh_output *out);
/* The dropped counter for reason: "encode" (a record could not be packed),
 * "decode" / "write" (stdout could not render or write it), "buffer_full"
 * (on_full: drop_oldest), "buffer_corrupt" (a buffered chunk failed its
 * checksum when read back). All are
 * registered at start so /metrics shows them at 0. */
struct lh_metric *lh_pipeline_dropped(struct lh_pipeline *pl, const char *reason);

#endif
