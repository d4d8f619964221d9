/* Small shared helpers: clocks, units, time formats, files. */
#ifndef LH_UTIL_H
#define LH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LH_NS_PER_SEC 1000000000LL

/* Wall clock in nanoseconds since the epoch. */
int64_t lh_now_ns(void);
/* Monotonic clock in milliseconds (for timeouts and backoff). */
int64_t lh_mono_ms(void);

/* "64KiB", "2MiB", "1GiB", "10MB", "512" (bytes). 0 or LH_EINVAL/LH_ETOOBIG. */
int lh_parse_size(const char *s, int64_t *bytes);
/* "200ms", "2s", "15m", "2h", "7d", "1.5s"; a bare number is seconds.
 * Result in milliseconds. 0, LH_EINVAL or LH_ETOOBIG. */
int lh_parse_duration(const char *s, int64_t *ms);

/* RFC 3339 with nanoseconds, UTC: "2026-11-24T06:48:32.123456789Z".
 * buf needs LH_TIME_STRLEN bytes. Returns buf. */
#define LH_TIME_STRLEN 32
char *lh_format_time(int64_t ns, char *buf);
/* Accepts RFC 3339 (any fraction, Z or +hh:mm offset) or unix seconds
 * (integer or fractional). 0 or LH_EINVAL. */
int lh_parse_time(const char *s, int64_t *ns);
/* The same forms for a bound of a time range (API and CLI from/to, query
 * terms): a well-formed time outside the nanosecond range
 * (LH_TIME_RANGE_TEXT) is clamped to its nearer end rather than refused. */
int lh_parse_time_clamp(const char *s, int64_t *ns);
#define LH_TIME_RANGE_TEXT "1677-09-21T00:12:43Z to 2262-04-11T23:47:16Z"

/* mkdir -p with mode 0750 for created directories. 0 or LH_EIO. */
int lh_mkdir_p(const char *path);
/* write(2) until all of data is written (EINTR retried). 0 or LH_EIO. */
int lh_write_all(int fd, const void *data, size_t len);
/* Writes data to path via a temporary file, fsync and rename, then fsyncs
 * the directory: after a crash the file is either old or new, whole. */
int lh_write_file_atomic(const char *path, const void *data, size_t len);
/* Reads a whole file (up to max bytes) into a malloc'd, NUL-terminated
 * buffer the caller frees. 0, LH_ENOENT, LH_ETOOBIG or LH_EIO. */
int lh_read_file(const char *path, size_t max, char **data, size_t *len);
int lh_fsync_dir(const char *dir);

/* Host name of this machine (never fails: "localhost" as a last resort). */
void lh_hostname(char *buf, size_t len);

/* Splits "host:port", "[v6]:port" into parts. host gets at most hostlen-1
 * chars. 0 or LH_EINVAL. */
int lh_split_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
