/* The collector's `kafka` output: accepted batches whose tag matches go to
 * a Kafka topic (topic may hold ${tag}), one message per record, the
 * record's JSON line (what `loghaul search` prints) as the value.
 *
 * As with the other network outputs, a write first makes the batch durable
 * in a spool (common/chunkq under data_dir/outputs/kafka-N, fsync'd before
 * the upstream ack). The spool is produced in order through librdkafka
 * (which batches, retries and orders per partition itself); a chunk is
 * consumed once every message of it has a successful delivery report. A
 * chunk with a failed report is produced again after a backoff: delivery to
 * Kafka is at least once. Delivery reports are served from a timer on the
 * loop (rd_kafka_poll with no wait). */
#include <fnmatch.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/outputs/output.h"
#include "common/chunkq/chunkq.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/base/util.h"

#define KAFKA_LOG "out_kafka"
#define IN_FLIGHT_CHUNKS 8
#define BACKOFF_MS 1000

struct kafka_cfg {
    struct lh_cfg_item item;
    char *match;
    struct lh_strlist brokers;
    char *topic;
    int64_t timeout_ms;
    int64_t max_size;
};

static int validate(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct kafka_cfg *c = obj;
    const char *t = strstr(c->topic, "${");
    if (c->brokers.n == 0)
        return lh_cfg_error(d, line, col, "kafka output: brokers must name at least one");
    if (t && (strncmp(t, "${tag}", 6) != 0 || strstr(t + 6, "${")))
        return lh_cfg_error(d, line, col, "kafka output: topic may use ${tag} once, and "
                                          "nothing else");
    return 0;
}

static const struct lh_cfg_field fields[] = {
    {.key = "match", .type = LH_CFG_STR, .offset = offsetof(struct kafka_cfg, match),
     .defval = "*", .help = "fnmatch(3) glob on the tag"},
    {.key = "brokers", .type = LH_CFG_STRLIST, .offset = offsetof(struct kafka_cfg, brokers),
     .flags = LH_CFG_F_REQUIRED, .help = "bootstrap brokers, host:port"},
    {.key = "topic", .type = LH_CFG_STR, .offset = offsetof(struct kafka_cfg, topic),
     .flags = LH_CFG_F_REQUIRED, .help = "topic; ${tag} is replaced by the batch's tag"},
    {.key = "timeout", .type = LH_CFG_DURATION, .offset = offsetof(struct kafka_cfg, timeout_ms),
     .defval = "30s", .min = 1000, .max = 3600000,
     .help = "how long librdkafka tries a message before its chunk is produced again"},
    {.key = "max_size", .type = LH_CFG_SIZE, .offset = offsetof(struct kafka_cfg, max_size),
     .defval = "1GiB", .min = 64 << 10, .max = INT64_MAX / 2,
     .help = "spool bound; past it writes are refused (the sender retries)"},
    {0},
};

const struct lh_cfg_schema lh_coll_out_kafka_schema = {
    .name = "kafka output",
    .size = sizeof(struct kafka_cfg),
    .fields = fields,
    .validate = validate,
};

/* A spooled chunk: its payload is the topic, a newline, then one JSON line
 * per record. */
struct kchunk {
    struct kchunk *next;
    struct lh_chunk *c;
    size_t outstanding;         /* messages without a delivery report yet */
    bool failed;
    bool produced;
};

struct out_kafka {
    const struct kafka_cfg *cfg;
    rd_kafka_t *rk;
    struct lh_chunkq *q;
    char dir[PATH_MAX];
    struct kchunk *head, *tail; /* spool order; the first `produced` are out */
    size_t n_out;
    bool closing;               /* reports served by the final flush only count */
    struct event *poll, *retry;
    msgpack_sbuffer text;
    struct lh_coll_output_metrics m;
    struct lh_metric *delivered, *redone;
};

static void produce_more(struct out_kafka *o);

static void append_chunk(struct out_kafka *o, struct kchunk *k)
{
    if (o->tail)
        o->tail->next = k;
    else
        o->head = k;
    o->tail = k;
}

static void unlink_chunk(struct out_kafka *o, struct kchunk *k)
{
    struct kchunk **p = &o->head, *prev = NULL;
    while (*p && *p != k) {
        prev = *p;
        p = &(*p)->next;
    }
    if (!*p)
        return;
    *p = k->next;
    if (o->tail == k)
        o->tail = prev;
}

/* Every message of k has a report: consumed, or produced again later. */
static void chunk_reported(struct out_kafka *o, struct kchunk *k)
{
    o->n_out--;
    if (!k->failed) {
        lh_metric_add(o->delivered, (int64_t)k->c->n_records);
        unlink_chunk(o, k);
        lh_chunkq_ack(o->q, k->c);
        free(k);
        if (!o->closing)
            produce_more(o);
        return;
    }
    lh_metric_add(o->redone, 1);
    k->failed = k->produced = false;
    if (o->closing)
        return;
    static const struct timeval later = {BACKOFF_MS / 1000, (BACKOFF_MS % 1000) * 1000};
    evtimer_add(o->retry, &later);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    struct out_kafka *o = opaque;
    struct kchunk *k = msg->_private;
    if (msg->err) {
        LH_WARN(KAFKA_LOG, "delivery to %s failed: %s (the batch is produced again)",
                rd_kafka_topic_name(msg->rkt), rd_kafka_err2str(msg->err));
        k->failed = true;
    }
    if (--k->outstanding == 0)
        chunk_reported(o, k);
}

/* Produces every line of k; 0, or LH_AGAIN when librdkafka's queue is full
 * (k is then produced again from its start later: messages already queued
 * are reported and counted as usual). */
static int produce_chunk(struct out_kafka *o, struct kchunk *k)
{
    char *data = NULL;
    int rc = lh_chunkq_read(o->q, k->c, &data);
    if (rc != 0)
        return rc;
    size_t len = k->c->payload_len;
    char *nl = memchr(data, '\n', len);
    if (!nl) {
        free(data);
        return LH_ECORRUPT;
    }
    *nl = '\0';
    const char *topic = data;
    k->produced = true;
    k->outstanding = 1; /* held until every line is queued */
    o->n_out++;
    for (char *p = nl + 1, *end = data + len, *e; p < end && rc == 0; p = e + 1) {
        e = memchr(p, '\n', (size_t)(end - p));
        e = e ? e : end;
        k->outstanding++;
        rd_kafka_resp_err_t err = rd_kafka_producev(
            o->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(p, (size_t)(e - p)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(k), RD_KAFKA_V_END);
        if (err) {
            k->outstanding--;
            k->failed = true;
            rc = err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? LH_AGAIN : LH_EIO;
            if (rc == LH_EIO)
                LH_WARN(KAFKA_LOG, "producing to %s: %s", topic, rd_kafka_err2str(err));
        }
    }
    free(data);
    if (--k->outstanding == 0)
        chunk_reported(o, k);
    return rc;
}

static void produce_more(struct out_kafka *o)
{
    if (evtimer_pending(o->retry, NULL))
        return;
    for (struct kchunk *k = o->head, *next; k && o->n_out < IN_FLIGHT_CHUNKS; k = next) {
        next = k->next;
        if (k->produced)
            continue;
        int rc = produce_chunk(o, k);
        if (rc == LH_ECORRUPT) {
            LH_ERROR(KAFKA_LOG, "spooled chunk in %s is damaged: %u records dropped", o->dir,
                     k->c->n_records);
            lh_metric_add(o->m.errors, 1);
            unlink_chunk(o, k);
            lh_chunkq_ack(o->q, k->c);
            free(k);
            continue;
        }
        if (rc != 0)
            return;
    }
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    struct out_kafka *o = arg;
    rd_kafka_poll(o->rk, 0);
    produce_more(o);
    if (lh_chunkq_dirty(o->q) && lh_chunkq_sync(o->q) != 0)
        LH_WARN(KAFKA_LOG, "syncing spool %s failed", o->dir);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    produce_more(arg);
}

/* The spool payload: topic line, then the batch as NDJSON. */
static int render(struct out_kafka *o, const struct lh_coll_batch *b)
{
    int rc = lh_coll_batch_ndjson(b, NULL, &o->text);
    const char *t = strstr(o->cfg->topic, "${tag}");
    char topic[512];
    int n = t ? snprintf(topic, sizeof topic, "%.*s%s%s", (int)(t - o->cfg->topic),
                         o->cfg->topic, b->tag, t + 6)
              : snprintf(topic, sizeof topic, "%s", o->cfg->topic);
    if (rc == 0 && (n <= 0 || n >= (int)sizeof topic || strchr(topic, '\n')))
        rc = LH_EINVAL;
    if (rc != 0)
        return rc;
    size_t body = o->text.size;
    if (msgpack_sbuffer_write(&o->text, topic, (size_t)n + 1) != 0)
        return LH_ENOMEM;
    memmove(o->text.data + n + 1, o->text.data, body);
    memcpy(o->text.data, topic, (size_t)n);
    o->text.data[n] = '\n';
    return LH_OK;
}

static int kafka_write(void *state, const struct lh_coll_batch *b)
{
    struct out_kafka *o = state;
    if (b->n_events == 0 || fnmatch(o->cfg->match, b->tag, 0) != 0)
        return LH_OK;
    int rc = render(o, b);
    struct kchunk *k = rc == 0 ? calloc(1, sizeof *k) : NULL;
    if (rc == 0 && !k)
        rc = LH_ENOMEM;
    if (rc == 0)
        rc = lh_coll_spool(o->q, o->dir, b, NULL, o->text.data, o->text.size, &k->c);
    if (rc != 0) {
        free(k);
        lh_metric_add(o->m.errors, 1);
        return rc;
    }
    append_chunk(o, k);
    lh_metric_add(o->m.records, (int64_t)b->n_events);
    lh_metric_add(o->m.batches, 1);
    produce_more(o);
    return LH_OK;
}

static void on_replay(void *ud, struct lh_chunk *c)
{
    struct out_kafka *o = ud;
    struct kchunk *k = calloc(1, sizeof *k);
    if (!k) {
        LH_ERROR(KAFKA_LOG, "out of memory replaying %s: a batch waits for the next start",
                 o->dir);
        return;
    }
    k->c = c;
    append_chunk(o, k);
}

static rd_kafka_t *new_producer(const struct kafka_cfg *cfg, void *opaque, char *err,
                                size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char brokers[4096] = "", ms[32];
    for (size_t i = 0; i < cfg->brokers.n; i++)
        snprintf(brokers + strlen(brokers), sizeof brokers - strlen(brokers), "%s%s",
                 i ? "," : "", cfg->brokers.v[i]);
    snprintf(ms, sizeof ms, "%lld", (long long)cfg->timeout_ms);
    /* Idempotence keeps librdkafka's own retries from writing a message
     * twice or out of order. */
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, errlen) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "message.timeout.ms", ms, err, errlen) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", err, errlen) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, opaque);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

static int kafka_create(const struct lh_cfg_item *item, const struct lh_coll_output_ctx *ctx,
                        size_t index, void **state, char *err, size_t errlen)
{
    struct out_kafka *o = calloc(1, sizeof *o);
    if (!o)
        return LH_ENOMEM;
    *state = o;
    o->cfg = (const struct kafka_cfg *)item;
    msgpack_sbuffer_init(&o->text);
    int rc = lh_coll_output_metrics(ctx->metrics, "kafka", &o->m);
    o->delivered = lh_metrics_get(ctx->metrics, LH_METRIC_COUNTER,
                                  "loghaul_collector_output_delivered_total", "output=\"kafka\"",
                                  "Records a downstream system confirmed");
    o->redone = lh_metrics_get(ctx->metrics, LH_METRIC_COUNTER,
                               "loghaul_collector_output_retries_total", "output=\"kafka\"",
                               "Batches produced again after a failed delivery");
    o->poll = event_new(ctx->base, -1, EV_PERSIST, on_poll, o);
    o->retry = evtimer_new(ctx->base, on_retry, o);
    static const struct timeval every = {0, 50 * 1000};
    if (rc != 0 || !o->delivered || !o->redone || !o->poll || !o->retry ||
        event_add(o->poll, &every) != 0) {
        snprintf(err, errlen, "kafka output: out of memory");
        return LH_ENOMEM;
    }
    char why[512] = "";
    if (!(o->rk = new_producer(o->cfg, o, why, sizeof why))) {
        snprintf(err, errlen, "kafka output (line %d): %s", item->line, why);
        return LH_ECONFIG;
    }
    snprintf(o->dir, sizeof o->dir, "%s/outputs/kafka-%zu", ctx->data_dir, index);
    struct lh_chunkq_opts qo = {.dir = o->dir, .max_size = o->cfg->max_size,
                                .on_chunk = on_replay, .ud = o};
    if ((rc = lh_chunkq_open(&qo, &o->q, why, sizeof why)) != 0) {
        snprintf(err, errlen, "kafka output (line %d): spool: %s", item->line, why);
        return rc;
    }
    produce_more(o);
    return LH_OK;
}

static void kafka_destroy(void *state)
{
    struct out_kafka *o = state;
    if (!o)
        return;
    o->closing = true;
    if (o->rk) {
        /* What is queued gets a moment; the rest stays spooled for next time. */
        rd_kafka_flush(o->rk, 2000);
        rd_kafka_destroy(o->rk);
    }
    if (o->poll)
        event_free(o->poll);
    if (o->retry)
        event_free(o->retry);
    while (o->head) {
        struct kchunk *k = o->head;
        o->head = k->next;
        free(k);
    }
    lh_chunkq_close(o->q);
    msgpack_sbuffer_destroy(&o->text);
    free(o);
}

const struct lh_coll_output_ops lh_coll_out_kafka_ops = {
    .type = "kafka",
    .schema = &lh_coll_out_kafka_schema,
    .create = kafka_create,
    .write = kafka_write,
    .destroy = kafka_destroy,
};
