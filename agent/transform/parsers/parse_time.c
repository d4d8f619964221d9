/* strptime, timegm and tm_gmtoff come from _GNU_SOURCE (set by the build). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/transform/parsers/parse.h"
#include "common/config/config.h"
#include "common/base/err.h"
#include "common/base/util.h"

static const struct {
    const char *name;
    enum lh_time_kind kind;
} named[] = {
    {"rfc3339", LH_TIME_RFC3339}, {"epoch", LH_TIME_EPOCH_S},  {"epoch_ms", LH_TIME_EPOCH_MS},
    {"epoch_us", LH_TIME_EPOCH_US}, {"epoch_ns", LH_TIME_EPOCH_NS},
};

int lh_time_fmt_init(struct lh_time_fmt *tf, const char *fmt, char *err, size_t errlen)
{
    memset(tf, 0, sizeof *tf);
    if (!fmt)
        return LH_OK;
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (strcmp(fmt, named[i].name) == 0) {
            tf->kind = named[i].kind;
            return LH_OK;
        }
    }
    const char *frac = strstr(fmt, "%L");
    size_t before = frac ? (size_t)(frac - fmt) : strlen(fmt);
    const char *rest = frac ? frac + 2 : "";
    if (!strchr(fmt, '%') || before >= LH_TIME_PATTERN_MAX || strlen(rest) >= LH_TIME_PATTERN_MAX ||
        (frac && strstr(rest, "%L"))) {
        snprintf(err, errlen,
                 "time_format '%s': expected rfc3339, epoch, epoch_ms, epoch_us, epoch_ns or a "
                 "strptime pattern (at most one %%L, under %d bytes)",
                 fmt, LH_TIME_PATTERN_MAX);
        return LH_EINVAL;
    }
    tf->kind = LH_TIME_STRPTIME;
    tf->fraction = frac != NULL;
    memcpy(tf->before, fmt, before);
    memcpy(tf->after, rest, strlen(rest) + 1);
    return LH_OK;
}

int lh_time_fmt_check(const char *fmt, char *why, size_t whylen)
{
    struct lh_time_fmt tf;
    int rc = lh_time_fmt_init(&tf, fmt, why, whylen);
    if (rc == 0 && tf.kind == LH_TIME_STRPTIME)
        rc = lh_cfg_check_time_pattern(fmt, why, whylen);
    return rc;
}

static const int64_t unit_ns[] = {
    [LH_TIME_RFC3339] = 1000000000, [LH_TIME_EPOCH_S] = 1000000000, [LH_TIME_EPOCH_MS] = 1000000,
    [LH_TIME_EPOCH_US] = 1000,      [LH_TIME_EPOCH_NS] = 1,         [LH_TIME_STRPTIME] = 1000000000,
};

/* Whole units below 2^63 ns, so the product cannot overflow. */
static int from_int(int64_t v, int64_t unit, int64_t *ns)
{
    if (v > INT64_MAX / unit || v < INT64_MIN / unit)
        return LH_EINVAL;
    *ns = v * unit;
    return LH_OK;
}

static int from_double(double v, int64_t unit, int64_t *ns)
{
    double x = v * (double)unit;
    if (!isfinite(x) || x >= 9.2e18 || x <= -9.2e18)
        return LH_EINVAL;
    *ns = llround(x);
    return LH_OK;
}

/* Digits of a fraction of a second: nanoseconds. */
static const char *fraction(const char *p, int64_t *frac)
{
    int64_t scale = 100000000;
    const char *start = p;
    *frac = 0;
    for (; isdigit((unsigned char)*p); p++) {
        *frac += (*p - '0') * scale;
        scale /= 10;
    }
    return p == start ? NULL : p;
}

/* Decimal, not through a double: "1795502912.25" is exact to the ns. */
static int parse_epoch(const char *s, int64_t unit, int64_t *ns)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno != 0 || !isdigit((unsigned char)end[-1]))
        return LH_EINVAL;
    int64_t frac = 0;
    if (*end == '.' && !(end = (char *)fraction(end + 1, &frac)))
        return LH_EINVAL;
    if (*end != '\0' || from_int(v, unit, ns) != 0)
        return LH_EINVAL;
    int64_t part = frac / (1000000000 / unit);
    *ns += s[0] == '-' ? -part : part;
    return LH_OK;
}

static int parse_pattern(const struct lh_time_fmt *tf, const char *s, int64_t *ns)
{
    struct tm tm = {0};
    int64_t frac = 0;
    const char *p = strptime(s, tf->before, &tm);
    if (p && tf->fraction) {
        p = fraction(p, &frac);
        if (p && tf->after[0])
            p = strptime(p, tf->after, &tm);
    }
    if (!p || *p != '\0')
        return LH_EINVAL;
    /* strptime fills tm_gmtoff only for %z; otherwise it stays 0: UTC. */
    long gmtoff = tm.tm_gmtoff;
    errno = 0;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 && errno == EOVERFLOW)
        return LH_EINVAL;
    int64_t sec;
    if (from_int((int64_t)t - gmtoff, 1000000000, &sec) != 0)
        return LH_EINVAL;
    *ns = sec + frac;
    return LH_OK;
}

int lh_time_parse(const struct lh_time_fmt *tf, const char *s, size_t n, int64_t *ns)
{
    char buf[256];
    if (n == 0 || n >= sizeof buf || memchr(s, '\0', n))
        return LH_EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    switch (tf->kind) {
    case LH_TIME_RFC3339:
        return lh_parse_time(buf, ns);
    case LH_TIME_STRPTIME:
        return parse_pattern(tf, buf, ns);
    default:
        return parse_epoch(buf, unit_ns[tf->kind], ns);
    }
}

int lh_time_from_field(const struct lh_time_fmt *tf, const struct lh_recbuilder *rb, size_t idx,
                       int64_t *ns)
{
    const struct lh_rb_val *v = &rb->f[idx].v;
    int64_t unit = unit_ns[tf->kind];
    switch (v->kind) {
    case LH_RBV_INT:
        return from_int(v->num.i, unit, ns);
    case LH_RBV_UINT:
        return v->num.u > INT64_MAX ? LH_EINVAL : from_int((int64_t)v->num.u, unit, ns);
    case LH_RBV_DOUBLE:
        return from_double(v->num.d, unit, ns);
    case LH_RBV_STR:
        return lh_time_parse(tf, v->p, v->n, ns);
    case LH_RBV_SCRATCH:
        return lh_time_parse(tf, rb->scratch.data + v->off, v->n, ns);
    default:
        return LH_EINVAL;
    }
}
