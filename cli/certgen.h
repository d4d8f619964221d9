/* Test and demo certificates: a CA, a server and a client certificate,
 * signed by the CA (used by `loghaul certs` and the test suites). */
#ifndef LH_CERTGEN_H
#define LH_CERTGEN_H

#include <stddef.h>

/* Writes into dir (created if missing): ca.pem, ca-key.pem, server.pem,
 * server-key.pem, client.pem, client-key.pem. The server certificate's
 * SANs are localhost, 127.0.0.1, ::1 and each of hosts (DNS names or IP
 * addresses). Keys are mode 0600. 0 or a negative LH_E* with err filled. */
int lh_certgen(const char *dir, const char *const *hosts, size_t n_hosts, char *err,
               size_t errlen);

#endif
