/* Syslog message parsers: RFC 5424 and RFC 3164 ("BSD syslog"), and
 * `auto`, which picks one per message. Pure functions over one complete
 * message (framing is syslog_frame.h): no I/O, no allocation. The result
 * is a set of slices into the caller's bytes, valid while they are.
 *
 * Bounds: at most LH_SYSLOG_MAX_SD structured-data elements and
 * LH_SYSLOG_MAX_PARAMS parameters per message; a message with more does
 * not parse as RFC 5424. */
#ifndef LH_SYSLOG_H
#define LH_SYSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LH_SYSLOG_MAX_SD 32
#define LH_SYSLOG_MAX_PARAMS 128

enum lh_syslog_format { LH_SYSLOG_AUTO, LH_SYSLOG_RFC3164, LH_SYSLOG_RFC5424 };
extern const char *const lh_syslog_format_names[]; /* "auto", "rfc3164", "rfc5424" */

/* A piece of the message; p NULL (n 0) when absent or NILVALUE "-". */
struct lh_syslog_str {
    const char *p;
    size_t n;
};

struct lh_syslog_param {
    struct lh_syslog_str name;
    struct lh_syslog_str value;      /* as sent: escapes still in (lh_syslog_unescape) */
};

struct lh_syslog_sd {
    struct lh_syslog_str id;
    size_t first, n;                 /* its params: params[first .. first+n) */
};

struct lh_syslog_msg {
    enum lh_syslog_format format;    /* the format that parsed */
    int facility, severity;          /* 0..23 and 0..7 */
    bool has_time;
    int64_t ns;                      /* UTC nanoseconds, when has_time */
    struct lh_syslog_str hostname, appname, procid, msgid;
    struct lh_syslog_str message;    /* MSG (without a leading UTF-8 BOM) */
    struct lh_syslog_sd sd[LH_SYSLOG_MAX_SD];
    size_t n_sd;
    struct lh_syslog_param params[LH_SYSLOG_MAX_PARAMS];
    size_t n_params;
};

/* Parses one message (no trailing newline). now_ns supplies what RFC 3164
 * timestamps leave out (the year; "Mmm dd hh:mm:ss" is read as local
 * time, like the senders write it). 0, or LH_EINVAL when the message fits
 * none of the formats allowed (m is then undefined). In auto mode a
 * message starting "<PRI>1 " is RFC 5424; one that fails as such is tried
 * as RFC 3164, which takes anything after a valid PRI. */
int lh_syslog_parse(const char *p, size_t n, enum lh_syslog_format fmt, int64_t now_ns,
                    struct lh_syslog_msg *m);

/* RFC 5424 keyword names ("local3", "err"); "unknown" out of range. */
const char *lh_syslog_facility_name(int facility);
const char *lh_syslog_severity_name(int severity);

/* PARAM-VALUE escapes \" \\ \] resolved into out (room for n bytes); any
 * other backslash stays. Returns the length written. */
size_t lh_syslog_unescape(const char *p, size_t n, char *out);

/* Parses an RFC 3339 timestamp "YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm)"
 * (up to 9 fraction digits) at the start of p[0..n). Returns the bytes
 * used, 0 when it is not one. */
size_t lh_syslog_rfc3339(const char *p, size_t n, int64_t *ns);

#endif
