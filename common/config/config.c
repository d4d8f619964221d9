/* Schema-driven YAML loader: libyaml builds the document tree, then one
 * small setter per field type fills the struct the schema describes. */
#include "common/config/config.h"
#include "common/config/config_int.h"
#include "common/base/err.h"
#include "common/base/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define CFG_MAX_BYTES (4u << 20)
#define CFG_MAX_DEPTH 64
/* Aliases let a few bytes expand into an exponential tree ("billion
 * laughs"); a config never needs this many nodes. */
#define CFG_MAX_VISITS 100000
/* Duplicate keys of a string map are found by a linear scan. */
#define CFG_MAX_MAP_ENTRIES 4096

/* Setter result: the value was null, so the field stays absent. */
#define SET_ABSENT 1

struct loader {
    struct lh_cfg_diag *d;
    size_t visits;
    const struct lh_cfg_field *defaulting; /* field whose default is being parsed */
    const struct lh_cfg_schema *def_schema;
};

/* One mapping being loaded against one schema. */
struct scope {
    const struct lh_cfg_schema *schema;
    void *obj;
    yaml_document_t *doc;
    yaml_node_t *node;       /* NULL: absent, defaults only */
    const char *skip_key;    /* `type` of a plugin item, handled by the caller */
    int depth, line, col;
    bool optional_absent;    /* absent section with a present flag: no checks */
};

typedef int (*setter_fn)(struct loader *l, const struct lh_cfg_field *f, yaml_document_t *doc,
                         yaml_node_t *n, void *slot, int depth);

static int load_mapping(struct loader *l, const struct scope *s);


/* Reports at node n; while a schema default is parsed, the message names
 * the field instead, since a bad default is a bug in the schema. */
__attribute__((format(printf, 3, 4))) static int fail_at(struct loader *l, const yaml_node_t *n,
                                                         const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (l->defaulting)
        return lh_cfg_error(l->d, 0, 0, "bad default for '%s' in %s schema: %s",
                            l->defaulting->key, l->def_schema->name, msg);
    return lh_cfg_error(l->d, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1, "%s",
                        msg);
}


/* ---- node helpers --------------------------------------------------- */

static const char *kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
           !strcmp(v, "NULL");
}

static int expect_kind(struct loader *l, const yaml_node_t *n, yaml_node_type_t kind,
                       const char *key, const char *what)
{
    if (n->type == kind)
        return 0;
    return fail_at(l, n, "%s: expected %s, got %s", key, what, kind_name(n));
}

/* The text of a scalar node; NUL bytes inside would silently cut it. */
static int scalar(struct loader *l, const yaml_node_t *n, const char *key, const char **out)
{
    *out = NULL; /* set on every path, so optimisers see it initialised */
    int rc = expect_kind(l, n, YAML_SCALAR_NODE, key, "a scalar");
    if (rc)
        return rc;
    const char *v = (const char *)n->data.scalar.value;
    if (strlen(v) != n->data.scalar.length)
        return fail_at(l, n, "%s: value contains a NUL byte", key);
    *out = v;
    return 0;
}

static int visit(struct loader *l, const yaml_node_t *n)
{
    if (++l->visits <= CFG_MAX_VISITS)
        return 0;
    return fail_at(l, n, "document too large: more than %d nodes (after expanding aliases)",
                   CFG_MAX_VISITS);
}

static void check_path(struct loader *l, const struct lh_cfg_field *f, const yaml_node_t *n,
                       const char *path)
{
    if (!l->defaulting)
        lh_cfg_check_file(l->d, f, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1,
                          path);
}

static int check_face(struct loader *l, const struct lh_cfg_field *f, const yaml_node_t *n,
                      const char *v)
{
    char why[512];
    if (!f->check || f->check(v, why, sizeof why) == 0)
        return 0;
    return fail_at(l, n, "%s: %s", f->key, why);
}

/* ---- bounds --------------------------------------------------------- */

struct unit_name {
    const char *name;
    int64_t mult;
};

static const struct unit_name size_units[] = {
    {"TiB", 1LL << 40}, {"GiB", 1LL << 30}, {"MiB", 1LL << 20}, {"KiB", 1LL << 10}, {NULL, 0}};
static const struct unit_name duration_units[] = {
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}, {NULL, 0}};

/* v in the largest unit that divides it exactly ("64KiB", "15m"). */
static const char *fmt_units(char *buf, size_t cap, int64_t v, const struct unit_name *units)
{
    for (const struct unit_name *u = units; units && u->name; u++) {
        if (v != 0 && v % u->mult == 0) {
            snprintf(buf, cap, "%lld%s", (long long)(v / u->mult), u->name);
            return buf;
        }
    }
    snprintf(buf, cap, "%lld", (long long)v);
    return buf;
}

static int check_bounds(struct loader *l, const struct lh_cfg_field *f, const yaml_node_t *n,
                        int64_t v, const char *raw, const struct unit_name *units)
{
    if (f->max <= f->min || (v >= f->min && v <= f->max))
        return 0;
    char lo[32], hi[32];
    return fail_at(l, n, "%s: value %s out of range (%s..%s)", f->key, raw,
                   fmt_units(lo, sizeof lo, f->min, units),
                   fmt_units(hi, sizeof hi, f->max, units));
}

/* ---- setters -------------------------------------------------------- */

static int set_str(struct loader *l, const struct lh_cfg_field *f, yaml_document_t *doc,
                   yaml_node_t *n, void *slot, int depth)
{
    const char *v;
    int rc = scalar(l, n, f->key, &v);
    if (rc == 0)
        rc = check_face(l, f, n, v);
    if (rc)
        return rc;
    char *copy = strdup(v);
    if (!copy)
        return fail_at(l, n, "%s: out of memory", f->key);
    *(char **)slot = copy;
    if (f->flags & LH_CFG_F_PATH)
        check_path(l, f, n, copy);
    return 0;
}

static int set_bool(struct loader *l, const struct lh_cfg_field *f, yaml_document_t *doc,
                    yaml_node_t *n, void *slot, int depth)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    const char *v;
    int rc = scalar(l, n, f->key, &v);
    if (rc)
        return rc;
    for (size_t i = 0; i < 3; i++) {
        if (!strcasecmp(v, yes[i]) || !strcasecmp(v, no[i])) {
            *(bool *)slot = !strcasecmp(v, yes[i]);
            return 0;
        }
    }
    return fail_at(l, n, "%s: expected true or false, got '%s'", f->key, v);
}

static int set_int(struct loader *l, const struct lh_cfg_field *f, yaml_document_t *doc,
                   yaml_node_t *n, void *slot, int depth)
{
    const char *v;
    int rc = scalar(l, n, f->key, &v);
    if (rc)
        return rc;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end != '\0' || isspace((unsigned char)*v))
        return fail_at(l, n, "%s: expected an integer, got '%s'", f->key, v);
    if (errno == ERANGE)
        return fail_at(l, n, "%s: integer '%s' is too large", f->key, v);
    rc = check_bounds(l, f, n, x, v, NULL);
    if (rc == 0)
        *(int64_t *)slot = x;
    return rc;
}

/* Sizes and durations differ only in their parser, words and units. */
struct scaled_kind {
    int (*parse)(const char *s, int64_t *out);
    const char *noun;     /* "size" */
    const char *too_big;  /* "is too large" */
    const char *examples; /* "64KiB or 2MiB" */
    const struct unit_name *units;
};

static int set_scaled(struct loader *l, const struct lh_cfg_field *f, yaml_node_t *n, void *slot,
                      const struct scaled_kind *k)
{
    const char *v;
    int64_t x;
    int rc = scalar(l, n, f->key, &v);
    if (rc)
        return rc;
    rc = k->parse(v, &x);
    if (rc == LH_ETOOBIG)
        return fail_at(l, n, "%s: %s '%s' %s", f->key, k->noun, v, k->too_big);
    if (rc)
        return fail_at(l, n, "%s: expected a %s like %s, got '%s'", f->key, k->noun,
                       k->examples, v);
    rc = check_bounds(l, f, n, x, v, k->units);
    if (rc == 0)
        *(int64_t *)slot = x;
    return rc;
}

static int set_size(struct loader *l, const struct lh_cfg_field *f, yaml_document_t *doc,
                    yaml_node_t *n, void *slot, int depth)
{
    static const struct scaled_kind k = {lh_parse_size, "size", "is too large",
                                         "64KiB or 2MiB", size_units};
    return set_scaled(l, f, n, slot, &k);
}

static int set_duration(struct loader *l, const struct lh_cfg_field *f, yaml_document_t *doc,
                        yaml_node_t *n, void *slot, int depth)
{
    static const struct scaled_kind k = {lh_parse_duration, "duration", "is too long",
                                         "200ms, 2s or 15m", duration_units};
    return set_scaled(l, f, n, slot, &k);
}

static int set_enum(struct loader *l, const struct lh_cfg_field *f, yaml_document_t *doc,
                    yaml_node_t *n, void *slot, int depth)
{
    const char *v;
    int rc = scalar(l, n, f->key, &v);
    if (rc)
        return rc;
    size_t count = 0;
    for (; f->enum_values && f->enum_values[count]; count++) {
        if (!strcasecmp(v, f->enum_values[count])) {
            *(int *)slot = (int)count;
            return 0;
        }
    }
    char list[512], near[300];
    return fail_at(l, n, "%s: unknown value '%s', expected one of: %s%s", f->key, v,
                   lh_cfg_join(list, sizeof list, f->enum_values, count),
                   lh_cfg_hint(near, sizeof near, v, f->enum_values, count));
}

static int strlist_add(struct loader *l, const struct lh_cfg_field *f, struct lh_strlist *sl,
                       const yaml_node_t *n)
{
    const char *v;
    int rc = visit(l, n);
    if (rc == 0)
        rc = scalar(l, n, f->key, &v);
    if (rc == 0)
        rc = check_face(l, f, n, v);
    if (rc)
        return rc;
    if (!(sl->v[sl->n] = strdup(v)))
        return fail_at(l, n, "%s: out of memory", f->key);
    sl->n++;
    if (f->flags & LH_CFG_F_PATH)
        check_path(l, f, n, v);
    return 0;
}

static int set_strlist(struct loader *l, const struct lh_cfg_field *f, yaml_document_t *doc,
                       yaml_node_t *n, void *slot, int depth)
{
    struct lh_strlist *sl = slot;
    size_t count = n->type == YAML_SEQUENCE_NODE
                       ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)
                       : 1;
    if (n->type == YAML_MAPPING_NODE)
        return fail_at(l, n, "%s: expected a list, got a mapping", f->key);
    if (!(sl->v = calloc(count ? count : 1, sizeof *sl->v)))
        return fail_at(l, n, "%s: out of memory", f->key);
    if (n->type == YAML_SCALAR_NODE)
        return strlist_add(l, f, sl, n);
    for (size_t i = 0; i < count; i++) {
        int rc = strlist_add(l, f, sl,
                             yaml_document_get_node(doc, n->data.sequence.items.start[i]));
        if (rc)
            return rc;
    }
    return 0;
}

static int strmap_add(struct loader *l, const struct lh_cfg_field *f, struct lh_strmap *m,
                      yaml_document_t *doc, const yaml_node_pair_t *p)
{
    const yaml_node_t *kn = yaml_document_get_node(doc, p->key);
    const yaml_node_t *vn = yaml_document_get_node(doc, p->value);
    const char *k, *v = "";
    int rc = visit(l, kn);
    if (rc == 0)
        rc = scalar(l, kn, f->key, &k);
    if (rc == 0 && !is_null(vn))
        rc = scalar(l, vn, f->key, &v);
    if (rc)
        return rc;
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->keys[i], k))
            return fail_at(l, kn, "%s: duplicate key '%s'", f->key, k);
    char *kc = strdup(k), *vc = strdup(v);
    if (!kc || !vc) {
        free(kc);
        free(vc);
        return fail_at(l, kn, "%s: out of memory", f->key);
    }
    m->keys[m->n] = kc;
    m->vals[m->n++] = vc;
    return 0;
}

static int set_strmap(struct loader *l, const struct lh_cfg_field *f, yaml_document_t *doc,
                      yaml_node_t *n, void *slot, int depth)
{
    struct lh_strmap *m = slot;
    int rc = expect_kind(l, n, YAML_MAPPING_NODE, f->key, "a mapping");
    if (rc)
        return rc;
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (count > CFG_MAX_MAP_ENTRIES)
        return fail_at(l, n, "%s: more than %d entries", f->key, CFG_MAX_MAP_ENTRIES);
    m->keys = calloc(count ? count : 1, sizeof *m->keys);
    m->vals = calloc(count ? count : 1, sizeof *m->vals);
    if (!m->keys || !m->vals)
        return fail_at(l, n, "%s: out of memory", f->key);
    for (size_t i = 0; i < count && rc == 0; i++)
        rc = strmap_add(l, f, m, doc, &n->data.mapping.pairs.start[i]);
    return rc;
}

static int set_section(struct loader *l, const struct lh_cfg_field *f, yaml_document_t *doc,
                       yaml_node_t *n, void *slot, int depth)
{
    /* `tls:` with no value still turns the section on. */
    bool empty = is_null(n);
    if (!empty) {
        int rc = expect_kind(l, n, YAML_MAPPING_NODE, f->key, "a mapping");
        if (rc)
            return rc;
    }
    if (f->sub->present_offset1)
        *(bool *)((char *)slot + f->sub->present_offset1 - 1) = true;
    struct scope s = {.schema = f->sub, .obj = slot, .doc = doc, .node = empty ? NULL : n,
                      .depth = depth + 1, .line = (int)n->start_mark.line + 1,
                      .col = (int)n->start_mark.column + 1};
    return load_mapping(l, &s);
}

/* The `type` value node of a plugin item, or NULL after an error. */
static yaml_node_t *plugin_type_node(struct loader *l, const char *kind, yaml_document_t *doc,
                                     yaml_node_t *item)
{
    yaml_node_t *found = NULL;
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k->type != YAML_SCALAR_NODE || strcmp((const char *)k->data.scalar.value, "type"))
            continue;
        if (found) {
            fail_at(l, k, "duplicate key 'type' in %s", kind);
            return NULL;
        }
        found = yaml_document_get_node(doc, p->value);
    }
    if (!found)
        fail_at(l, item, "missing key 'type' in %s", kind);
    return found;
}

static const struct lh_cfg_plugin_type *plugin_lookup(struct loader *l,
                                                      const struct lh_cfg_field *f,
                                                      const char *kind, const yaml_node_t *tn,
                                                      const char *type)
{
    const char *names[64];
    size_t count = 0;
    for (const struct lh_cfg_plugin_type *p = f->plugins; p && p->type; p++) {
        if (!strcmp(p->type, type))
            return p;
        if (count < sizeof names / sizeof names[0])
            names[count++] = p->type;
    }
    char list[512], near[300];
    if (count == 0)
        fail_at(l, tn, "unknown %s type '%s' (this build has no %s types)", kind, type, kind);
    else if (lh_cfg_nearest(type, names, count))
        fail_at(l, tn, "unknown %s type '%s'%s", kind, type,
                lh_cfg_hint(near, sizeof near, type, names, count));
    else
        fail_at(l, tn, "unknown %s type '%s' (known types: %s)", kind, type,
                lh_cfg_join(list, sizeof list, names, count));
    return NULL;
}

static int plugin_item(struct loader *l, const struct lh_cfg_field *f, const char *kind,
                       yaml_document_t *doc, yaml_node_t *item, struct lh_cfg_item **tail,
                       struct lh_cfg_list *list, int depth)
{
    const char *type;
    int rc = visit(l, item);
    if (rc == 0)
        rc = expect_kind(l, item, YAML_MAPPING_NODE, f->key, "a mapping for each item");
    if (rc)
        return rc;
    yaml_node_t *tn = plugin_type_node(l, kind, doc, item);
    if (!tn || scalar(l, tn, "type", &type))
        return LH_ECONFIG;
    const struct lh_cfg_plugin_type *pt = plugin_lookup(l, f, kind, tn, type);
    if (!pt)
        return LH_ECONFIG;
    if (pt->schema->size < sizeof(struct lh_cfg_item))
        return fail_at(l, item, "%s schema is smaller than its item header", pt->schema->name);
    struct lh_cfg_item *it = calloc(1, pt->schema->size);
    if (!it || !(it->type = strdup(type))) {
        free(it);
        return fail_at(l, item, "%s: out of memory", f->key);
    }
    it->line = (int)item->start_mark.line + 1;
    it->col = (int)item->start_mark.column + 1;
    it->schema = pt->schema;
    /* Linked before loading so lh_cfg_free() finds a half-filled item. */
    *tail = it;
    list->n++;
    struct scope s = {.schema = pt->schema, .obj = it, .doc = doc, .node = item,
                      .skip_key = "type", .depth = depth + 1, .line = it->line, .col = it->col};
    return load_mapping(l, &s);
}

static int set_plugins(struct loader *l, const struct lh_cfg_field *f, yaml_document_t *doc,
                       yaml_node_t *n, void *slot, int depth)
{
    struct lh_cfg_list *list = slot;
    int rc = expect_kind(l, n, YAML_SEQUENCE_NODE, f->key, "a list");
    if (rc)
        return rc;
    /* "outputs" -> "output" for messages. */
    char kind[64];
    snprintf(kind, sizeof kind, "%s", f->key);
    size_t kl = strlen(kind);
    if (kl > 1 && kind[kl - 1] == 's')
        kind[kl - 1] = '\0';
    struct lh_cfg_item **tail = &list->head;
    while (*tail)
        tail = &(*tail)->next;
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
         i++) {
        rc = plugin_item(l, f, kind, doc, yaml_document_get_node(doc, *i), tail, list, depth);
        if (*tail)
            tail = &(*tail)->next;
        if (rc)
            return rc;
    }
    return 0;
}

struct type_ops {
    setter_fn set;
    void (*release)(const struct lh_cfg_field *f, void *slot);
};

static void free_str(const struct lh_cfg_field *f, void *slot)
{
    free(*(char **)slot);
    *(char **)slot = NULL;
}

static void free_strlist(const struct lh_cfg_field *f, void *slot)
{
    struct lh_strlist *sl = slot;
    for (size_t i = 0; sl->v && i < sl->n; i++)
        free(sl->v[i]);
    free(sl->v);
    sl->v = NULL;
    sl->n = 0;
}

static void free_strmap(const struct lh_cfg_field *f, void *slot)
{
    struct lh_strmap *m = slot;
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->vals[i]);
    }
    free(m->keys);
    free(m->vals);
    m->keys = m->vals = NULL;
    m->n = 0;
}

static void free_section(const struct lh_cfg_field *f, void *slot)
{
    lh_cfg_free(f->sub, slot);
}

static void free_plugins(const struct lh_cfg_field *f, void *slot)
{
    struct lh_cfg_list *list = slot;
    struct lh_cfg_item *it = list->head;
    while (it) {
        struct lh_cfg_item *next = it->next;
        lh_cfg_free(it->schema, it);
        free(it->type);
        free(it);
        it = next;
    }
    list->head = NULL;
    list->n = 0;
}

static const struct type_ops type_ops[] = {
    [LH_CFG_STR] = {set_str, free_str},
    [LH_CFG_BOOL] = {set_bool, NULL},
    [LH_CFG_INT] = {set_int, NULL},
    [LH_CFG_SIZE] = {set_size, NULL},
    [LH_CFG_DURATION] = {set_duration, NULL},
    [LH_CFG_ENUM] = {set_enum, NULL},
    [LH_CFG_STRLIST] = {set_strlist, free_strlist},
    [LH_CFG_STRMAP] = {set_strmap, free_strmap},
    [LH_CFG_SECTION] = {set_section, free_section},
    [LH_CFG_PLUGINS] = {set_plugins, free_plugins},
};

static const struct type_ops *ops_of(const struct lh_cfg_field *f)
{
    if ((size_t)f->type >= sizeof type_ops / sizeof type_ops[0])
        return NULL;
    return &type_ops[f->type];
}

/* 0, SET_ABSENT (null value) or LH_ECONFIG. */
static int set_field(struct loader *l, const struct lh_cfg_field *f, yaml_document_t *doc,
                     yaml_node_t *n, void *obj, int depth)
{
    const struct type_ops *ops = ops_of(f);
    if (!ops || !ops->set)
        return fail_at(l, n, "%s: unsupported field type %d", f->key, (int)f->type);
    if (f->type != LH_CFG_SECTION && is_null(n))
        return SET_ABSENT;
    return ops->set(l, f, doc, n, (char *)obj + f->offset, depth);
}

/* ---- mappings ------------------------------------------------------- */

enum { F_SEEN = 1, F_SET = 2 };

static size_t field_count(const struct lh_cfg_schema *schema)
{
    size_t n = 0;
    while (schema->fields && schema->fields[n].key)
        n++;
    return n;
}

static int unknown_key(struct loader *l, const struct scope *s, const yaml_node_t *kn,
                       const char *key)
{
    size_t n = field_count(s->schema);
    const char **names = calloc(n ? n : 1, sizeof *names);
    if (!names)
        return fail_at(l, kn, "out of memory");
    for (size_t i = 0; i < n; i++)
        names[i] = s->schema->fields[i].key;
    char near[300];
    lh_cfg_hint(near, sizeof near, key, names, n);
    free(names);
    return fail_at(l, kn, "unknown key '%s' in %s%s", key, s->schema->name, near);
}

static int load_pair(struct loader *l, const struct scope *s, const yaml_node_pair_t *p,
                     unsigned char *flags)
{
    yaml_node_t *kn = yaml_document_get_node(s->doc, p->key);
    const char *key;
    int rc = visit(l, kn);
    if (rc == 0 && kn->type != YAML_SCALAR_NODE)
        rc = fail_at(l, kn, "expected a key, got %s", kind_name(kn));
    if (rc == 0)
        rc = scalar(l, kn, "key", &key);
    if (rc)
        return rc;
    if (s->skip_key && !strcmp(key, s->skip_key))
        return 0;
    const struct lh_cfg_field *f = s->schema->fields;
    size_t i = 0;
    while (f && f[i].key && strcmp(f[i].key, key))
        i++;
    if (!f || !f[i].key)
        return unknown_key(l, s, kn, key);
    if (flags[i] & F_SEEN)
        return fail_at(l, kn, "duplicate key '%s' in %s", key, s->schema->name);
    flags[i] |= F_SEEN;
    rc = set_field(l, &f[i], s->doc, yaml_document_get_node(s->doc, p->value), s->obj, s->depth);
    if (rc == 0)
        flags[i] |= F_SET;
    return rc < 0 ? rc : 0;
}

static int apply_default(struct loader *l, const struct scope *s, const struct lh_cfg_field *f)
{
    yaml_node_t fake = {.type = YAML_SCALAR_NODE};
    fake.data.scalar.value = (yaml_char_t *)(uintptr_t)f->defval;
    fake.data.scalar.length = strlen(f->defval);
    fake.data.scalar.style = YAML_PLAIN_SCALAR_STYLE;
    l->defaulting = f;
    l->def_schema = s->schema;
    int rc = set_field(l, f, s->doc, &fake, s->obj, s->depth);
    l->defaulting = NULL;
    return rc < 0 ? rc : 0;
}

static int apply_defaults(struct loader *l, const struct scope *s, const unsigned char *flags)
{
    const struct lh_cfg_field *f = s->schema->fields;
    for (size_t i = 0; f && f[i].key; i++) {
        int rc = 0;
        if (flags[i] & F_SET)
            continue;
        if ((f[i].flags & LH_CFG_F_REQUIRED) && !s->optional_absent)
            return lh_cfg_error(l->d, s->line, s->col, "missing required key '%s' in %s",
                                f[i].key, s->schema->name);
        if (f[i].type == LH_CFG_SECTION) {
            /* Absent sections still get their defaults (batch.max_records). */
            struct scope sub = {.schema = f[i].sub, .obj = (char *)s->obj + f[i].offset,
                                .doc = s->doc, .depth = s->depth + 1, .line = s->line,
                                .col = s->col,
                                .optional_absent = s->optional_absent ||
                                                   f[i].sub->present_offset1 != 0};
            rc = load_mapping(l, &sub);
        } else if (f[i].defval) {
            rc = apply_default(l, s, &f[i]);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int load_mapping(struct loader *l, const struct scope *s)
{
    if (s->depth > CFG_MAX_DEPTH)
        return lh_cfg_error(l->d, s->line, s->col, "nesting deeper than %d levels",
                            CFG_MAX_DEPTH);
    size_t nf = field_count(s->schema);
    unsigned char *flags = calloc(nf ? nf : 1, 1);
    if (!flags)
        return lh_cfg_error(l->d, s->line, s->col, "out of memory");
    int rc = 0;
    if (s->node) {
        for (yaml_node_pair_t *p = s->node->data.mapping.pairs.start;
             rc == 0 && p < s->node->data.mapping.pairs.top; p++)
            rc = load_pair(l, s, p, flags);
    }
    if (rc == 0)
        rc = apply_defaults(l, s, flags);
    free(flags);
    if (rc == 0 && s->schema->validate && !s->optional_absent) {
        rc = s->schema->validate(s->obj, l->d, s->line, s->col);
        if (rc)
            rc = lh_cfg_error(l->d, s->line, s->col, "invalid %s", s->schema->name);
    }
    return rc;
}

/* ---- entry points --------------------------------------------------- */

static int syntax_error(struct lh_cfg_diag *d, const yaml_parser_t *p, const char *yaml,
                        size_t len)
{
    size_t line = p->problem_mark.line, col = p->problem_mark.column;
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark. */
        line = col = 0;
        for (size_t i = 0; i < p->problem_offset && i < len; i++, col++) {
            if (yaml[i] == '\n') {
                line++;
                col = (size_t)-1;
            }
        }
    }
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->context)
        return lh_cfg_error(d, (int)line + 1, (int)col + 1, "%s (%s)", problem, p->context);
    return lh_cfg_error(d, (int)line + 1, (int)col + 1, "%s", problem);
}

/* Parses the single document of yaml into doc; a second one is refused. */
static int parse_document(struct lh_cfg_diag *d, const char *yaml, size_t len,
                          yaml_document_t *doc)
{
    yaml_parser_t p;
    yaml_document_t next;
    int rc = 0;
    if (!yaml_parser_initialize(&p))
        return lh_cfg_error(d, 0, 0, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&p, doc)) {
        rc = syntax_error(d, &p, yaml, len);
        goto out;
    }
    if (!yaml_parser_load(&p, &next)) {
        rc = syntax_error(d, &p, yaml, len);
        yaml_document_delete(doc);
        goto out;
    }
    yaml_node_t *extra = yaml_document_get_root_node(&next);
    if (extra) {
        rc = lh_cfg_error(d, (int)extra->start_mark.line + 1, (int)extra->start_mark.column + 1,
                          "only one YAML document is allowed");
        yaml_document_delete(doc);
    }
    yaml_document_delete(&next);
out:
    yaml_parser_delete(&p);
    return rc;
}

int lh_cfg_load_string(const char *name, const char *yaml, size_t len,
                       const struct lh_cfg_schema *root, void *obj, struct lh_cfg_diag *d)
{
    d->file = name;
    d->error[0] = '\0';
    if (len > CFG_MAX_BYTES) {
        lh_cfg_error(d, 0, 0, "config is larger than %u MiB", CFG_MAX_BYTES >> 20);
        return LH_ETOOBIG;
    }
    yaml_document_t doc;
    int rc = parse_document(d, yaml, len, &doc);
    if (rc)
        return rc;
    struct loader l = {.d = d};
    yaml_node_t *top = yaml_document_get_root_node(&doc);
    struct scope s = {.schema = root, .obj = obj, .doc = &doc, .node = top, .line = 1, .col = 1};
    if (top && is_null(top)) {
        s.node = NULL;
    } else if (top) {
        s.line = (int)top->start_mark.line + 1;
        s.col = (int)top->start_mark.column + 1;
        if (top->type != YAML_MAPPING_NODE)
            rc = fail_at(&l, top, "expected a mapping at the top level, got %s",
                         kind_name(top));
    }
    if (rc == 0)
        rc = load_mapping(&l, &s);
    yaml_document_delete(&doc);
    return rc;
}

int lh_cfg_load_file(const char *path, const struct lh_cfg_schema *root, void *obj,
                     struct lh_cfg_diag *d)
{
    char *buf = NULL;
    size_t len = 0;
    d->file = path;
    d->error[0] = '\0';
    int rc = lh_read_file(path, CFG_MAX_BYTES, &buf, &len);
    if (rc == LH_ENOENT)
        lh_cfg_error(d, 0, 0, "cannot read config: no such file");
    else if (rc == LH_ETOOBIG)
        lh_cfg_error(d, 0, 0, "config is larger than %u MiB", CFG_MAX_BYTES >> 20);
    else if (rc)
        lh_cfg_error(d, 0, 0, "cannot read config: %s", strerror(errno));
    if (rc)
        return rc == LH_ENOENT || rc == LH_ETOOBIG ? rc : LH_EIO;
    rc = lh_cfg_load_string(path, buf, len, root, obj, d);
    free(buf);
    return rc;
}

void lh_cfg_free(const struct lh_cfg_schema *root, void *obj)
{
    if (!root || !obj)
        return;
    for (const struct lh_cfg_field *f = root->fields; f && f->key; f++) {
        const struct type_ops *ops = ops_of(f);
        if (ops && ops->release)
            ops->release(f, (char *)obj + f->offset);
    }
}
