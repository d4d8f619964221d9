/* grep and modify filters, loaded from the agent configuration, applied
 * through the transform with match on tags. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_config.h"
#include "agent/transform/transform.h"
#include "common/base/err.h"
#include "common/codec/record.h"
#include "lh_check.h"

static const char *const base_yaml =
    "agent: {name: t, data_dir: /nonexistent, http: \"\"}\n"
    "inputs: [{type: file, tag: app.web, paths: [/nonexistent/*.log], parser: logfmt}]\n"
    "outputs: [{type: null}]\n";

static struct lh_agent_config cfg;
static struct lh_cfg_diag diag;

static int load(const char *filters)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%sfilters:\n%s", base_yaml, filters);
    memset(&cfg, 0, sizeof cfg);
    memset(&diag, 0, sizeof diag);
    diag.file = "test.yaml";
    int rc = lh_cfg_load_string("test.yaml", yaml, strlen(yaml), &lh_agent_config_schema, &cfg,
                                &diag);
    return rc;
}

static void unload(void)
{
    lh_agent_config_free(&cfg);
    lh_cfg_diag_free(&diag);
}

struct run {
    struct lh_transform *t;
    struct lh_recbuilder rb;
    msgpack_sbuffer sb;
    msgpack_unpacked u;
};

static void run_open(struct run *r, const char *tag, int parser)
{
    static struct lh_tx_cfg c;
    c = (struct lh_tx_cfg){.parser = parser, .keep_raw = true};
    char err[256] = "";
    ck_assert_msg(lh_transform_new(&c, tag, &cfg.filters, NULL, &r->t, err,
                                   sizeof err) == 0, "%s", err);
    lh_rb_init(&r->rb);
    msgpack_sbuffer_init(&r->sb);
    msgpack_unpacked_init(&r->u);
}

/* Runs one line; NULL when a filter dropped it, else the record map. */
static const msgpack_object *line(struct run *r, const char *s)
{
    struct lh_tx_line l = {s, strlen(s), "h", 1, "/x.log", 6, false};
    int64_t ns = 0;
    if (!lh_transform_line(r->t, &r->rb, &l, &ns))
        return NULL;
    r->sb.size = 0;
    ck_assert_int_eq(lh_rb_pack(&r->sb, &r->rb), 0);
    size_t off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&r->u, r->sb.data, r->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    return &r->u.data;
}

static void run_close(struct run *r)
{
    msgpack_unpacked_destroy(&r->u);
    msgpack_sbuffer_destroy(&r->sb);
    lh_rb_free(&r->rb);
    lh_transform_free(r->t);
}

static void assert_str(const msgpack_object *map, const char *key, const char *want)
{
    const msgpack_object *o = lh_map_get(map, key);
    ck_assert_msg(o != NULL, "no field %s", key);
    const char *p;
    size_t n;
    ck_assert(lh_obj_bytes(o, &p, &n));
    ck_assert_msg(n == strlen(want) && memcmp(p, want, n) == 0, "%s: got %.*s want %s", key,
                  (int)n, p, want);
}

START_TEST(grep_exclude_and_include)
{
    ck_assert_int_eq(load("  - {type: grep, match: \"app.*\", exclude: {field: message, "
                          "regex: 'healthcheck'}}\n"
                          "  - {type: grep, match: \"app.*\", include: {field: status, "
                          "regex: '^[45]'}}\n"),
                     0);
    struct run r;
    run_open(&r, "app.web", LH_PARSER_LOGFMT);
    ck_assert_ptr_null(line(&r, "status=500 path=/healthcheck"));
    ck_assert_ptr_null(line(&r, "status=200 path=/"));
    ck_assert_ptr_null(line(&r, "no status at all"));   /* include needs the field */
    const msgpack_object *m = line(&r, "status=404 path=/missing");
    ck_assert_ptr_nonnull(m);
    assert_str(m, "path", "/missing");
    ck_assert_uint_eq(lh_transform_filtered(r.t), 3);
    run_close(&r);
    unload();
}
END_TEST

START_TEST(grep_matches_numbers)
{
    ck_assert_int_eq(load("  - {type: grep, include: {field: code, regex: '^5\\d\\d$'}}\n"), 0);
    struct run r;
    run_open(&r, "any", LH_PARSER_JSON);
    ck_assert_ptr_nonnull(line(&r, "{\"code\":503}"));
    ck_assert_ptr_null(line(&r, "{\"code\":200}"));
    ck_assert_ptr_null(line(&r, "{\"code\":{\"nested\":500}}"));
    run_close(&r);
    unload();
}
END_TEST

START_TEST(grep_match_on_tag)
{
    ck_assert_int_eq(load("  - {type: grep, match: \"nginx.*\", exclude: {field: message, "
                          "regex: 'x'}}\n"),
                     0);
    struct run r;
    run_open(&r, "app.web", LH_PARSER_NONE);
    ck_assert_ptr_nonnull(line(&r, "xxx"));
    run_close(&r);
    run_open(&r, "nginx.access", LH_PARSER_NONE);
    ck_assert_ptr_null(line(&r, "xxx"));
    run_close(&r);
    unload();
}
END_TEST

START_TEST(modify_set_remove_rename)
{
    ck_assert_int_eq(load("  - {type: modify, match: \"*\", set: {env: prod}, remove: [pid], "
                          "rename: {msg: message, lvl: level}}\n"),
                     0);
    struct run r;
    run_open(&r, "app.web", LH_PARSER_LOGFMT);
    const msgpack_object *m = line(&r, "pid=42 msg=hello lvl=info");
    ck_assert_ptr_nonnull(m);
    assert_str(m, "env", "prod");
    assert_str(m, "message", "hello"); /* replaced the raw line */
    assert_str(m, "level", "info");
    assert_str(m, "host", "h");
    ck_assert_ptr_null(lh_map_get(m, "pid"));
    ck_assert_ptr_null(lh_map_get(m, "msg"));
    ck_assert_ptr_null(lh_map_get(m, "lvl"));
    ck_assert_uint_eq(m->via.map.size, 5); /* message host source env level */
    /* Fields absent from the record: nothing to remove or rename. */
    m = line(&r, "a=1");
    assert_str(m, "env", "prod");
    assert_str(m, "message", "a=1");
    run_close(&r);
    unload();
}
END_TEST

START_TEST(config_errors)
{
    ck_assert_int_eq(load("  - {type: grep, match: \"*\"}\n"), LH_ECONFIG);
    ck_assert_ptr_nonnull(strstr(diag.error, "include or exclude"));
    unload();
    ck_assert_int_eq(load("  - {type: grep, exclude: {field: message, regex: '(['}}\n"),
                     LH_ECONFIG);
    ck_assert_ptr_nonnull(strstr(diag.error, "regex"));
    unload();
    ck_assert_int_eq(load("  - {type: modify}\n"), LH_ECONFIG);
    ck_assert_ptr_nonnull(strstr(diag.error, "set, remove or rename"));
    unload();
    ck_assert_int_eq(load("  - {type: sed}\n"), LH_ECONFIG);
    unload();
}
END_TEST

START_TEST(input_parser_keys)
{
    const char *yaml = "agent: {name: t, data_dir: /nonexistent, http: \"\"}\n"
                       "inputs: [{type: file, tag: a, paths: [/x], parser: regex}]\n"
                       "outputs: [{type: null}]\n";
    memset(&cfg, 0, sizeof cfg);
    memset(&diag, 0, sizeof diag);
    ck_assert_int_eq(lh_cfg_load_string("t.yaml", yaml, strlen(yaml), &lh_agent_config_schema,
                                        &cfg, &diag),
                     LH_ECONFIG);
    ck_assert_ptr_nonnull(strstr(diag.error, "named groups"));
    unload();
    yaml = "agent: {name: t, data_dir: /nonexistent, http: \"\"}\n"
           "inputs: [{type: file, tag: a, paths: [/x], parser: json, time_key: ts, "
           "time_format: epoch_ms, keep_raw: false}]\n"
           "outputs: [{type: null}]\n";
    memset(&cfg, 0, sizeof cfg);
    memset(&diag, 0, sizeof diag);
    ck_assert_int_eq(lh_cfg_load_string("t.yaml", yaml, strlen(yaml), &lh_agent_config_schema,
                                        &cfg, &diag),
                     0);
    unload();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("filters");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, grep_exclude_and_include);
    tcase_add_test(tc, grep_matches_numbers);
    tcase_add_test(tc, grep_match_on_tag);
    tcase_add_test(tc, modify_set_remove_rename);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, input_parser_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(suite());
}
