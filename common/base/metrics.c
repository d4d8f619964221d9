#include "common/base/metrics.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lh_metric {
    struct lh_metric *next;
    enum lh_metric_kind kind;
    char *name;
    char *labels; /* NULL when none */
    char *help;
    _Atomic int64_t value;
};

struct lh_metrics {
    struct lh_metric *head, *tail;
};

struct lh_metrics *lh_metrics_new(void)
{
    return calloc(1, sizeof(struct lh_metrics));
}

static void metric_free(struct lh_metric *c)
{
    free(c->name);
    free(c->labels);
    free(c->help);
    free(c);
}

void lh_metrics_free(struct lh_metrics *m)
{
    if (!m)
        return;
    for (struct lh_metric *c = m->head, *n; c; c = n) {
        n = c->next;
        metric_free(c);
    }
    free(m);
}

static bool same_labels(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

struct lh_metric *lh_metrics_get(struct lh_metrics *m, enum lh_metric_kind kind,
                                 const char *name, const char *labels, const char *help)
{
    for (struct lh_metric *c = m->head; c; c = c->next)
        if (strcmp(c->name, name) == 0 && same_labels(c->labels, labels))
            return c;
    struct lh_metric *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->kind = kind;
    c->name = strdup(name);
    c->labels = labels ? strdup(labels) : NULL;
    c->help = strdup(help ? help : "");
    if (!c->name || !c->help || (labels && !c->labels)) {
        metric_free(c);
        return NULL;
    }
    /* Keep same-named metrics adjacent so HELP/TYPE print once per name. */
    struct lh_metric *after = NULL;
    for (struct lh_metric *p = m->head; p; p = p->next)
        if (strcmp(p->name, name) == 0)
            after = p;
    if (after) {
        c->next = after->next;
        after->next = c;
        if (m->tail == after)
            m->tail = c;
    } else if (m->tail) {
        m->tail->next = c;
        m->tail = c;
    } else {
        m->head = m->tail = c;
    }
    return c;
}

void lh_metric_add(struct lh_metric *c, int64_t delta)
{
    if (c)
        atomic_fetch_add_explicit(&c->value, delta, memory_order_relaxed);
}

void lh_metric_set(struct lh_metric *g, int64_t value)
{
    if (g)
        atomic_store_explicit(&g->value, value, memory_order_relaxed);
}

int64_t lh_metric_value(const struct lh_metric *c)
{
    return c ? atomic_load_explicit(&c->value, memory_order_relaxed) : 0;
}

char *lh_metrics_render(struct lh_metrics *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    const char *prev = "";
    for (struct lh_metric *c = m->head; c; c = c->next) {
        if (strcmp(prev, c->name) != 0) {
            fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", c->name, c->help, c->name,
                    c->kind == LH_METRIC_COUNTER ? "counter" : "gauge");
            prev = c->name;
        }
        if (c->labels)
            fprintf(f, "%s{%s} %lld\n", c->name, c->labels, (long long)lh_metric_value(c));
        else
            fprintf(f, "%s %lld\n", c->name, (long long)lh_metric_value(c));
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
