#include "common/net/http_reply.h"

#include <stdlib.h>
#include <string.h>

void lh_reply_secure_headers(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_add_header(h, "Content-Security-Policy", LH_REPLY_CSP);
}

void lh_reply_set_csp(struct evhttp_request *req, const char *csp)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_remove_header(h, "Content-Security-Policy");
    evhttp_add_header(h, "Content-Security-Policy", csp);
}

const char *lh_reply_reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

void lh_reply_buf(struct evhttp_request *req, int code, const char *type,
                  struct evbuffer *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evhttp_send_reply(req, code, lh_reply_reason(code), body);
}

void lh_reply_text(struct evhttp_request *req, int code, const char *type, const char *body,
                   size_t len)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf || evbuffer_add(buf, body, len) != 0)
        evhttp_send_error(req, 500, "out of memory");
    else
        lh_reply_buf(req, code, type, buf);
    if (buf)
        evbuffer_free(buf);
}

void lh_reply_str(struct evhttp_request *req, int code, const char *type, const char *body)
{
    lh_reply_text(req, code, type, body, strlen(body));
}

void lh_reply_json(struct evhttp_request *req, int code, json_t *v)
{
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!text) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL: the length is known */
    lh_reply_text(req, code, "application/json", text, n + 1);
    free(text);
}

void lh_reply_error(struct evhttp_request *req, int code, const char *msg, int position)
{
    json_t *o = position >= 0 ? json_pack("{s:s, s:i}", "error", msg, "position", position)
                              : json_pack("{s:s}", "error", msg);
    lh_reply_json(req, code, o);
    json_decref(o);
}
