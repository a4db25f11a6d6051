/* Header router for lbx, in C on the lbx_router SDK (sdk/c): the same rules as
 * plugins/header_router (Rust) and examples/python/header_router, so the three are compared on
 * the same scenarios.
 *
 * Configuration ([plugin.config] in lbx.toml, reaching init as JSON):
 *
 *     [plugin.config]
 *     default = { version = "stable" }
 *     rules = [
 *       { path_prefix = "/api", group = { pool = "api" } },
 *       { header = "x-canary", equals = "1", group = { version = "canary" } },
 *       { cookie = "beta", equals = "yes", group = { version = "canary" } },
 *       { percent = 5.0, group = { version = "canary" } },
 *     ]
 *
 * The first matching rule picks a group of backends by labels; within it the healthy backend
 * with the fewest requests in flight wins (on a retry, one not yet tried); an empty group falls
 * back to `default`, then to lbx's own choice (no-opinion). (The Rust router's strip_prefix is
 * not offered here, as in the Python one.)
 *
 * Test:  bash examples/c/header_router/test.sh            (native, no Wasm)
 * Build: bash examples/c/header_router/build.sh [OUT.wasm]
 * Check: lbx check examples/c/header_router/header_router.wasm
 */
#include "lbx_json.h"
#include "lbx_router.h"

/* A group: backends carrying every one of these labels. */
typedef struct group {
    char **keys;
    char **values;
    size_t count;
    /* members[i]: whether backend i (of the last backends-changed) is in the group. */
    bool *members;
} group;

typedef enum { PATH_PREFIX, HEADER, COOKIE, PERCENT } condition;

typedef struct rule {
    condition condition;
    char *text;   /* the prefix, header name (lowercase) or cookie name */
    char *equals; /* NULL: presence is enough */
    uint32_t millionths;
    group group;
} rule;

static struct {
    rule *rules;
    size_t rule_count;
    group fallback; /* `default` */
    uint64_t rng;
} router;

/* ---- configuration ----------------------------------------------------------------------- */

static char refusal[256];

static const char *refuse(const char *format, size_t index, const char *detail) {
    snprintf(refusal, sizeof refusal, format, index, detail);
    return refusal;
}

/* Read a table of string labels into `g`. */
static bool read_group(lbx_json *j, group *g) {
    char *key, *value;
    if (!lbx_json_enter_object(j)) return false;
    while (lbx_json_next_member(j, &key)) {
        if (!lbx_json_string(j, &value)) {
            free(key);
            return false;
        }
        g->keys = realloc(g->keys, (g->count + 1) * sizeof *g->keys);
        g->values = realloc(g->values, (g->count + 1) * sizeof *g->values);
        if (!g->keys || !g->values) abort();
        g->keys[g->count] = key;
        g->values[g->count++] = value;
    }
    return !j->error;
}

static const char *read_rule(lbx_json *j, size_t index, rule *r) {
    char *key;
    int kinds = 0;
    double percent = 0;
    bool has_group = false;
    if (!lbx_json_enter_object(j)) return NULL;
    while (lbx_json_next_member(j, &key)) {
        if (strcmp(key, "path_prefix") == 0 || strcmp(key, "header") == 0 || strcmp(key, "cookie") == 0) {
            r->condition = key[0] == 'p' ? PATH_PREFIX : key[0] == 'h' ? HEADER : COOKIE;
            kinds++;
            free(r->text);
            lbx_json_string(j, &r->text);
        } else if (strcmp(key, "equals") == 0) {
            free(r->equals);
            lbx_json_string(j, &r->equals);
        } else if (strcmp(key, "percent") == 0) {
            r->condition = PERCENT;
            kinds++;
            lbx_json_number(j, &percent);
        } else if (strcmp(key, "group") == 0) {
            has_group = read_group(j, &r->group);
        } else {
            const char *why = refuse("rules[%zu]: unknown key %s", index, key);
            free(key);
            return why;
        }
        free(key);
    }
    if (j->error) return NULL;
    if (kinds != 1) return refuse("rules[%zu] needs exactly one of path_prefix, header, cookie or percent%s", index, "");
    if (!has_group || r->group.count == 0) return refuse("rules[%zu]: group is empty%s", index, "");
    if (r->condition == PERCENT && !(percent >= 0 && percent <= 100))
        return refuse("rules[%zu]: percent is not within 0..=100%s", index, "");
    r->millionths = (uint32_t)(percent * 10000.0 + 0.5);
    if (r->condition == HEADER)  /* header names are case-insensitive; lbx wants them lowercase */
        for (char *c = r->text; *c; c++) *c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
    return NULL;
}

static void forget_group(group *g) {
    for (size_t k = 0; k < g->count; k++) {
        free(g->keys[k]);
        free(g->values[k]);
    }
    free(g->keys);
    free(g->values);
    free(g->members);
    memset(g, 0, sizeof *g);
}

/* Drop the configuration: lbx calls init once per instance, but a native test calls it again
 * for every scenario, and each init must start from nothing. */
static void forget(void) {
    for (size_t r = 0; r < router.rule_count; r++) {
        free(router.rules[r].text);
        free(router.rules[r].equals);
        forget_group(&router.rules[r].group);
    }
    free(router.rules);
    forget_group(&router.fallback);
    memset(&router, 0, sizeof router);
}

static const char *init(lbx_str config, unsigned *features) {
    (void)features; /* no outcomes needed */
    forget();
    lbx_json j = lbx_json_begin(config);
    char *key;
    if (!lbx_json_enter_object(&j)) return "the configuration must be a table";
    while (lbx_json_next_member(&j, &key)) {
        if (strcmp(key, "rules") == 0 && lbx_json_enter_array(&j)) {
            while (lbx_json_next_element(&j)) {
                router.rules = realloc(router.rules, (router.rule_count + 1) * sizeof *router.rules);
                if (!router.rules) abort();
                rule *r = &router.rules[router.rule_count++];
                memset(r, 0, sizeof *r);
                const char *why = read_rule(&j, router.rule_count - 1, r);
                if (why) {
                    free(key);
                    return why;
                }
            }
        } else if (strcmp(key, "default") == 0) {
            read_group(&j, &router.fallback);
        } else {
            lbx_json_skip(&j);
        }
        free(key);
    }
    if (j.error) return "the configuration is not valid JSON";
    /* The percent rule's random numbers: xorshift64, seeded from the clock (never 0). */
    router.rng = lbx_now_us() * 0x9E3779B97F4A7C15ull | 1;
    lbx_log(LBX_LOG_INFO, "c header router: %zu rules", router.rule_count);
    return NULL;
}

/* ---- backends ---------------------------------------------------------------------------- */

static bool in_group(const group *g, const lbx_backend_info *b) {
    for (size_t k = 0; k < g->count; k++)
        if (!lbx_str_eq_cstr(lbx_backend_label(b, g->keys[k]), g->values[k])) return false;
    return true;
}

/* Each group's members, found when the backend set changes rather than per request. */
static void assign(group *g, const lbx_backend_list *backends) {
    free(g->members);
    g->members = calloc(backends->count ? backends->count : 1, sizeof *g->members);
    if (!g->members) abort();
    for (size_t i = 0; i < backends->count; i++) g->members[i] = in_group(g, &backends->items[i]);
}

static size_t known_backends;

static void backends_changed(const lbx_backend_list *backends) {
    for (size_t r = 0; r < router.rule_count; r++) assign(&router.rules[r].group, backends);
    assign(&router.fallback, backends);
    known_backends = backends->count;
}

/* ---- choose ------------------------------------------------------------------------------ */

static bool member(const void *g, size_t i) {
    return i < known_backends && ((const group *)g)->members[i];
}

static uint32_t below_million(void) {
    router.rng ^= router.rng << 13;
    router.rng ^= router.rng >> 7;
    router.rng ^= router.rng << 17;
    return (uint32_t)(router.rng % 1000000);
}

static bool matches(const rule *r, lbx_request req) {
    switch (r->condition) {
    case PATH_PREFIX: return lbx_request_path_starts_with(req, r->text);
    case HEADER: return lbx_request_header_is(req, r->text, r->equals);
    case COOKIE: return lbx_request_cookie_is(req, r->text, r->equals);
    case PERCENT: return below_million() < r->millionths;
    }
    return false;
}

static lbx_decision choose(lbx_request req, const lbx_backends *backends, const lbx_retry *retry) {
    for (size_t i = 0; i < router.rule_count; i++) {
        if (!matches(&router.rules[i], req)) continue;
        size_t best = lbx_least_in_flight(backends, retry, member, &router.rules[i].group);
        if (best != LBX_NONE) return lbx_pick(best);
        break; /* the group has nobody usable: the default group decides */
    }
    if (router.fallback.members == NULL) return lbx_no_opinion();
    size_t best = lbx_least_in_flight(backends, retry, member, &router.fallback);
    return best == LBX_NONE ? lbx_no_opinion() : lbx_pick(best);
}

LBX_EXPORT_ROUTER(init, backends_changed, choose, NULL)
