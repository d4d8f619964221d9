/* Internal logging to stderr: "TIME LEVEL [component] message".
 *
 * The macros test the level before formatting anything, so a disabled
 * debug line costs one comparison; LH_DEBUG compiles out with NDEBUG_LOG. */
#ifndef LH_LOG_H
#define LH_LOG_H

#include <stdatomic.h>

enum lh_log_level { LH_LOG_ERROR = 0, LH_LOG_WARN, LH_LOG_INFO, LH_LOG_DEBUG };

/* Read by every thread that logs, set from the main thread (a reload):
 * atomic, relaxed (a line logged at the old level just after the change is
 * harmless). Use lh_log_set_level() to change it. */
extern _Atomic int lh_log_level_current;

void lh_log_set_level(enum lh_log_level level);
/* Parses "error|warn|info|debug"; returns 0 or LH_EINVAL. */
int lh_log_parse_level(const char *name, enum lh_log_level *out);
void lh_log_write(enum lh_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LH_LOG_AT(lvl, comp, ...)                                                 \
    do {                                                                          \
        if ((int)(lvl) <= atomic_load_explicit(&lh_log_level_current,            \
                                               memory_order_relaxed))             \
            lh_log_write((lvl), (comp), __VA_ARGS__);                             \
    } while (0)

#define LH_ERROR(comp, ...) LH_LOG_AT(LH_LOG_ERROR, comp, __VA_ARGS__)
#define LH_WARN(comp, ...) LH_LOG_AT(LH_LOG_WARN, comp, __VA_ARGS__)
#define LH_INFO(comp, ...) LH_LOG_AT(LH_LOG_INFO, comp, __VA_ARGS__)
#ifdef NDEBUG_LOG
#define LH_DEBUG(comp, ...) do { } while (0)
#else
#define LH_DEBUG(comp, ...) LH_LOG_AT(LH_LOG_DEBUG, comp, __VA_ARGS__)
#endif

#endif
