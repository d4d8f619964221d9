/* Schema-driven YAML loader: every field type, defaults, and the exact
 * FILE:LINE:COL of every kind of error. */
#include <check.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config/config.h"
#include "common/base/err.h"
#include "common/base/util.h"
#include "tests/unit/lh_check.h"

/* ---- test schemas --------------------------------------------------- */

struct t_tls {
    bool present;
    bool enabled;
    bool verify;
    char *ca;
    char *cert;
};

struct t_batch {
    int64_t max_records;
    int64_t max_bytes;
    int64_t max_wait;
};

struct t_agent {
    char *name;
    char *data_dir;
    char *http;
};

struct t_forward {
    struct lh_cfg_item hdr;
    struct lh_strlist collectors;
    int balance;
    struct t_batch batch;
    struct t_tls tls;
};

struct t_stdout {
    struct lh_cfg_item hdr;
    char *match;
};

struct t_root {
    struct t_agent agent;
    int level;
    struct lh_strlist paths;
    struct lh_strmap labels;
    int64_t max_line;
    int64_t flush;
    bool debug;
    int64_t port;
    struct t_batch batch;
    struct t_tls tls;
    struct lh_cfg_list outputs;
};

static int tls_validate(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct t_tls *t = obj;
    if (t->enabled && !t->cert)
        return lh_cfg_error(d, line, col, "tls: cert is required when enabled");
    return 0;
}

static const struct lh_cfg_field tls_fields[] = {
    {.key = "enabled", .type = LH_CFG_BOOL, .offset = offsetof(struct t_tls, enabled),
     .defval = "true"},
    {.key = "verify", .type = LH_CFG_BOOL, .offset = offsetof(struct t_tls, verify),
     .defval = "yes"},
    {.key = "ca", .type = LH_CFG_STR, .offset = offsetof(struct t_tls, ca),
     .flags = LH_CFG_F_PATH},
    {.key = "cert", .type = LH_CFG_STR, .offset = offsetof(struct t_tls, cert),
     .flags = LH_CFG_F_PATH},
    {0}};
static const struct lh_cfg_schema tls_schema = {
    .name = "tls", .size = sizeof(struct t_tls), .fields = tls_fields,
    .present_offset1 = offsetof(struct t_tls, present) + 1, .validate = tls_validate};

static const struct lh_cfg_field batch_fields[] = {
    {.key = "max_records", .type = LH_CFG_INT, .offset = offsetof(struct t_batch, max_records),
     .defval = "8192", .min = 1, .max = 1000000},
    {.key = "max_bytes", .type = LH_CFG_SIZE, .offset = offsetof(struct t_batch, max_bytes),
     .defval = "2MiB", .min = 1024, .max = 64LL << 20},
    {.key = "max_wait", .type = LH_CFG_DURATION, .offset = offsetof(struct t_batch, max_wait),
     .defval = "1s", .min = 1, .max = 3600000},
    {0}};
static const struct lh_cfg_schema batch_schema = {
    .name = "batch", .size = sizeof(struct t_batch), .fields = batch_fields};

static const struct lh_cfg_field agent_fields[] = {
    {.key = "name", .type = LH_CFG_STR, .offset = offsetof(struct t_agent, name),
     .defval = "default-host"},
    {.key = "data_dir", .type = LH_CFG_STR, .offset = offsetof(struct t_agent, data_dir),
     .flags = LH_CFG_F_PATH},
    {.key = "http", .type = LH_CFG_STR, .offset = offsetof(struct t_agent, http),
     .defval = "127.0.0.1:9801"},
    {0}};
static const struct lh_cfg_schema agent_schema = {
    .name = "agent section", .size = sizeof(struct t_agent), .fields = agent_fields};

static const char *const balance_values[] = {"round_robin", "failover", NULL};
static const char *const level_values[] = {"debug", "info", "warn", "error", NULL};

static const struct lh_cfg_field forward_fields[] = {
    {.key = "collectors", .type = LH_CFG_STRLIST,
     .offset = offsetof(struct t_forward, collectors), .flags = LH_CFG_F_REQUIRED},
    {.key = "balance", .type = LH_CFG_ENUM, .offset = offsetof(struct t_forward, balance),
     .enum_values = balance_values, .defval = "round_robin"},
    {.key = "batch", .type = LH_CFG_SECTION, .offset = offsetof(struct t_forward, batch),
     .sub = &batch_schema},
    {.key = "tls", .type = LH_CFG_SECTION, .offset = offsetof(struct t_forward, tls),
     .sub = &tls_schema},
    {0}};
static const struct lh_cfg_schema forward_schema = {
    .name = "forward output", .size = sizeof(struct t_forward), .fields = forward_fields};

static const struct lh_cfg_field stdout_fields[] = {
    {.key = "match", .type = LH_CFG_STR, .offset = offsetof(struct t_stdout, match),
     .defval = "*"},
    {0}};
static const struct lh_cfg_schema stdout_schema = {
    .name = "stdout output", .size = sizeof(struct t_stdout), .fields = stdout_fields};

static const struct lh_cfg_plugin_type output_types[] = {
    {"forward", &forward_schema}, {"stdout", &stdout_schema}, {NULL, NULL}};

static const struct lh_cfg_field root_fields[] = {
    {.key = "agent", .type = LH_CFG_SECTION, .offset = offsetof(struct t_root, agent),
     .sub = &agent_schema},
    {.key = "level", .type = LH_CFG_ENUM, .offset = offsetof(struct t_root, level),
     .enum_values = level_values, .defval = "info"},
    {.key = "paths", .type = LH_CFG_STRLIST, .offset = offsetof(struct t_root, paths),
     .flags = LH_CFG_F_REQUIRED | LH_CFG_F_PATH},
    {.key = "labels", .type = LH_CFG_STRMAP, .offset = offsetof(struct t_root, labels)},
    {.key = "max_line", .type = LH_CFG_SIZE, .offset = offsetof(struct t_root, max_line),
     .defval = "64KiB", .min = 1024, .max = 16LL << 20},
    {.key = "flush", .type = LH_CFG_DURATION, .offset = offsetof(struct t_root, flush),
     .defval = "2s"},
    {.key = "debug", .type = LH_CFG_BOOL, .offset = offsetof(struct t_root, debug),
     .defval = "false"},
    {.key = "port", .type = LH_CFG_INT, .offset = offsetof(struct t_root, port),
     .defval = "9800", .min = 1, .max = 65535},
    {.key = "batch", .type = LH_CFG_SECTION, .offset = offsetof(struct t_root, batch),
     .sub = &batch_schema},
    {.key = "tls", .type = LH_CFG_SECTION, .offset = offsetof(struct t_root, tls),
     .sub = &tls_schema},
    {.key = "outputs", .type = LH_CFG_PLUGINS, .offset = offsetof(struct t_root, outputs),
     .plugins = output_types},
    {0}};
static const struct lh_cfg_schema root_schema = {
    .name = "test config", .size = sizeof(struct t_root), .fields = root_fields};

/* ---- helpers -------------------------------------------------------- */

static char tmpdir[PATH_MAX];

static void setup(void)
{
    lh_test_mkdtemp(tmpdir, sizeof tmpdir, "config");
}

static void teardown(void)
{
    lh_test_rmrf(tmpdir);
}

static int load(const char *yaml, struct t_root *r, struct lh_cfg_diag *d)
{
    memset(r, 0, sizeof *r);
    lh_cfg_diag_free(d);
    memset(d, 0, sizeof *d);
    return lh_cfg_load_string("cfg.yaml", yaml, strlen(yaml), &root_schema, r, d);
}

/* Loads yaml into *r; d must be zeroed or hold an earlier load's results,
 * which are freed. */
/* Loads yaml, which must fail with exactly `want`; frees the half-filled
 * struct (ASan reports any leak or double free). */
static void expect_error(const char *yaml, const char *want)
{
    struct t_root r;
    struct lh_cfg_diag d = {0};
    int rc = load(yaml, &r, &d);
    ck_assert_msg(rc == LH_ECONFIG, "rc %d for:\n%s", rc, yaml);
    ck_assert_str_eq(d.error, want);
    lh_cfg_free(&root_schema, &r);
    lh_cfg_diag_free(&d);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* ---- valid files ---------------------------------------------------- */

static const char full_yaml[] =
    "agent:\n"
    "  name: web-1\n"
    "  http: \"\"\n"
    "level: WARN\n"
    "paths: ['/var/log/*.log', /var/log/syslog]\n"
    "labels: {env: prod, team: \"core\"}\n"
    "max_line: 128KiB\n"
    "flush: 200ms\n"
    "debug: on\n"
    "port: 24224\n"
    "batch: {max_records: 100}\n"
    "outputs:\n"
    "  - type: forward\n"
    "    collectors: c1.example:24224\n"
    "    balance: failover\n"
    "    batch: {max_bytes: 1MiB, max_wait: 5s}\n"
    "    tls: {enabled: false}\n"
    "  - {type: stdout, match: 'debug.*'}\n"
    "  - type: stdout\n";

START_TEST(test_valid_all_types)
{
    struct t_root r;
    struct lh_cfg_diag d = {0};
    ck_assert_int_eq(load(full_yaml, &r, &d), 0);
    ck_assert_str_eq(d.error, "");
    ck_assert_str_eq(r.agent.name, "web-1");
    ck_assert_str_eq(r.agent.http, ""); /* quoted empty string is a value, not null */
    ck_assert_ptr_null(r.agent.data_dir);
    ck_assert_int_eq(r.level, 2);
    ck_assert_uint_eq(r.paths.n, 2);
    ck_assert_str_eq(r.paths.v[0], "/var/log/*.log");
    ck_assert_str_eq(r.paths.v[1], "/var/log/syslog");
    ck_assert_uint_eq(r.labels.n, 2);
    ck_assert_str_eq(r.labels.keys[0], "env");
    ck_assert_str_eq(r.labels.vals[0], "prod");
    ck_assert_str_eq(r.labels.keys[1], "team");
    ck_assert_str_eq(r.labels.vals[1], "core");
    ck_assert_int_eq(r.max_line, 128 * 1024);
    ck_assert_int_eq(r.flush, 200);
    ck_assert(r.debug);
    ck_assert_int_eq(r.port, 24224);
    ck_assert_int_eq(r.batch.max_records, 100);
    ck_assert_int_eq(r.batch.max_bytes, 2 << 20);
    ck_assert_int_eq(r.batch.max_wait, 1000);
    ck_assert(!r.tls.present);

    ck_assert_uint_eq(r.outputs.n, 3);
    struct t_forward *fw = (struct t_forward *)r.outputs.head;
    ck_assert_str_eq(fw->hdr.type, "forward");
    ck_assert_ptr_eq(fw->hdr.schema, &forward_schema);
    ck_assert_int_eq(fw->hdr.line, 13);
    ck_assert_int_eq(fw->hdr.col, 5);
    ck_assert_uint_eq(fw->collectors.n, 1);
    ck_assert_str_eq(fw->collectors.v[0], "c1.example:24224");
    ck_assert_int_eq(fw->balance, 1);
    ck_assert_int_eq(fw->batch.max_records, 8192);
    ck_assert_int_eq(fw->batch.max_bytes, 1 << 20);
    ck_assert_int_eq(fw->batch.max_wait, 5000);
    ck_assert(fw->tls.present);
    ck_assert(!fw->tls.enabled);
    ck_assert(fw->tls.verify);
    struct t_stdout *so = (struct t_stdout *)fw->hdr.next;
    ck_assert_str_eq(so->hdr.type, "stdout");
    ck_assert_int_eq(so->hdr.line, 18);
    ck_assert_int_eq(so->hdr.col, 5);
    ck_assert_str_eq(so->match, "debug.*");
    struct t_stdout *so2 = (struct t_stdout *)so->hdr.next;
    ck_assert_str_eq(so2->match, "*");
    ck_assert_ptr_null(so2->hdr.next);

    lh_cfg_free(&root_schema, &r);
    ck_assert_ptr_null(r.agent.name);
    ck_assert_ptr_null(r.outputs.head);
    ck_assert_uint_eq(r.paths.n, 0);
    lh_cfg_diag_free(&d);
}
END_TEST

START_TEST(test_defaults)
{
    struct t_root r;
    struct lh_cfg_diag d = {0};
    ck_assert_int_eq(load("paths: /a\nagent: {data_dir: ~}\n", &r, &d), 0);
    ck_assert_str_eq(r.agent.name, "default-host");
    ck_assert_ptr_null(r.agent.data_dir);
    ck_assert_str_eq(r.agent.http, "127.0.0.1:9801");
    ck_assert_int_eq(r.level, 1);
    ck_assert_uint_eq(r.paths.n, 1);
    ck_assert_str_eq(r.paths.v[0], "/a");
    ck_assert_uint_eq(r.labels.n, 0);
    ck_assert_int_eq(r.max_line, 64 * 1024);
    ck_assert_int_eq(r.flush, 2000);
    ck_assert(!r.debug);
    ck_assert_int_eq(r.port, 9800);
    /* The batch section is absent: its defaults still apply. */
    ck_assert_int_eq(r.batch.max_records, 8192);
    ck_assert_int_eq(r.batch.max_bytes, 2 << 20);
    ck_assert_int_eq(r.batch.max_wait, 1000);
    /* tls is absent: off, yet its own defaults are filled in. */
    ck_assert(!r.tls.present);
    ck_assert(r.tls.enabled);
    ck_assert_uint_eq(r.outputs.n, 0);
    lh_cfg_free(&root_schema, &r);
    lh_cfg_diag_free(&d);
}
END_TEST

START_TEST(test_null_values_mean_absent)
{
    struct t_root r;
    struct lh_cfg_diag d = {0};
    ck_assert_int_eq(load("paths: [x]\nport: ~\nflush: null\nagent:\n  name:\noutputs:\n", &r,
                          &d),
                     0);
    ck_assert_int_eq(r.port, 9800);
    ck_assert_int_eq(r.flush, 2000);
    ck_assert_str_eq(r.agent.name, "default-host");
    ck_assert_uint_eq(r.outputs.n, 0);
    lh_cfg_free(&root_schema, &r);
    lh_cfg_diag_free(&d);
}
END_TEST

START_TEST(test_present_flag)
{
    struct t_root r;
    struct lh_cfg_diag d = {0};
    ck_assert_int_eq(load("paths: [x]\ntls:\n", &r, &d), LH_ECONFIG);
    /* `tls:` alone turns it on, with enabled defaulting to true and no cert. */
    ck_assert_str_eq(d.error, "cfg.yaml:2:5: tls: cert is required when enabled");
    lh_cfg_free(&root_schema, &r);

    ck_assert_int_eq(load("paths: [x]\ntls: {cert: /c.pem}\n", &r, &d), 0);
    ck_assert(r.tls.present);
    ck_assert(r.tls.enabled);
    ck_assert_str_eq(r.tls.cert, "/c.pem");
    lh_cfg_free(&root_schema, &r);
    lh_cfg_diag_free(&d);

    ck_assert_int_eq(load("paths: [x]\n", &r, &d), 0);
    ck_assert(!r.tls.present);
    ck_assert_ptr_null(r.tls.cert);
    lh_cfg_free(&root_schema, &r);
    lh_cfg_diag_free(&d);
}
END_TEST

START_TEST(test_empty_document)
{
    struct t_root r;
    struct lh_cfg_diag d = {0};
    ck_assert_int_eq(load("", &r, &d), LH_ECONFIG);
    ck_assert_str_eq(d.error, "cfg.yaml:1:1: missing required key 'paths' in test config");
    lh_cfg_free(&root_schema, &r);
    ck_assert_int_eq(load("# only a comment\n---\n", &r, &d), LH_ECONFIG);
    ck_assert_str_eq(d.error, "cfg.yaml:1:1: missing required key 'paths' in test config");
    lh_cfg_free(&root_schema, &r);

    /* With nothing required, an empty file is all defaults. */
    struct t_batch b = {0};
    lh_cfg_diag_free(&d);
    ck_assert_int_eq(lh_cfg_load_string("e.yaml", "", 0, &batch_schema, &b, &d), 0);
    ck_assert_int_eq(b.max_records, 8192);
    ck_assert_int_eq(b.max_wait, 1000);
    lh_cfg_free(&batch_schema, &b);
    lh_cfg_diag_free(&d);
}
END_TEST

/* ---- units ---------------------------------------------------------- */

START_TEST(test_units)
{
    static const struct {
        const char *yaml;
        int64_t max_bytes, max_wait;
    } cases[] = {
        {"{max_bytes: 64KiB, max_wait: 200ms}", 65536, 200},
        {"{max_bytes: 2MiB, max_wait: 2s}", 2 << 20, 2000},
        {"{max_bytes: 64MiB, max_wait: 15m}", 64LL << 20, 900000},
        {"{max_bytes: 1024, max_wait: 1h}", 1024, 3600000},
        {"{max_bytes: 10MB, max_wait: 1.5s}", 10000000, 1500},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct t_batch b = {0};
        struct lh_cfg_diag d = {0};
        int rc = lh_cfg_load_string("u.yaml", cases[i].yaml, strlen(cases[i].yaml),
                                    &batch_schema, &b, &d);
        ck_assert_msg(rc == 0, "%s: %s", cases[i].yaml, d.error);
        ck_assert_int_eq(b.max_bytes, cases[i].max_bytes);
        ck_assert_int_eq(b.max_wait, cases[i].max_wait);
    }
    /* Unbounded fields take the large units. */
    struct t_root r;
    struct lh_cfg_diag d = {0};
    ck_assert_int_eq(load("paths: x\nflush: 7d\n", &r, &d), 0);
    ck_assert_int_eq(r.flush, 7LL * 86400 * 1000);
    lh_cfg_free(&root_schema, &r);
    ck_assert_int_eq(load("paths: x\nmax_line: 1GiB\n", &r, &d), LH_ECONFIG);
    ck_assert_str_eq(d.error, "cfg.yaml:2:11: max_line: value 1GiB out of range (1KiB..16MiB)");
    lh_cfg_free(&root_schema, &r);
    lh_cfg_diag_free(&d);
}
END_TEST

/* ---- errors --------------------------------------------------------- */

START_TEST(test_error_unknown_key)
{
    expect_error("paths: [x]\nportt: 5\n",
                 "cfg.yaml:2:1: unknown key 'portt' in test config (did you mean 'port'?)");
    expect_error("paths: [x]\nzzzzzz: 5\n", "cfg.yaml:2:1: unknown key 'zzzzzz' in test config");
    expect_error("paths: [x]\noutputs:\n  - type: forward\n    colectors: [a]\n",
                 "cfg.yaml:4:5: unknown key 'colectors' in forward output "
                 "(did you mean 'collectors'?)");
    expect_error("paths: [x]\nbatch:\n  max_record: 5\n",
                 "cfg.yaml:3:3: unknown key 'max_record' in batch (did you mean 'max_records'?)");
}
END_TEST

START_TEST(test_error_plugins)
{
    expect_error("paths: [x]\noutputs:\n  - type: stdot\n",
                 "cfg.yaml:3:11: unknown output type 'stdot' (did you mean 'stdout'?)");
    expect_error("paths: [x]\noutputs:\n  - type: kafka\n",
                 "cfg.yaml:3:11: unknown output type 'kafka' (known types: forward, stdout)");
    expect_error("paths: [x]\noutputs:\n  - {type: stdout}\n  - match: x\n",
                 "cfg.yaml:4:5: missing key 'type' in output");
    expect_error("paths: [x]\noutputs:\n  - stdout\n",
                 "cfg.yaml:3:5: outputs: expected a mapping for each item, got a scalar");
    expect_error("paths: [x]\noutputs: {type: stdout}\n",
                 "cfg.yaml:2:10: outputs: expected a list, got a mapping");
    expect_error("paths: [x]\noutputs:\n  - type: [forward]\n",
                 "cfg.yaml:3:11: type: expected a scalar, got a list");
    expect_error("paths: [x]\noutputs:\n  - type: forward\n    balance: failover\n",
                 "cfg.yaml:3:5: missing required key 'collectors' in forward output");
    /* The validate hook of a section inside a plugin item. */
    expect_error("paths: [x]\noutputs:\n  - type: forward\n    collectors: a\n"
                 "    tls: {ca: /x}\n",
                 "cfg.yaml:5:10: tls: cert is required when enabled");
}
END_TEST

START_TEST(test_error_types)
{
    expect_error("paths: [x]\ndebug: maybe\n",
                 "cfg.yaml:2:8: debug: expected true or false, got 'maybe'");
    expect_error("paths: [x]\nport: 12ab\n", "cfg.yaml:2:7: port: expected an integer, got '12ab'");
    expect_error("paths: [x]\nport: [1]\n", "cfg.yaml:2:7: port: expected a scalar, got a list");
    expect_error("paths: {a: b}\n", "cfg.yaml:1:8: paths: expected a list, got a mapping");
    expect_error("paths: [x, [y]]\n", "cfg.yaml:1:12: paths: expected a scalar, got a list");
    expect_error("paths: [x]\nlabels: [a]\n", "cfg.yaml:2:9: labels: expected a mapping, got a list");
    expect_error("paths: [x]\nlabels: {a: {b: c}}\n",
                 "cfg.yaml:2:13: labels: expected a scalar, got a mapping");
    expect_error("paths: [x]\nbatch: 5\n", "cfg.yaml:2:8: batch: expected a mapping, got a scalar");
    expect_error("paths: [x]\nmax_line: abc\n",
                 "cfg.yaml:2:11: max_line: expected a size like 64KiB or 2MiB, got 'abc'");
    expect_error("paths: [x]\nmax_line: 12XB\n",
                 "cfg.yaml:2:11: max_line: expected a size like 64KiB or 2MiB, got '12XB'");
    expect_error("paths: [x]\nflush: soon\n",
                 "cfg.yaml:2:8: flush: expected a duration like 200ms, 2s or 15m, got 'soon'");
    expect_error("paths: [x]\nflush: -5s\n",
                 "cfg.yaml:2:8: flush: expected a duration like 200ms, 2s or 15m, got '-5s'");
    expect_error("paths: [x]\nlevel: warm\n",
                 "cfg.yaml:2:8: level: unknown value 'warm', expected one of: "
                 "debug, info, warn, error (did you mean 'warn'?)");
    expect_error("paths: [x]\nlevel: xyzzyq\n",
                 "cfg.yaml:2:8: level: unknown value 'xyzzyq', expected one of: "
                 "debug, info, warn, error");
    expect_error("paths: [x]\nagent: {name: \"a\\0b\"}\n",
                 "cfg.yaml:2:15: name: value contains a NUL byte");
}
END_TEST

START_TEST(test_error_bounds)
{
    expect_error("paths: [x]\nport: 70000\n", "cfg.yaml:2:7: port: value 70000 out of range (1..65535)");
    expect_error("paths: [x]\nport: 0\n", "cfg.yaml:2:7: port: value 0 out of range (1..65535)");
    expect_error("paths: [x]\nport: 99999999999999999999\n",
                 "cfg.yaml:2:7: port: integer '99999999999999999999' is too large");
    expect_error("paths: [x]\nmax_line: 100\n",
                 "cfg.yaml:2:11: max_line: value 100 out of range (1KiB..16MiB)");
    expect_error("paths: [x]\nbatch:\n  max_wait: 2h\n",
                 "cfg.yaml:3:13: max_wait: value 2h out of range (1ms..1h)");
    expect_error("paths: [x]\nmax_line: 99999999TiB\n",
                 "cfg.yaml:2:11: max_line: size '99999999TiB' is too large");
}
END_TEST

START_TEST(test_error_structure)
{
    expect_error("port: 5\n", "cfg.yaml:1:1: missing required key 'paths' in test config");
    expect_error("paths: [x]\nport: 1\nport: 2\n",
                 "cfg.yaml:3:1: duplicate key 'port' in test config");
    expect_error("paths: [x]\nlabels: {a: 1, a: 2}\n", "cfg.yaml:2:16: labels: duplicate key 'a'");
    expect_error("paths: [x]\noutputs:\n  - {type: stdout, type: forward}\n",
                 "cfg.yaml:3:20: duplicate key 'type' in output");
    expect_error("- a\n- b\n", "cfg.yaml:1:1: expected a mapping at the top level, got a list");
    expect_error("just text\n",
                 "cfg.yaml:1:1: expected a mapping at the top level, got a scalar");
    expect_error("paths: [x]\n? [a]\n: b\n", "cfg.yaml:2:3: expected a key, got a list");
    expect_error("paths: [x]\n---\nport: 1\n",
                 "cfg.yaml:3:1: only one YAML document is allowed");
}
END_TEST

START_TEST(test_error_syntax)
{
    expect_error("paths: [x]\nport: 1\n  bad: 2\n",
                 "cfg.yaml:3:6: mapping values are not allowed in this context");
    expect_error("paths: [x\nport: 1\n",
                 "cfg.yaml:2:5: did not find expected ',' or ']' (while parsing a flow sequence)");
    expect_error("paths: [x]\nport: *nope\n", "cfg.yaml:2:7: found undefined alias");
    expect_error("paths: [x]\nagent: {name: \"\xff\"}\n",
                 "cfg.yaml:2:16: invalid leading UTF-8 octet");
}
END_TEST

START_TEST(test_error_validate)
{
    expect_error("paths: [x]\ntls:\n  enabled: true\n  ca: /x\n",
                 "cfg.yaml:3:3: tls: cert is required when enabled");
}
END_TEST

START_TEST(test_aliases)
{
    struct t_root r;
    struct lh_cfg_diag d = {0};
    ck_assert_int_eq(load("paths: [a, b]\nagent: {name: &n web}\nlabels: {h: *n}\n", &r, &d), 0);
    ck_assert_str_eq(r.labels.vals[0], "web");
    lh_cfg_free(&root_schema, &r);
    /* An alias cannot smuggle a list in where a string belongs. */
    expect_error("batch: &b {max_records: 5}\npaths: [*b]\n",
                 "cfg.yaml:1:8: paths: expected a scalar, got a mapping");
    lh_cfg_diag_free(&d);
}
END_TEST

START_TEST(test_visit_cap)
{
    /* 200 aliases of an item with 1000 collectors: 200,000 strings once
     * expanded from ~10 KiB of YAML. The loader gives up instead. */
    size_t cap = 64 * 1024, off = 0;
    char *yaml = malloc(cap);
    ck_assert_ptr_nonnull(yaml);
    off += (size_t)snprintf(yaml + off, cap - off,
                            "paths: [x]\noutputs:\n  - &f {type: forward, collectors: [");
    for (int i = 0; i < 1000; i++)
        off += (size_t)snprintf(yaml + off, cap - off, "%sc%d", i ? "," : "", i);
    off += (size_t)snprintf(yaml + off, cap - off, "]}\n");
    for (int i = 0; i < 200; i++)
        off += (size_t)snprintf(yaml + off, cap - off, "  - *f\n");
    ck_assert_uint_lt(off, cap - 1);
    struct t_root r;
    struct lh_cfg_diag d = {0};
    ck_assert_int_eq(load(yaml, &r, &d), LH_ECONFIG);
    ck_assert_msg(strstr(d.error, ": document too large: more than 100000 nodes"), "%s", d.error);
    lh_cfg_free(&root_schema, &r);
    free(yaml);
    lh_cfg_diag_free(&d);
}
END_TEST

/* A plugin schema that contains itself: nesting is capped. */
struct t_tree {
    struct lh_cfg_item hdr;
    struct lh_cfg_list children;
};
static const struct lh_cfg_plugin_type tree_types[];
static const struct lh_cfg_field tree_fields[] = {
    {.key = "children", .type = LH_CFG_PLUGINS, .offset = offsetof(struct t_tree, children),
     .plugins = tree_types},
    {0}};
static const struct lh_cfg_schema tree_schema = {
    .name = "tree node", .size = sizeof(struct t_tree), .fields = tree_fields};
static const struct lh_cfg_plugin_type tree_types[] = {{"n", &tree_schema}, {NULL, NULL}};

static char *nested_yaml(int levels)
{
    char *yaml = malloc((size_t)levels * 32 + 64);
    ck_assert_ptr_nonnull(yaml);
    size_t off = (size_t)sprintf(yaml, "children: [");
    for (int i = 0; i < levels; i++)
        off += (size_t)sprintf(yaml + off, "{type: n, children: [");
    for (int i = 0; i < levels; i++)
        off += (size_t)sprintf(yaml + off, "]}");
    sprintf(yaml + off, "]\n");
    return yaml;
}

START_TEST(test_depth_cap)
{
    struct t_tree t = {0};
    struct lh_cfg_diag d = {0};
    char *yaml = nested_yaml(64);
    ck_assert_int_eq(lh_cfg_load_string("t.yaml", yaml, strlen(yaml), &tree_schema, &t, &d), 0);
    ck_assert_uint_eq(t.children.n, 1);
    lh_cfg_free(&tree_schema, &t);
    free(yaml);

    yaml = nested_yaml(65);
    ck_assert_int_eq(lh_cfg_load_string("t.yaml", yaml, strlen(yaml), &tree_schema, &t, &d),
                     LH_ECONFIG);
    /* Item 65 opens at column 12 + 64 * 21. */
    ck_assert_str_eq(d.error, "t.yaml:1:1356: nesting deeper than 64 levels");
    lh_cfg_free(&tree_schema, &t);
    ck_assert_ptr_null(t.children.head);
    free(yaml);
}
END_TEST

START_TEST(test_bad_default)
{
    struct bad {
        int64_t size;
    } b = {0};
    static const struct lh_cfg_field fields[] = {
        {.key = "size", .type = LH_CFG_SIZE, .offset = 0, .defval = "lots"}, {0}};
    static const struct lh_cfg_schema schema = {
        .name = "bad", .size = sizeof(struct bad), .fields = fields};
    struct lh_cfg_diag d = {0};
    ck_assert_int_eq(lh_cfg_load_string("b.yaml", "", 0, &schema, &b, &d), LH_ECONFIG);
    ck_assert_str_eq(d.error, "b.yaml: bad default for 'size' in bad schema: "
                              "size: expected a size like 64KiB or 2MiB, got 'lots'");
    /* A value in the file never touches the broken default. */
    ck_assert_int_eq(lh_cfg_load_string("b.yaml", "size: 1KiB", 10, &schema, &b, &d), 0);
    ck_assert_int_eq(b.size, 1024);
}
END_TEST

/* ---- values wrong on their face ------------------------------------ */

struct t_net {
    char *listen, *peer, *fmt, *key;
    struct lh_strlist urls;
};

static const struct lh_cfg_field net_fields[] = {
    {.key = "listen", .type = LH_CFG_STR, .offset = offsetof(struct t_net, listen),
     .check = lh_cfg_check_listen_hostport},
    {.key = "peer", .type = LH_CFG_STR, .offset = offsetof(struct t_net, peer),
     .check = lh_cfg_check_hostport},
    {.key = "urls", .type = LH_CFG_STRLIST, .offset = offsetof(struct t_net, urls),
     .check = lh_cfg_check_http_url},
    {.key = "fmt", .type = LH_CFG_STR, .offset = offsetof(struct t_net, fmt),
     .check = lh_cfg_check_time_pattern},
    {.key = "key", .type = LH_CFG_STR, .offset = offsetof(struct t_net, key),
     .flags = LH_CFG_F_PATH | LH_CFG_F_SECRET},
    {0}};
static const struct lh_cfg_schema net_schema = {
    .name = "net test", .size = sizeof(struct t_net), .fields = net_fields};

static int load_net(const char *yaml, struct lh_cfg_diag *d)
{
    struct t_net n = {0};
    memset(d, 0, sizeof *d);
    int rc = lh_cfg_load_string("net.yaml", yaml, strlen(yaml), &net_schema, &n, d);
    lh_cfg_free(&net_schema, &n);
    return rc;
}

static void expect_net_error(const char *yaml, const char *want)
{
    struct lh_cfg_diag d;
    ck_assert_msg(load_net(yaml, &d) == LH_ECONFIG, "accepted:\n%s", yaml);
    ck_assert_str_eq(d.error, want);
    lh_cfg_diag_free(&d);
}

START_TEST(test_face_checks)
{
    struct lh_cfg_diag d;
    ck_assert_int_eq(load_net("listen: '127.0.0.1:0'\npeer: '[::1]:24224'\n"
                              "urls: ['http://c2:9800', 'https://[::1]/x?y=1']\n"
                              "fmt: '%Y-%m-%dT%H:%M:%S%L%z %% %e %b %-d %Ey'\n", &d), 0);
    lh_cfg_diag_free(&d);
    ck_assert_int_eq(load_net("listen: ':9800'\n", &d), 0);
    lh_cfg_diag_free(&d);
    expect_net_error("listen: 0.0.0.0:99999\n",
                     "net.yaml:1:9: listen: port 99999 is out of range (0..65535)");
    expect_net_error("listen: 0.0.0.0:123456789012\n",
                     "net.yaml:1:9: listen: port 123456789012 is out of range (0..65535)");
    expect_net_error("peer: c1:0\n", "net.yaml:1:7: peer: port 0 is out of range (1..65535)");
    expect_net_error("peer: c1\n", "net.yaml:1:7: peer: 'c1' is not host:port");
    expect_net_error("peer: ':24224'\n", "net.yaml:1:7: peer: ':24224' has no host");
    expect_net_error("peer: c1:http\n", "net.yaml:1:7: peer: port 'http' is not a number");
    expect_net_error("peer: 'fe80::1:80'\n",
                     "net.yaml:1:7: peer: 'fe80::1:80' is not host:port (an IPv6 address goes "
                     "in brackets: [::1]:24224)");
    expect_net_error("urls:\n  - http://ok:1\n  - ftp://x/\n",
                     "net.yaml:3:5: urls: 'ftp://x/' must start with http:// or https://");
    expect_net_error("urls: [ 'http://c2:70000' ]\n",
                     "net.yaml:1:9: urls: 'http://c2:70000' is not a URL like "
                     "http://host:port/path (port 1..65535)");
    expect_net_error("urls: [ 'http://c2:0/' ]\n",
                     "net.yaml:1:9: urls: port 0 of 'http://c2:0/' is out of range (1..65535)");
    expect_net_error("urls: c2:9800\n", "net.yaml:1:7: urls: 'c2:9800' must start with http:// "
                                        "or https://");
    expect_net_error("fmt: '%Y %Q'\n", "net.yaml:1:6: fmt: '%Y %Q': %Q is not a time conversion "
                                       "(known: %Y %m %d %H %M %S %z %b %e %L, ...)");
    expect_net_error("fmt: 'at %'\n", "net.yaml:1:6: fmt: 'at %': a lone % is not a time "
                                      "conversion (known: %Y %m %d %H %M %S %z %b %e %L, ...)");
}
END_TEST

START_TEST(test_secret_permissions)
{
    char key[PATH_MAX + 16], yaml[PATH_MAX + 32];
    struct lh_cfg_diag d;
    snprintf(key, sizeof key, "%s/key.pem", tmpdir);
    write_text(key, "secret");
    snprintf(yaml, sizeof yaml, "key: '%s'\n", key);
    ck_assert_int_eq(chmod(key, 0600), 0);
    ck_assert_int_eq(load_net(yaml, &d), 0);
    ck_assert_uint_eq(d.n_warnings, 0);
    lh_cfg_diag_free(&d);
    ck_assert_int_eq(chmod(key, 0644), 0);
    ck_assert_int_eq(load_net(yaml, &d), 0);
    ck_assert_uint_eq(d.n_warnings, 1);
    char want[2 * PATH_MAX];
    snprintf(want, sizeof want, "net.yaml:1:6: key: '%s' is readable by others (mode 0644): a "
             "secret should be 0600, owned by the daemon's user", key);
    ck_assert_str_eq(d.warnings[0], want);
    lh_cfg_diag_free(&d);
    ck_assert_int_eq(chmod(key, 0640), 0);
    ck_assert_int_eq(load_net(yaml, &d), 0);
    ck_assert_uint_eq(d.n_warnings, 1);
    ck_assert_ptr_nonnull(strstr(d.warnings[0], "readable by its group (mode 0640)"));
    lh_cfg_diag_free(&d);
}
END_TEST

/* ---- files and warnings --------------------------------------------- */

START_TEST(test_path_warnings)
{
    char exists[PATH_MAX + 32], yaml[6 * PATH_MAX];
    snprintf(exists, sizeof exists, "%s/ca.pem", tmpdir);
    write_text(exists, "x");
    snprintf(yaml, sizeof yaml,
             "paths: ['%s', '%s/missing.log', '%s/*.log']\n"
             "tls: {cert: '%s', ca: '%s/none/ca.pem'}\n",
             exists, tmpdir, tmpdir, exists, tmpdir);
    struct t_root r;
    struct lh_cfg_diag d = {0};
    ck_assert_int_eq(load(yaml, &r, &d), 0);
    ck_assert_uint_eq(d.n_warnings, 2);
    char want[3 * PATH_MAX];
    snprintf(want, sizeof want, "cfg.yaml:1:%zu: file '%s/missing.log' does not exist",
             strlen(exists) + 13, tmpdir);
    ck_assert_str_eq(d.warnings[0], want);
    snprintf(want, sizeof want, "cfg.yaml:2:%zu: file '%s/none/ca.pem' does not exist",
             strlen(exists) + 21, tmpdir);
    ck_assert_str_eq(d.warnings[1], want);
    ck_assert_str_eq(d.error, "");
    lh_cfg_free(&root_schema, &r);
    lh_cfg_diag_free(&d);
    ck_assert_uint_eq(d.n_warnings, 0);
    lh_cfg_diag_free(&d);
}
END_TEST

START_TEST(test_load_file)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/agent.yaml", tmpdir);
    struct t_root r = {0};
    struct lh_cfg_diag d = {0};
    ck_assert_int_eq(lh_cfg_load_file(path, &root_schema, &r, &d), LH_ENOENT);
    char want[2 * PATH_MAX];
    snprintf(want, sizeof want, "%s: cannot read config: no such file", path);
    ck_assert_str_eq(d.error, want);

    write_text(path, "paths: [a]\nport: 1\nport: 2\n");
    lh_cfg_diag_free(&d);
    ck_assert_int_eq(lh_cfg_load_file(path, &root_schema, &r, &d), LH_ECONFIG);
    snprintf(want, sizeof want, "%s:3:1: duplicate key 'port' in test config", path);
    ck_assert_str_eq(d.error, want);
    lh_cfg_free(&root_schema, &r);

    write_text(path, full_yaml);
    memset(&r, 0, sizeof r);
    lh_cfg_diag_free(&d);
    ck_assert_int_eq(lh_cfg_load_file(path, &root_schema, &r, &d), 0);
    ck_assert_uint_eq(r.outputs.n, 3);
    lh_cfg_free(&root_schema, &r);

    /* Over the 4 MiB cap: refused before parsing. */
    size_t big = (4u << 20) + 1;
    char *text = malloc(big + 1);
    ck_assert_ptr_nonnull(text);
    memset(text, '#', big);
    text[big] = '\0';
    write_text(path, text);
    lh_cfg_diag_free(&d);
    ck_assert_int_eq(lh_cfg_load_file(path, &root_schema, &r, &d), LH_ETOOBIG);
    snprintf(want, sizeof want, "%s: config is larger than 4 MiB", path);
    ck_assert_str_eq(d.error, want);
    ck_assert_int_eq(lh_cfg_load_string("s", text, big, &root_schema, &r, &d), LH_ETOOBIG);
    free(text);
    lh_cfg_diag_free(&d);
}
END_TEST

START_TEST(test_free_zeroed_and_twice)
{
    struct t_root r = {0};
    lh_cfg_free(&root_schema, &r);
    struct lh_cfg_diag d = {0};
    ck_assert_int_eq(load(full_yaml, &r, &d), 0);
    lh_cfg_free(&root_schema, &r);
    lh_cfg_free(&root_schema, &r);
    lh_cfg_free(&root_schema, NULL);
    lh_cfg_diag_free(&d);
}
END_TEST

START_TEST(test_error_api)
{
    struct lh_cfg_diag d = {.file = "f.yaml"};
    ck_assert_int_eq(lh_cfg_error(&d, 3, 7, "first %d", 1), LH_ECONFIG);
    ck_assert_int_eq(lh_cfg_error(&d, 4, 1, "second"), LH_ECONFIG);
    ck_assert_str_eq(d.error, "f.yaml:3:7: first 1");
    for (int i = 0; i < LH_CFG_MAX_WARNINGS + 5; i++)
        lh_cfg_warn(&d, i + 1, 1, "w%d", i);
    ck_assert_uint_eq(d.n_warnings, LH_CFG_MAX_WARNINGS);
    ck_assert_str_eq(d.warnings[2], "f.yaml:3:1: w2");
    lh_cfg_diag_free(&d);
}
END_TEST

START_TEST(test_nearest)
{
    const char *const words[] = {"collectors", "balance", "batch", "compress", "tls"};
    ck_assert_str_eq(lh_cfg_nearest("colectors", words, 5), "collectors");
    ck_assert_str_eq(lh_cfg_nearest("balanse", words, 5), "balance");
    ck_assert_str_eq(lh_cfg_nearest("tsl", words, 5), "tls");
    ck_assert_str_eq(lh_cfg_nearest("bacth", words, 5), "batch");
    ck_assert_ptr_null(lh_cfg_nearest("zzzzzz", words, 5));
    ck_assert_ptr_null(lh_cfg_nearest("x", words, 0));
    /* Long words allow len/3 edits. */
    ck_assert_str_eq(lh_cfg_nearest("kolectorz", words, 5), "collectors");
    ck_assert_ptr_null(lh_cfg_nearest("kolectoz", words, 5));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_valid_all_types);
    tcase_add_test(tc, test_face_checks);
    tcase_add_test(tc, test_secret_permissions);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_null_values_mean_absent);
    tcase_add_test(tc, test_present_flag);
    tcase_add_test(tc, test_empty_document);
    tcase_add_test(tc, test_units);
    tcase_add_test(tc, test_error_unknown_key);
    tcase_add_test(tc, test_error_plugins);
    tcase_add_test(tc, test_error_types);
    tcase_add_test(tc, test_error_bounds);
    tcase_add_test(tc, test_error_structure);
    tcase_add_test(tc, test_error_syntax);
    tcase_add_test(tc, test_error_validate);
    tcase_add_test(tc, test_aliases);
    tcase_add_test(tc, test_visit_cap);
    tcase_add_test(tc, test_depth_cap);
    tcase_add_test(tc, test_bad_default);
    tcase_add_test(tc, test_path_warnings);
    tcase_add_test(tc, test_load_file);
    tcase_add_test(tc, test_free_zeroed_and_twice);
    tcase_add_test(tc, test_error_api);
    tcase_add_test(tc, test_nearest);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(suite());
}
