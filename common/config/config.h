/* YAML configuration loaded into typed structs, driven by schema tables.
 *
 * A schema is a table of fields (key, type, offset into the struct, default,
 * bounds, help), like Fluent Bit's config map or nginx's command tables.
 * The loader walks a libyaml document against the schema: unknown keys,
 * wrong types and out-of-range values are errors reported as
 * "FILE:LINE:COL: message"; an unknown key names the nearest valid key.
 *
 * Ownership: every string, list and plugin item the loader allocates belongs
 * to the loaded struct and is released by lh_cfg_free() with the same schema. */
#ifndef LH_CONFIG_H
#define LH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lh_cfg_type {
    LH_CFG_STR,      /* char *, malloc'd; NULL when absent and no default */
    LH_CFG_BOOL,     /* bool: true/false/yes/no/on/off */
    LH_CFG_INT,      /* int64_t */
    LH_CFG_SIZE,     /* int64_t bytes: "64KiB", "2MiB", "1GiB", 512 */
    LH_CFG_DURATION, /* int64_t milliseconds: "200ms", "2s", "15m", "7d" */
    LH_CFG_ENUM,     /* int: index into enum_values */
    LH_CFG_STRLIST,  /* struct lh_strlist; a lone scalar counts as a 1-item list */
    LH_CFG_STRMAP,   /* struct lh_strmap: map of scalar -> scalar */
    LH_CFG_SECTION,  /* nested map into the embedded struct at offset (schema sub) */
    LH_CFG_PLUGINS,  /* struct lh_cfg_list: a sequence of maps, each with a `type`
                        key naming one of `plugins`; items are allocated */
};

enum {
    LH_CFG_F_REQUIRED = 1 << 0,  /* missing key is an error */
    LH_CFG_F_PATH = 1 << 1,      /* STR/STRLIST naming a file that should exist:
                                    missing is a warning, not an error */
    LH_CFG_F_SECRET = 1 << 2,    /* with F_PATH: a private key or token; readable by
                                    group or others is a warning */
};

/* A check of a STR value (each item of a STRLIST) on its face, without
 * looking at the machine: 0, or nonzero with why filled ("port 99999 is out
 * of range 1..65535"). The loader reports it at the value as
 * FILE:LINE:COL: KEY: WHY. */
typedef int (*lh_cfg_check_fn)(const char *value, char *why, size_t whylen);

struct lh_strlist {
    char **v;
    size_t n;
};

struct lh_strmap {
    char **keys;
    char **vals;
    size_t n;
};

struct lh_cfg_schema;

struct lh_cfg_plugin_type {
    const char *type;                  /* value of the `type` key */
    const struct lh_cfg_schema *schema; /* schema->size bytes are allocated */
};

struct lh_cfg_field {
    const char *key;
    enum lh_cfg_type type;
    size_t offset;
    const char *defval;                       /* default, parsed like a YAML scalar */
    const struct lh_cfg_schema *sub;          /* LH_CFG_SECTION */
    const char *const *enum_values;           /* LH_CFG_ENUM, NULL-terminated */
    const struct lh_cfg_plugin_type *plugins; /* LH_CFG_PLUGINS, {NULL} terminated */
    int64_t min, max;                         /* numeric bounds, checked when max > min */
    unsigned flags;                           /* LH_CFG_F_* */
    const char *help;
    lh_cfg_check_fn check;                    /* STR / STRLIST; NULL: none */
};

struct lh_cfg_diag;

struct lh_cfg_schema {
    const char *name;                 /* e.g. "forward output", used in messages */
    size_t size;                      /* sizeof the struct (plugin items) */
    const struct lh_cfg_field *fields; /* terminated by an entry with key NULL */
    /* Offset+1 of a bool set to true when the section appears in the file
     * (0: none). Lets `tls:` mean "on" while its absence means "off". */
    size_t present_offset1;
    /* Cross-field checks after the struct is filled; report with
     * lh_cfg_error() at (line, col) of the section. 0 or LH_ECONFIG. */
    int (*validate)(void *obj, struct lh_cfg_diag *d, int line, int col);
};

/* Every plugin item struct starts with this header. */
struct lh_cfg_item {
    struct lh_cfg_item *next;
    char *type;
    int line, col;                    /* position of the item in the file */
    const struct lh_cfg_schema *schema;
};

struct lh_cfg_list {
    struct lh_cfg_item *head;
    size_t n;
};

#define LH_CFG_MAX_WARNINGS 32

/* What a load reports: the first error (if any) and warnings. */
struct lh_cfg_diag {
    const char *file;                 /* name used in messages */
    char error[1024];                 /* "FILE:LINE:COL: message", or "" */
    char *warnings[LH_CFG_MAX_WARNINGS];
    size_t n_warnings;
};

/* Loads path into obj (zeroed by the caller, root->size bytes).
 * 0, or LH_ECONFIG / LH_ENOENT / LH_EIO with d->error filled. On error obj
 * may be half-filled: lh_cfg_free() it anyway. */
int lh_cfg_load_file(const char *path, const struct lh_cfg_schema *root, void *obj,
                     struct lh_cfg_diag *d);
/* Same from memory; name is used as FILE in messages. */
int lh_cfg_load_string(const char *name, const char *yaml, size_t len,
                       const struct lh_cfg_schema *root, void *obj, struct lh_cfg_diag *d);
/* Frees what the loader allocated inside obj (not obj itself). */
void lh_cfg_free(const struct lh_cfg_schema *root, void *obj);
void lh_cfg_diag_free(struct lh_cfg_diag *d);

/* For validate hooks: formats "FILE:LINE:COL: message" into d->error
 * (the first error wins) and returns LH_ECONFIG. */
int lh_cfg_error(struct lh_cfg_diag *d, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void lh_cfg_warn(struct lh_cfg_diag *d, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Checks for lh_cfg_field.check. "host:port" with a port of 1..65535, or
 * 0 (the kernel chooses) for listen addresses. */
int lh_cfg_check_hostport(const char *v, char *why, size_t whylen);
int lh_cfg_check_listen_hostport(const char *v, char *why, size_t whylen);
/* http:// or https:// URL with a host and, if given, a port in 1..65535. */
int lh_cfg_check_http_url(const char *v, char *why, size_t whylen);
/* A strftime/strptime pattern whose every % conversion is one glibc knows
 * (%% and %L, loghaul's fraction, included). */
int lh_cfg_check_time_pattern(const char *v, char *why, size_t whylen);

/* Levenshtein-nearest candidate to word within a small distance, or NULL. */
const char *lh_cfg_nearest(const char *word, const char *const *candidates, size_t n);

#endif
