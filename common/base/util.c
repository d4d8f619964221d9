#include "common/base/util.h"
#include "common/base/err.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t lh_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * LH_NS_PER_SEC + ts.tv_nsec;
}

int64_t lh_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct unit {
    const char *name;
    double mult;
};

/* Parses "<number><unit>" against a unit table; an empty unit uses
 * bare_mult. The number may be fractional. */
static int parse_scaled(const char *s, const struct unit *units, double bare_mult,
                        double max, int64_t *out)
{
    if (!s)
        return LH_EINVAL;
    while (isspace((unsigned char)*s))
        s++;
    /* Plain decimal only: strtod alone would take "0x10", "1e3" and "inf". */
    size_t int_digits = strspn(s, "0123456789"), num_len = int_digits, frac_digits = 0;
    if (s[num_len] == '.') {
        frac_digits = strspn(s + num_len + 1, "0123456789");
        num_len += 1 + frac_digits;
    }
    if (int_digits + frac_digits == 0)
        return LH_EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s + num_len)
        return LH_EINVAL;
    if (errno == ERANGE)
        return LH_ETOOBIG;
    while (isspace((unsigned char)*end))
        end++;
    double mult = -1;
    if (*end == '\0') {
        mult = bare_mult;
    } else {
        for (const struct unit *u = units; u->name; u++) {
            if (strcasecmp(end, u->name) == 0) {
                mult = u->mult;
                break;
            }
        }
    }
    if (mult < 0)
        return LH_EINVAL;
    double r = v * mult;
    if (r > max)
        return LH_ETOOBIG;
    *out = (int64_t)(r + 0.5);
    return LH_OK;
}

int lh_parse_size(const char *s, int64_t *bytes)
{
    static const struct unit units[] = {
        {"b", 1},          {"k", 1024},        {"kb", 1000},     {"kib", 1024},
        {"m", 1048576.0},  {"mb", 1e6},        {"mib", 1048576.0}, {"g", 1073741824.0},
        {"gb", 1e9},       {"gib", 1073741824.0}, {"t", 1099511627776.0}, {"tb", 1e12},
        {"tib", 1099511627776.0}, {NULL, 0}};
    return parse_scaled(s, units, 1, 9e18, bytes);
}

int lh_parse_duration(const char *s, int64_t *ms)
{
    static const struct unit units[] = {{"ms", 1},         {"s", 1000},      {"m", 60000},
                                        {"h", 3600000},    {"d", 86400000},  {"w", 604800000},
                                        {NULL, 0}};
    return parse_scaled(s, units, 1000, 9e15, ms);
}

char *lh_format_time(int64_t ns, char *buf)
{
    int64_t sec = ns / LH_NS_PER_SEC;
    int64_t frac = ns % LH_NS_PER_SEC;
    if (frac < 0) {
        frac += LH_NS_PER_SEC;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    /* Years past 9999 do not fit RFC 3339; clamp rather than truncate. */
    int year = tm.tm_year + 1900;
    if (year > 9999)
        year = 9999;
    if (year < 0)
        year = 0;
    snprintf(buf, LH_TIME_STRLEN, "%04u-%02u-%02uT%02u:%02u:%02u.%09uZ", (unsigned)year % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
             (unsigned)frac % 1000000000u);
    return buf;
}

static int parse_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return LH_EINVAL;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return LH_OK;
}

/* Fraction digits after a '.' as nanoseconds (digits past 9 are dropped);
 * at least one digit is required. */
static int parse_fraction(const char **p, int64_t *frac)
{
    const char *s = *p + 1;
    int64_t scale = LH_NS_PER_SEC / 10;
    *frac = 0;
    if (!isdigit((unsigned char)*s))
        return LH_EINVAL;
    for (; isdigit((unsigned char)*s); s++, scale /= 10)
        *frac += (*s - '0') * scale;
    *p = s;
    return LH_OK;
}

/* sec * 1e9 + frac (0 <= frac < 1e9); LH_ETOOBIG past the int64 range. */
static int compose_ns(int64_t sec, int64_t frac, int64_t *ns)
{
    if (sec < 0 && frac > 0) {
        sec += 1;
        frac -= LH_NS_PER_SEC;
    }
    int64_t r;
    if (__builtin_mul_overflow(sec, LH_NS_PER_SEC, &r) || __builtin_add_overflow(r, frac, &r))
        return LH_ETOOBIG;
    *ns = r;
    return LH_OK;
}

/* Unix seconds; LH_ETOOBIG (with *ns the nearest end of the range) when
 * well formed but out of range. */
static int parse_unix(const char *s, int64_t *ns)
{
    bool neg = *s == '-';
    const char *p = s + neg;
    if (!isdigit((unsigned char)*p))
        return LH_EINVAL;
    char *end;
    errno = 0;
    long long sec = strtoll(p, &end, 10);
    if (errno && errno != ERANGE)
        return LH_EINVAL;
    bool huge = errno == ERANGE;
    const char *q = end;
    int64_t frac = 0, mag = 0;
    if (*q == '.' && parse_fraction(&q, &frac) != LH_OK)
        return LH_EINVAL;
    if (*q != '\0')
        return LH_EINVAL;
    if (huge || compose_ns(sec, frac, &mag) != LH_OK) {
        *ns = neg ? INT64_MIN : INT64_MAX;
        return LH_ETOOBIG;
    }
    *ns = neg ? -mag : mag;
    return LH_OK;
}

static int days_in_month(int y, int mo)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return mo == 2 && leap ? 29 : days[mo - 1];
}

/* lh_parse_time's reading; LH_ETOOBIG with *ns the nearest end of the
 * range for a well-formed time outside it. */
static int parse_time(const char *s, int64_t *ns)
{
    if (!s || !*s)
        return LH_EINVAL;
    if (!strchr(s, '-') || s[0] == '-')
        return parse_unix(s, ns);
    struct tm tm = {0};
    const char *p = s;
    int y, mo, d, h, mi, se;
    if (parse_digits(&p, 4, &y) || *p++ != '-' || parse_digits(&p, 2, &mo) || *p++ != '-' ||
        parse_digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return LH_EINVAL;
    p++;
    if (parse_digits(&p, 2, &h) || *p++ != ':' || parse_digits(&p, 2, &mi) || *p++ != ':' ||
        parse_digits(&p, 2, &se))
        return LH_EINVAL;
    int64_t frac = 0;
    if (*p == '.' && parse_fraction(&p, &frac) != LH_OK)
        return LH_EINVAL;
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (parse_digits(&p, 2, &oh) || *p++ != ':' || parse_digits(&p, 2, &om) || oh > 23 ||
            om > 59)
            return LH_EINVAL;
        offset = sign * (oh * 3600 + om * 60);
    } else {
        return LH_EINVAL;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || se > 60)
        return LH_EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    int64_t sec = (int64_t)timegm(&tm) - offset;
    if (compose_ns(sec, frac, ns) != LH_OK) {
        *ns = sec < 0 ? INT64_MIN : INT64_MAX;
        return LH_ETOOBIG;
    }
    return LH_OK;
}

int lh_parse_time(const char *s, int64_t *ns)
{
    int64_t v;
    if (parse_time(s, &v) != LH_OK)
        return LH_EINVAL;
    *ns = v;
    return LH_OK;
}

int lh_parse_time_clamp(const char *s, int64_t *ns)
{
    int64_t v;
    int rc = parse_time(s, &v);
    if (rc != LH_OK && rc != LH_ETOOBIG)
        return LH_EINVAL;
    *ns = v;
    return LH_OK;
}

int lh_mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof tmp)
        return LH_EINVAL;
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
            return LH_EIO;
        *p = '/';
    }
    if (mkdir(tmp, 0750) == 0)
        return LH_OK;
    struct stat st;
    if (errno != EEXIST || stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode))
        return LH_EIO;
    return LH_OK;
}

int lh_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return LH_EIO;
    int rc = fsync(fd) == 0 ? LH_OK : LH_EIO;
    close(fd);
    return rc;
}

int lh_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return LH_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return LH_OK;
}

int lh_write_file_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return LH_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return LH_EIO;
    int rc = lh_write_all(fd, data, len);
    if (rc == LH_OK && fsync(fd) != 0)
        rc = LH_EIO;
    close(fd);
    if (rc == LH_OK && rename(tmp, path) != 0)
        rc = LH_EIO;
    if (rc != LH_OK) {
        unlink(tmp);
        return rc;
    }
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    return lh_fsync_dir(dir);
}

int lh_read_file(const char *path, size_t max, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? LH_ENOENT : LH_EIO;
    /* The buffer has room for one byte past max: reading it means too big. */
    size_t limit = max < SIZE_MAX ? max + 1 : max;
    size_t cap = limit < 4096 ? limit : 4096, n = 0;
    char *buf = malloc(cap + 1);
    int rc = LH_OK;
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > max) {
            rc = LH_ETOOBIG;
            break;
        }
        if (n < cap)
            break;
        cap = cap * 2 > limit ? limit : cap * 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
        } else {
            buf = nb;
        }
    }
    if (!buf)
        rc = LH_ENOMEM;
    else if (ferror(f))
        rc = LH_EIO;
    fclose(f);
    if (rc != LH_OK) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    if (len)
        *len = n;
    return LH_OK;
}

void lh_hostname(char *buf, size_t len)
{
    if (gethostname(buf, len) != 0 || buf[0] == '\0')
        snprintf(buf, len, "localhost");
    buf[len - 1] = '\0';
}

int lh_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return LH_EINVAL;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        /* An IPv6 address needs brackets: "fe80::1:80" is ambiguous. */
        colon = strchr(s, ':');
        if (!colon || strchr(colon + 1, ':'))
            return LH_EINVAL;
        hl = (size_t)(colon - s);
    }
    if (hl >= hostlen)
        return LH_EINVAL;
    const char *digits = colon + 1;
    size_t nd = strspn(digits, "0123456789");
    if (nd == 0 || nd > 5 || digits[nd] != '\0')
        return LH_EINVAL;
    long p = strtol(digits, NULL, 10);
    if (p > 65535)
        return LH_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return LH_OK;
}
