#include "common/codec/syslog.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "common/base/err.h"

/* RFC 5424 section 6.2 field limits. */
#define MAX_HOSTNAME 255
#define MAX_APPNAME 48
#define MAX_PROCID 128
#define MAX_MSGID 32
#define MAX_SDNAME 32
/* A 3164 sender that claims a year further ahead than this is in last year. */
#define FUTURE_SLACK_S (31 * 86400)

const char *const lh_syslog_format_names[] = {"auto", "rfc3164", "rfc5424", NULL};

static const char *const facilities[] = {
    "kern",   "user",   "mail",   "daemon", "auth",     "syslog",   "lpr",
    "news",   "uucp",   "cron",   "authpriv", "ftp",    "ntp",      "security",
    "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
};

static const char *const severities[] = {"emerg",   "alert",  "crit", "err",
                                         "warning", "notice", "info", "debug"};

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

const char *lh_syslog_facility_name(int facility)
{
    return facility >= 0 && facility < 24 ? facilities[facility] : "unknown";
}

const char *lh_syslog_severity_name(int severity)
{
    return severity >= 0 && severity < 8 ? severities[severity] : "unknown";
}

/* A cursor over the message. */
struct cur {
    const char *p;
    size_t n, i;
};

static bool at(const struct cur *c, char ch)
{
    return c->i < c->n && c->p[c->i] == ch;
}

static bool eat(struct cur *c, char ch)
{
    if (!at(c, ch))
        return false;
    c->i++;
    return true;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Exactly k digits at p (n available) into *v. */
static bool digits(const char *p, size_t n, size_t k, int *v)
{
    if (n < k)
        return false;
    int x = 0;
    for (size_t j = 0; j < k; j++) {
        if (!is_digit(p[j]))
            return false;
        x = x * 10 + (p[j] - '0');
    }
    *v = x;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so UTC timestamps need no time zone lookups. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Seconds + fraction as nanoseconds, false outside what int64 holds
 * (years before 1678 or after 2261). */
static bool to_ns(int64_t secs, int64_t frac, int64_t *ns)
{
    if (secs >= INT64_MAX / 1000000000 || secs <= INT64_MIN / 1000000000)
        return false;
    *ns = secs * 1000000000 + frac;
    return true;
}

static bool time_ok(int h, int mi, int s)
{
    return h <= 23 && mi <= 59 && s <= 60;
}

/* ".ddd" up to 9 digits (more are read and ignored) into nanoseconds. */
static size_t fraction(const char *p, size_t n, int64_t *ns)
{
    size_t i = 1;
    int64_t v = 0, scale = 100000000;
    if (n < 2 || p[0] != '.' || !is_digit(p[1]))
        return 0;
    for (; i < n && is_digit(p[i]); i++, scale /= 10)
        if (scale > 0)
            v += (p[i] - '0') * scale;
    *ns = v;
    return i;
}

size_t lh_syslog_rfc3339(const char *p, size_t n, int64_t *ns)
{
    int y, mo, d, h, mi, s, oh = 0, om = 0;
    if (n < 20 || !digits(p, n, 4, &y) || p[4] != '-' || !digits(p + 5, 2, 2, &mo) ||
        p[7] != '-' || !digits(p + 8, 2, 2, &d) || (p[10] != 'T' && p[10] != 't') ||
        !digits(p + 11, 2, 2, &h) || p[13] != ':' || !digits(p + 14, 2, 2, &mi) ||
        p[16] != ':' || !digits(p + 17, 2, 2, &s))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || !time_ok(h, mi, s))
        return 0;
    size_t i = 19;
    int64_t frac = 0;
    i += fraction(p + i, n - i, &frac);
    int sign = 0;
    if (i < n && (p[i] == 'Z' || p[i] == 'z')) {
        i++;
    } else if (i < n && (p[i] == '+' || p[i] == '-')) {
        sign = p[i] == '+' ? 1 : -1;
        if (n - i < 6 || !digits(p + i + 1, 2, 2, &oh) || p[i + 3] != ':' ||
            !digits(p + i + 4, 2, 2, &om) || oh > 23 || om > 59)
            return 0;
        i += 6;
    } else {
        return 0;
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    secs -= sign * (oh * 3600 + om * 60);
    return to_ns(secs, frac, ns) ? i : 0;
}

/* "<PRI>" with PRI 0..191. */
static bool pri(struct cur *c, struct lh_syslog_msg *m)
{
    int v = 0;
    size_t k = 0;
    if (!eat(c, '<'))
        return false;
    while (k < 3 && c->i < c->n && is_digit(c->p[c->i])) {
        v = v * 10 + (c->p[c->i++] - '0');
        k++;
    }
    if (k == 0 || v > 191 || !eat(c, '>'))
        return false;
    m->facility = v / 8;
    m->severity = v % 8;
    return true;
}

/* ---- RFC 5424 ----------------------------------------------------------- */

/* A header field: 1..max printable ASCII, "-" for NILVALUE, then SP. */
static bool field(struct cur *c, size_t max, struct lh_syslog_str *out)
{
    size_t start = c->i;
    while (c->i < c->n && c->p[c->i] > 32 && c->p[c->i] < 127)
        c->i++;
    size_t len = c->i - start;
    if (len == 0 || len > max || !eat(c, ' '))
        return false;
    if (len == 1 && c->p[start] == '-')
        *out = (struct lh_syslog_str){NULL, 0};
    else
        *out = (struct lh_syslog_str){c->p + start, len};
    return true;
}

static bool sd_name_char(char ch)
{
    return ch > 32 && ch < 127 && ch != '=' && ch != ']' && ch != '"';
}

static bool sd_name(struct cur *c, struct lh_syslog_str *out)
{
    size_t start = c->i;
    while (c->i < c->n && sd_name_char(c->p[c->i]) && c->i - start < MAX_SDNAME)
        c->i++;
    *out = (struct lh_syslog_str){c->p + start, c->i - start};
    return out->n > 0;
}

/* PARAM-VALUE between quotes; escapes are kept for lh_syslog_unescape. */
static bool sd_value(struct cur *c, struct lh_syslog_str *out)
{
    if (!eat(c, '"'))
        return false;
    size_t start = c->i;
    while (c->i < c->n && c->p[c->i] != '"')
        c->i += c->p[c->i] == '\\' && c->i + 1 < c->n ? 2 : 1;
    if (c->i >= c->n)
        return false;
    *out = (struct lh_syslog_str){c->p + start, c->i - start};
    c->i++;
    return true;
}

static bool sd_element(struct cur *c, struct lh_syslog_msg *m)
{
    if (m->n_sd == LH_SYSLOG_MAX_SD || !eat(c, '['))
        return false;
    struct lh_syslog_sd *e = &m->sd[m->n_sd++];
    e->first = m->n_params;
    e->n = 0;
    if (!sd_name(c, &e->id))
        return false;
    while (eat(c, ' ')) {
        if (m->n_params == LH_SYSLOG_MAX_PARAMS)
            return false;
        struct lh_syslog_param *pa = &m->params[m->n_params];
        if (!sd_name(c, &pa->name) || !eat(c, '=') || !sd_value(c, &pa->value))
            return false;
        m->n_params++;
        e->n++;
    }
    return eat(c, ']');
}

static bool structured_data(struct cur *c, struct lh_syslog_msg *m)
{
    if (at(c, '-')) {
        c->i++;
        return true;
    }
    if (!at(c, '['))
        return false;
    while (at(c, '['))
        if (!sd_element(c, m))
            return false;
    return true;
}

static bool parse_5424(struct cur *c, struct lh_syslog_msg *m)
{
    if (!eat(c, '1') || !eat(c, ' '))
        return false;
    if (at(c, '-')) {
        c->i++;
    } else {
        size_t k = lh_syslog_rfc3339(c->p + c->i, c->n - c->i, &m->ns);
        if (k == 0)
            return false;
        c->i += k;
        m->has_time = true;
    }
    if (!eat(c, ' ') || !field(c, MAX_HOSTNAME, &m->hostname) ||
        !field(c, MAX_APPNAME, &m->appname) || !field(c, MAX_PROCID, &m->procid) ||
        !field(c, MAX_MSGID, &m->msgid) || !structured_data(c, m))
        return false;
    m->format = LH_SYSLOG_RFC5424;
    if (c->i == c->n)
        return true;
    if (!eat(c, ' '))
        return false;
    size_t start = c->i;
    if (c->n - start >= 3 && memcmp(c->p + start, "\xEF\xBB\xBF", 3) == 0)
        start += 3;
    if (start < c->n)
        m->message = (struct lh_syslog_str){c->p + start, c->n - start};
    return true;
}

/* ---- RFC 3164 ----------------------------------------------------------- */

static int month_index(const char *p)
{
    for (int i = 0; i < 12; i++)
        if (memcmp(p, months[i], 3) == 0)
            return i;
    return -1;
}

/* The year a "Mmm dd" without one means: this year, unless that is well
 * in the future (a December message read in January). */
static time_t local_guess(struct tm *tm, int64_t now_ns)
{
    time_t now = (time_t)(now_ns / 1000000000);
    struct tm nt;
    localtime_r(&now, &nt);
    tm->tm_year = nt.tm_year;
    tm->tm_isdst = -1;
    struct tm copy = *tm;
    time_t t = mktime(&copy);
    if (t > now + FUTURE_SLACK_S) {
        tm->tm_year--;
        copy = *tm;
        t = mktime(&copy);
    }
    return t;
}

/* "Mmm dd hh:mm:ss", "Mmm  d hh:mm:ss", "Mmm dd yyyy hh:mm:ss", each with
 * an optional ".frac". Local time. */
static size_t bsd_time(const char *p, size_t n, int64_t now_ns, int64_t *ns)
{
    int day, year = -1, h, mi, s;
    if (n < 15 || p[3] != ' ')
        return 0;
    int mon = month_index(p);
    size_t i = 4;
    if (mon < 0)
        return 0;
    if (p[i] == ' ')
        i++;
    if (digits(p + i, n - i, 2, &day))
        i += 2;
    else if (digits(p + i, n - i, 1, &day))
        i += 1;
    else
        return 0;
    if (i >= n || p[i++] != ' ')
        return 0;
    if (n - i >= 5 && digits(p + i, 4, 4, &year) && p[i + 4] == ' ')
        i += 5;
    if (n - i < 8 || !digits(p + i, 2, 2, &h) || p[i + 2] != ':' ||
        !digits(p + i + 3, 2, 2, &mi) || p[i + 5] != ':' || !digits(p + i + 6, 2, 2, &s))
        return 0;
    if (day < 1 || day > 31 || !time_ok(h, mi, s))
        return 0;
    i += 8;
    int64_t frac = 0;
    i += fraction(p + i, n - i, &frac);
    struct tm tm = {.tm_mon = mon, .tm_mday = day, .tm_hour = h, .tm_min = mi, .tm_sec = s};
    time_t t;
    if (year >= 0) {
        tm.tm_year = year - 1900;
        tm.tm_isdst = -1;
        t = mktime(&tm);
    } else {
        t = local_guess(&tm, now_ns);
    }
    return t != (time_t)-1 && to_ns((int64_t)t, frac, ns) ? i : 0;
}

static size_t token_len(const struct cur *c)
{
    size_t j = c->i;
    while (j < c->n && c->p[j] != ' ')
        j++;
    return j - c->i;
}

/* TAG[PID]: or TAG: followed by an optional space, or TAG[PID] and a
 * space. False (c unchanged) when the text does not start that way. */
static bool tag(struct cur *c, struct lh_syslog_msg *m)
{
    size_t i = c->i, start = i;
    while (i < c->n && c->p[i] > 32 && c->p[i] < 127 && c->p[i] != '[' && c->p[i] != ':' &&
           i - start < MAX_APPNAME)
        i++;
    if (i == start || i >= c->n)
        return false;
    struct lh_syslog_str app = {c->p + start, i - start}, pid = {NULL, 0};
    if (c->p[i] == '[') {
        size_t ps = ++i;
        while (i < c->n && c->p[i] != ']' && c->p[i] > 32 && i - ps < MAX_PROCID)
            i++;
        if (i >= c->n || c->p[i] != ']' || i == ps)
            return false;
        pid = (struct lh_syslog_str){c->p + ps, i - ps};
        i++;
    }
    /* rsyslog forwards RFC 5424 messages in 3164 form as "app[pid] msg". */
    if (pid.p && i < c->n && c->p[i] == ' ') {
        i++;
    } else {
        if (i >= c->n || c->p[i] != ':')
            return false;
        i++;
        if (i < c->n && c->p[i] == ' ')
            i++;
    }
    m->appname = app;
    m->procid = pid;
    c->i = i;
    return true;
}

static bool looks_like_tag(const struct cur *c, size_t len)
{
    const char *t = c->p + c->i;
    return len > 0 && (t[len - 1] == ':' || memchr(t, '[', len) != NULL);
}

/* Anything after a valid PRI is a 3164 message: the parts it does not
 * recognise stay in the message. */
static void parse_3164(struct cur *c, int64_t now_ns, struct lh_syslog_msg *m)
{
    const char *p = c->p + c->i;
    size_t n = c->n - c->i, k = lh_syslog_rfc3339(p, n, &m->ns);
    if (k == 0)
        k = bsd_time(p, n, now_ns, &m->ns);
    if (k > 0 && k < n && p[k] == ' ') {
        m->has_time = true;
        c->i += k + 1;
        size_t len = token_len(c);
        if (len > 0 && len <= MAX_HOSTNAME && !looks_like_tag(c, len)) {
            m->hostname = (struct lh_syslog_str){c->p + c->i, len};
            c->i += len;
            while (eat(c, ' '))
                ;
        }
    }
    tag(c, m);
    if (c->i < c->n)
        m->message = (struct lh_syslog_str){c->p + c->i, c->n - c->i};
    m->format = LH_SYSLOG_RFC3164;
}

/* Clears what a parse sets, keeping PRI (the sd/param arrays are only
 * read up to their counts). */
static void reset(struct lh_syslog_msg *m)
{
    int fac = m->facility, sev = m->severity;
    memset(m, 0, offsetof(struct lh_syslog_msg, sd));
    m->n_sd = m->n_params = 0;
    m->facility = fac;
    m->severity = sev;
}

int lh_syslog_parse(const char *p, size_t n, enum lh_syslog_format fmt, int64_t now_ns,
                    struct lh_syslog_msg *m)
{
    struct cur c = {p, n, 0};
    reset(m);
    if (!pri(&c, m))
        return LH_EINVAL;
    size_t body = c.i;
    if (fmt != LH_SYSLOG_RFC3164 && parse_5424(&c, m))
        return LH_OK;
    if (fmt == LH_SYSLOG_RFC5424)
        return LH_EINVAL;
    reset(m);
    c.i = body;
    parse_3164(&c, now_ns, m);
    return LH_OK;
}

size_t lh_syslog_unescape(const char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n && (p[i + 1] == '"' || p[i + 1] == '\\' || p[i + 1] == ']'))
            i++;
        out[o++] = p[i];
    }
    return o;
}
