/* `loghaul certs DIR [--host NAME]...`: a CA plus a server and a client
 * certificate signed by it, for trying TLS and mTLS locally. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/certgen.h"

#define MAX_HOSTS 64

void lh_cli_certs_usage(FILE *out)
{
    fputs("usage: loghaul certs DIR [--host NAME]...\n"
          "\n"
          "Writes into DIR (created if missing) a certificate authority (ca.pem,\n"
          "ca-key.pem), a server certificate (server.pem, server-key.pem) and a client\n"
          "certificate for mTLS (client.pem, client-key.pem), both signed by the CA.\n"
          "The server certificate is valid for localhost, 127.0.0.1, ::1 and every\n"
          "--host. Private keys are mode 0600. For trying TLS locally, not for\n"
          "production.\n"
          "\n"
          "options:\n"
          "      --host NAME   add a DNS name or IP address to the server certificate\n"
          "                    (repeatable)\n"
          "  -h, --help        this help\n",
          out);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loghaul certs: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'loghaul certs --help'.\n", stderr);
    return LH_EXIT_USAGE;
}

int lh_cli_certs(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *hosts[MAX_HOSTS];
    size_t n_hosts = 0;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            lh_cli_certs_usage(stdout);
            return LH_EXIT_OK;
        }
        if (c == '?')
            return usage_error("unknown option '%s'", argv[optind - 1]);
        if (c == ':')
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        if (n_hosts == MAX_HOSTS)
            return usage_error("too many --host (at most %d)", MAX_HOSTS);
        if (!*optarg)
            return usage_error("%s", "--host wants a name");
        hosts[n_hosts++] = optarg;
    }
    if (optind != argc - 1)
        return usage_error("%s", optind >= argc ? "missing DIR" : "only one DIR, please");
    const char *dir = argv[optind];
    char err[512] = "";
    if (lh_certgen(dir, hosts, n_hosts, err, sizeof(err)) != 0) {
        fprintf(stderr, "loghaul certs: %s\n", err);
        return LH_EXIT_FAIL;
    }
    static const char *const files[] = {"ca.pem",     "ca-key.pem",     "server.pem",
                                        "server-key.pem", "client.pem", "client-key.pem"};
    size_t dlen = strlen(dir);
    const char *sep = dlen && dir[dlen - 1] == '/' ? "" : "/";
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        printf("%s%s%s\n", dir, sep, files[i]);
    return fflush(stdout) == 0 ? LH_EXIT_OK : LH_EXIT_FAIL;
}
