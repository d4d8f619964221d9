/* A small HTTP(S) GET client over libevent's evhttp, for fanning one request
 * out to several collectors in one event_base.
 *
 * Ownership: the client owns every request it starts and their connections;
 * lh_http_client_destroy() frees them all, so destroy only after the loop
 * has finished (or to abandon requests still running). */
#ifndef LH_CLI_HTTP_CLIENT_H
#define LH_CLI_HTTP_CLIENT_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

struct lh_http_client;

struct lh_http_opts {
    const char *ca_file;      /* https: CA bundle; NULL = the system store */
    bool insecure;            /* https: do not verify the server */
    int timeout_s;            /* connect, read and write timeout */
    const char *bearer_token; /* sent as "Authorization: Bearer ..." when set */
    size_t max_body;          /* larger answers fail the request */
};

/* What came back. body is valid only during the callback and is not
 * NUL-terminated. */
struct lh_http_response {
    int status;         /* HTTP status, or 0 when no answer came */
    const char *reason; /* without an answer: why (connection refused, ...) */
    const char *body;
    size_t body_len;
};

typedef void (*lh_http_cb)(const struct lh_http_response *res, void *arg);

/* 0 with *out, or a negative LH_E* with err filled. */
int lh_http_client_create(struct event_base *base, const struct lh_http_opts *opts,
                          struct lh_http_client **out, char *err, size_t errlen);
void lh_http_client_destroy(struct lh_http_client *c);

/* Starts GET of base_url (http:// or https://, optional path prefix) joined
 * with path_query ("/api/v1/search?q=..."). cb runs exactly once, from the
 * event loop. 0, or LH_EINVAL (bad URL) / LH_ETLS / LH_ENOMEM with err. */
int lh_http_get(struct lh_http_client *c, const char *base_url, const char *path_query,
                lh_http_cb cb, void *arg, char *err, size_t errlen);

/* Receives a streamed answer's body as it arrives (HTTP 200 only). */
typedef void (*lh_http_chunk_cb)(const char *data, size_t len, void *arg);

/* Like lh_http_get, for answers that stream (GET /api/v1/tail): the body of
 * a 200 answer goes to chunk as it arrives, with no read timeout once the
 * answer has begun; cb runs once at the end, with an empty body then. */
int lh_http_stream(struct lh_http_client *c, const char *base_url, const char *path_query,
                   lh_http_chunk_cb chunk, lh_http_cb cb, void *arg, char *err, size_t errlen);

#endif
