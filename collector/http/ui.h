/* The web UI (GET /): one self-contained page, no external assets. It
 * holds no data, so it is served without the API token; every call it
 * makes to the API sends the token the user typed (kept in localStorage). */
#ifndef LH_UI_H
#define LH_UI_H

#include <event2/http.h>

void lh_ui_reply(struct evhttp_request *req);

#endif
