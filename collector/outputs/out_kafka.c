/* The collector's `kafka` output: accepted batches whose tag matches go to
 * a Kafka topic (topic may hold ${tag}), one message per record, the
 * record's JSON line (what `loghaul search` prints) as the value.
 *
 * As with the other network outputs, a write first makes the batch durable
 * in the output's spool (spool.h, under data_dir/outputs/kafka-N), which
 * hands the chunks over in order, up to 8 at a time, to be produced through
 * librdkafka (which batches, retries and orders per partition itself); a
 * chunk is consumed once every message of it has a successful delivery
 * report. A chunk with a failed report is produced again after a backoff:
 * delivery to Kafka is at least once. Delivery reports are served from a timer on the
 * loop (rd_kafka_poll with no wait). */
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/outputs/output.h"
#include "collector/outputs/spool.h"
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

/* A chunk being produced (its payload is the topic, a newline, then one
 * JSON line per record), until every message of it has a report. */
struct kslot {
    struct lh_coll_spool_item *it; /* NULL: free */
    size_t outstanding;            /* messages without a delivery report yet */
    bool failed;
};

struct out_kafka {
    const struct kafka_cfg *cfg;
    rd_kafka_t *rk;
    struct lh_coll_spool *sp;
    struct kslot slots[IN_FLIGHT_CHUNKS];
    bool closing;               /* reports served by the final flush only count */
    struct event *poll;
};

/* Every message of s has a report: the chunk is consumed, or produced
 * again after the spool's backoff. */
static void slot_reported(struct out_kafka *o, struct kslot *s)
{
    struct lh_coll_spool_item *it = s->it;
    s->it = NULL;
    lh_coll_spool_answer(o->sp, it, s->failed ? LH_FLUSH_RETRY : LH_FLUSH_OK);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    struct out_kafka *o = opaque;
    struct kslot *s = msg->_private;
    if (msg->err) {
        LH_WARN(KAFKA_LOG, "delivery to %s failed: %s (the batch is produced again)",
                rd_kafka_topic_name(msg->rkt), rd_kafka_err2str(msg->err));
        s->failed = true;
    }
    if (--s->outstanding == 0)
        slot_reported(o, s);
}

static struct kslot *free_slot(struct out_kafka *o)
{
    for (size_t i = 0; i < IN_FLIGHT_CHUNKS; i++)
        if (!o->slots[i].it)
            return &o->slots[i];
    return NULL;
}

/* Produces every line of the chunk. When librdkafka refuses one (its queue
 * full), the chunk fails once the lines already queued are reported, and
 * is produced again from its start: those lines go twice, at least once. */
static void produce(struct out_kafka *o, struct kslot *s, const char *topic, char *p,
                    const char *end)
{
    for (char *e; p < end; p = e + 1) {
        e = memchr(p, '\n', (size_t)(end - p));
        e = e ? e : (char *)end;
        s->outstanding++;
        rd_kafka_resp_err_t err = rd_kafka_producev(
            o->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(p, (size_t)(e - p)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(s), RD_KAFKA_V_END);
        if (err) {
            s->outstanding--;
            s->failed = true;
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                LH_WARN(KAFKA_LOG, "producing to %s: %s", topic, rd_kafka_err2str(err));
            return;
        }
    }
}

static bool kafka_ready(void *ud)
{
    struct out_kafka *o = ud;
    return !o->closing && free_slot(o);
}

static int kafka_deliver(void *ud, struct lh_coll_spool_item *it, char *data, size_t len)
{
    struct out_kafka *o = ud;
    struct kslot *s = free_slot(o); /* kafka_ready said there is one */
    char *nl = memchr(data, '\n', len);
    if (!nl) {
        free(data);
        LH_ERROR(KAFKA_LOG, "a spooled chunk has no topic line: %u records dropped",
                 it->chunk->n_records);
        lh_coll_spool_answer(o->sp, it, LH_FLUSH_FAIL);
        return LH_OK;
    }
    *nl = '\0';
    *s = (struct kslot){.it = it, .outstanding = 1}; /* held until every line is queued */
    produce(o, s, data, nl + 1, data + len);
    free(data);
    if (--s->outstanding == 0)
        slot_reported(o, s);
    return LH_OK;
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    struct out_kafka *o = arg;
    rd_kafka_poll(o->rk, 0);
}

/* The spool payload: topic line, then the batch as NDJSON. */
static int kafka_render(void *ud, const struct lh_coll_batch *b, const char *id,
                        msgpack_sbuffer *out)
{
    struct out_kafka *o = ud;
    int rc = lh_coll_batch_ndjson(b, NULL, out);
    const char *t = strstr(o->cfg->topic, "${tag}");
    char topic[512];
    int n = t ? snprintf(topic, sizeof topic, "%.*s%s%s", (int)(t - o->cfg->topic),
                         o->cfg->topic, b->tag, t + 6)
              : snprintf(topic, sizeof topic, "%s", o->cfg->topic);
    if (rc == 0 && (n <= 0 || n >= (int)sizeof topic || strchr(topic, '\n')))
        rc = LH_EINVAL;
    if (rc != 0)
        return rc;
    size_t body = out->size;
    if (msgpack_sbuffer_write(out, topic, (size_t)n + 1) != 0)
        return LH_ENOMEM;
    memmove(out->data + n + 1, out->data, body);
    memcpy(out->data, topic, (size_t)n);
    out->data[n] = '\n';
    return LH_OK;
}

static int kafka_write(void *state, const struct lh_coll_batch *b)
{
    return lh_coll_spool_write(((struct out_kafka *)state)->sp, b);
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

static int open_spool(struct out_kafka *o, const struct lh_coll_output_ctx *ctx, size_t index,
                      char *err, size_t errlen)
{
    struct lh_coll_spool_opts so = {.type = "kafka", .max_size = o->cfg->max_size,
                                    .max_in_flight = IN_FLIGHT_CHUNKS,
                                    .backoff_min_ms = BACKOFF_MS, .backoff_max_ms = BACKOFF_MS,
                                    .match = o->cfg->match, .render = kafka_render,
                                    .deliver = kafka_deliver, .ready = kafka_ready, .ud = o};
    return lh_coll_spool_open(ctx, index, o->cfg->item.line, &so, &o->sp, err, errlen);
}

static int kafka_create(const struct lh_cfg_item *item, const struct lh_coll_output_ctx *ctx,
                        size_t index, void **state, char *err, size_t errlen)
{
    struct out_kafka *o = calloc(1, sizeof *o);
    if (!o)
        return LH_ENOMEM;
    *state = o;
    o->cfg = (const struct kafka_cfg *)item;
    o->poll = event_new(ctx->base, -1, EV_PERSIST, on_poll, o);
    static const struct timeval every = {0, 50 * 1000};
    if (!o->poll || event_add(o->poll, &every) != 0) {
        snprintf(err, errlen, "kafka output: out of memory");
        return LH_ENOMEM;
    }
    char why[512] = "";
    if (!(o->rk = new_producer(o->cfg, o, why, sizeof why))) {
        snprintf(err, errlen, "kafka output (line %d): %s", item->line, why);
        return LH_ECONFIG;
    }
    int rc = open_spool(o, ctx, index, err, errlen);
    if (rc != 0)
        return rc;
    lh_coll_spool_kick(o->sp);
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
    lh_coll_spool_close(o->sp);
    free(o);
}

const struct lh_coll_output_ops lh_coll_out_kafka_ops = {
    .type = "kafka",
    .schema = &lh_coll_out_kafka_schema,
    .create = kafka_create,
    .write = kafka_write,
    .destroy = kafka_destroy,
};
