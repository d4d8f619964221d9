/* HTTP replies shared by the collector's API and the agent's status server. */
#ifndef LH_HTTP_REPLY_H
#define LH_HTTP_REPLY_H

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stddef.h>

/* Headers every answer of both daemons carries, added when a request
 * arrives: X-Content-Type-Options: nosniff, X-Frame-Options: DENY,
 * Referrer-Policy: no-referrer and LH_REPLY_CSP (no content, no framing).
 * A page that needs more replaces the CSP (lh_reply_set_csp). */
#define LH_REPLY_CSP "default-src 'none'; frame-ancestors 'none'"
void lh_reply_secure_headers(struct evhttp_request *req);
/* Replaces the Content-Security-Policy header with csp. */
void lh_reply_set_csp(struct evhttp_request *req, const char *csp);

/* Standard reason phrase of the status codes the API answers. */
const char *lh_reply_reason(int code);
/* Sends body (copied) with a Content-Type. */
void lh_reply_text(struct evhttp_request *req, int code, const char *type, const char *body,
                   size_t len);
/* Sends a NUL-terminated body (copied). */
void lh_reply_str(struct evhttp_request *req, int code, const char *type, const char *body);
/* Sends body (drained into the reply). */
void lh_reply_buf(struct evhttp_request *req, int code, const char *type,
                  struct evbuffer *body);
/* v as compact JSON plus a newline (v is borrowed). */
void lh_reply_json(struct evhttp_request *req, int code, json_t *v);
/* {"error": msg} or, with position >= 0, {"error": msg, "position": N}
 * (SPEC section 7's shape for a bad query). */
void lh_reply_error(struct evhttp_request *req, int code, const char *msg, int position);

#endif
