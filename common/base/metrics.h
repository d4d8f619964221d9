/* Prometheus metrics: a registry of counters and gauges rendered as text.
 *
 * Metrics are registered once at start-up (not thread safe) and updated from
 * any thread afterwards (atomic). The registry owns every metric; pointers
 * stay valid until lh_metrics_free(). */
#ifndef LH_METRICS_H
#define LH_METRICS_H

#include <stdint.h>

struct lh_metrics;
struct lh_metric;

enum lh_metric_kind { LH_METRIC_COUNTER, LH_METRIC_GAUGE };

struct lh_metrics *lh_metrics_new(void);
void lh_metrics_free(struct lh_metrics *m);

/* Registers name{labels} (labels like `input="nginx"`, or NULL). Asking for
 * the same name and labels again returns the same metric. NULL on OOM. */
struct lh_metric *lh_metrics_get(struct lh_metrics *m, enum lh_metric_kind kind,
                                 const char *name, const char *labels, const char *help);

void lh_metric_add(struct lh_metric *c, int64_t delta);
void lh_metric_set(struct lh_metric *g, int64_t value);
int64_t lh_metric_value(const struct lh_metric *c);

/* Prometheus text exposition (HELP/TYPE once per name). malloc'd; caller
 * frees. NULL on OOM. */
char *lh_metrics_render(struct lh_metrics *m);

#endif
