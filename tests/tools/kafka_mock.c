/* A Kafka broker for tests: librdkafka's own mock cluster, listening on
 * loopback, plus a consumer of the topics named on the command line.
 *
 *   lh-kafka-mock COUNT TIMEOUT_S TOPIC...
 *
 * Prints "bootstrap=HOST:PORT" once the cluster is up, then every message
 * consumed as "TOPIC<TAB>VALUE", and exits 0 once COUNT messages were seen
 * (1 after TIMEOUT_S seconds without them). Not part of the product. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static rd_kafka_t *consumer(const char *bootstraps, char **topics, int n)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof err) ||
        rd_kafka_conf_set(conf, "group.id", "lh-test", err, sizeof err)) {
        fprintf(stderr, "consumer config: %s\n", err);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "consumer: %s\n", err);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(parts, topics[i], 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    return rk;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s COUNT TIMEOUT_S TOPIC...\n", argv[0]);
        return 2;
    }
    long want = atol(argv[1]), got = 0;
    time_t until = time(NULL) + atol(argv[2]);
    char err[512];
    rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof err);
    rd_kafka_mock_cluster_t *mc = host ? rd_kafka_mock_cluster_new(host, 1) : NULL;
    if (!mc) {
        fprintf(stderr, "mock cluster: %s\n", host ? "cannot start" : err);
        return 2;
    }
    for (int i = 3; i < argc; i++)
        rd_kafka_mock_topic_create(mc, argv[i], 1, 1);
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    printf("bootstrap=%s\n", bootstraps);
    fflush(stdout);
    rd_kafka_t *rk = consumer(bootstraps, argv + 3, argc - 3);
    if (!rk)
        return 2;
    while (got < want && time(NULL) < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (!m->err) {
            printf("%s\t%.*s\n", rd_kafka_topic_name(m->rkt), (int)m->len, (const char *)m->payload);
            fflush(stdout);
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(host);
    return got >= want ? 0 : 1;
}
