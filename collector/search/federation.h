/* Federated queries: one GET sent to every peer collector at once with
 * libevent's asynchronous evhttp client on the collector's event loop, the
 * answers handed back together once the last peer answered or failed.
 *
 * Peers are http:// or https:// base URLs (a path prefix is kept, as behind
 * a reverse proxy). https peers are verified against the system trust store
 * (OpenSSL's default paths, so SSL_CERT_FILE / SSL_CERT_DIR apply). Each
 * request carries `local=1` (added by the caller to path_query) so a peer
 * answers from itself alone, and the Authorization header of the request
 * being answered, so a tier sharing one API token federates. */
#ifndef LH_FEDERATION_H
#define LH_FEDERATION_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#define LH_FED_MAX_PEERS 64
#define LH_FED_TIMEOUT_S 10
#define LH_FED_MAX_BODY (256 * 1024 * 1024)

struct lh_fed;

/* Copies the URLs; checks each is http(s)://host[:port][/prefix]. 0 with
 * *out, or LH_EINVAL / LH_ENOMEM with err. */
int lh_fed_new(struct event_base *base, char *const *peers, size_t n, struct lh_fed **out,
               char *err, size_t errlen);
/* Abandons the calls in flight: their callbacks never run. */
void lh_fed_free(struct lh_fed *f);
size_t lh_fed_peers(const struct lh_fed *f);

/* One peer's answer; pointers valid during the callback only. ok means
 * HTTP 200; otherwise why says what went wrong. */
struct lh_fed_answer {
    const char *peer;
    bool ok;
    int status;           /* 0 when no answer came */
    const char *body;     /* not NUL-terminated */
    size_t len;
    const char *why;
};

/* answers[i] is peer i's, in configuration order. */
typedef void (*lh_fed_done_cb)(void *ud, const struct lh_fed_answer *answers, size_t n);

/* GETs path_query ("/api/v1/search?...&local=1") from every peer.
 * authorization: header value to pass on, or NULL. done runs exactly once,
 * from the event loop, unless f is freed first. 0 or LH_ENOMEM. */
int lh_fed_ask(struct lh_fed *f, const char *path_query, const char *authorization,
               lh_fed_done_cb done, void *ud);

#endif
