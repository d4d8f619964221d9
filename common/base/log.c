#include "common/base/log.h"
#include "common/base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

_Atomic int lh_log_level_current = LH_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void lh_log_set_level(enum lh_log_level level)
{
    atomic_store_explicit(&lh_log_level_current, (int)level, memory_order_relaxed);
}

int lh_log_parse_level(const char *name, enum lh_log_level *out)
{
    for (int i = 0; i <= LH_LOG_DEBUG; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum lh_log_level)i;
            return LH_OK;
        }
    }
    return LH_EINVAL;
}

void lh_log_write(enum lh_log_level level, const char *component, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], component);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One fputs per line keeps lines whole when threads log at once. */
    size_t len = strlen(line);
    if (len + 1 < sizeof line) {
        line[len] = '\n';
        line[len + 1] = '\0';
    }
    fputs(line, stderr);
}
