/* Checks of config values wrong on their face (lh_cfg_field.check): what
 * they test needs no file, name lookup or socket, so --check-config gives
 * the same answer on any machine; and the warnings about the files values
 * name (missing, or a secret others can read). */
#include "common/config/config.h"
#include "common/config/config_int.h"
#include "common/base/err.h"

#include <errno.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static int port_of(const char *digits, bool zero_ok, char *why, size_t whylen)
{
    size_t nd = strspn(digits, "0123456789");
    if (nd == 0 || digits[nd] != '\0') {
        snprintf(why, whylen, "port '%s' is not a number", digits);
        return LH_EINVAL;
    }
    long p = nd > 6 ? 99999999 : strtol(digits, NULL, 10);
    if (p > 65535 || (p == 0 && !zero_ok)) {
        snprintf(why, whylen, "port %s is out of range (%d..65535)", digits, zero_ok ? 0 : 1);
        return LH_EINVAL;
    }
    return LH_OK;
}

static int hostport(const char *v, bool listen, char *why, size_t whylen)
{
    const char *colon;
    size_t hl;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        colon = close ? close + 1 : NULL;
        hl = close ? (size_t)(close - v - 1) : 0;
        if (!close || *colon != ':') {
            snprintf(why, whylen, "'%s' is not [v6-address]:port", v);
            return LH_EINVAL;
        }
    } else {
        colon = strrchr(v, ':');
        hl = colon ? (size_t)(colon - v) : 0;
        if (!colon || memchr(v, ':', hl)) {
            snprintf(why, whylen, "'%s' is not host:port%s", v,
                     colon ? " (an IPv6 address goes in brackets: [::1]:24224)" : "");
            return LH_EINVAL;
        }
    }
    if (hl == 0 && !listen) {
        snprintf(why, whylen, "'%s' has no host", v);
        return LH_EINVAL;
    }
    if (hl >= 256) {
        snprintf(why, whylen, "the host of '%.40s...' is longer than 255 bytes", v);
        return LH_EINVAL;
    }
    return port_of(colon + 1, listen, why, whylen);
}

int lh_cfg_check_hostport(const char *v, char *why, size_t whylen)
{
    return hostport(v, false, why, whylen);
}

int lh_cfg_check_listen_hostport(const char *v, char *why, size_t whylen)
{
    return hostport(v, true, why, whylen);
}

int lh_cfg_check_http_url(const char *v, char *why, size_t whylen)
{
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(v, 0);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    int port = u ? evhttp_uri_get_port(u) : -1;
    int rc = LH_EINVAL;
    if (!u)
        snprintf(why, whylen, "'%s' is not a URL like http://host:port/path (port 1..65535)", v);
    else if (!scheme || (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0))
        snprintf(why, whylen, "'%s' must start with http:// or https://", v);
    else if (!host || !host[0])
        snprintf(why, whylen, "'%s' has no host", v);
    else if (port == 0 || port > 65535)
        snprintf(why, whylen, "port %d of '%s' is out of range (1..65535)", port, v);
    else
        rc = LH_OK;
    if (u)
        evhttp_uri_free(u);
    return rc;
}

/* glibc's strptime and strftime conversions, and %L (loghaul's fraction). */
#define TIME_CONVERSIONS "aAbBcCdDeFgGhHIjklmMnpPrRsStTuUVwWxXyYzZ%+L"

int lh_cfg_check_time_pattern(const char *v, char *why, size_t whylen)
{
    for (const char *p = strchr(v, '%'); p; p = strchr(p, '%')) {
        const char *c = p + 1;
        c += strspn(c, "_-0^#");
        c += strspn(c, "0123456789");
        if (*c == 'E' || *c == 'O')
            c++;
        if (!*c || !strchr(TIME_CONVERSIONS, *c)) {
            snprintf(why, whylen, "'%s': %s%.*s is not a time conversion (known: %%Y %%m %%d "
                     "%%H %%M %%S %%z %%b %%e %%L, ...)", v, *c ? "" : "a lone ",
                     *c ? (int)(c - p + 1) : 1, p);
            return LH_EINVAL;
        }
        p = c + 1;
    }
    return LH_OK;
}

void lh_cfg_check_file(struct lh_cfg_diag *d, const struct lh_cfg_field *f, int line, int col,
                       const char *path)
{
    struct stat st;
    if (strpbrk(path, "*?["))
        return;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            lh_cfg_warn(d, line, col, "file '%s' does not exist", path);
        else
            lh_cfg_warn(d, line, col, "file '%s' cannot be checked: %s", path, strerror(errno));
        return;
    }
    /* A secret readable beyond its owner: accepted (deployments differ),
     * but said at every check and start. */
    if ((f->flags & LH_CFG_F_SECRET) && S_ISREG(st.st_mode) && (st.st_mode & 0044))
        lh_cfg_warn(d, line, col,
                    "%s: '%s' is readable by %s (mode %04o): a secret should be 0600, owned by "
                    "the daemon's user", f->key, path, (st.st_mode & 0004) ? "others" : "its group",
                    (unsigned)(st.st_mode & 07777));
}
