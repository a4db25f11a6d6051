/* lbx_router.h: the C plugin SDK for lbx, contract lbx:router@0.2.0 (wit/router.wit).
 *
 * Header-only, over the bindings `wit-bindgen c` generates for the `plugin` world (plugin.h;
 * build.sh generates them with tools/c-tools). It owns:
 *   - typed views of what `choose` receives: backend stats by index, signals by name, the retry;
 *   - request helpers (path, header, cookie, ... and compare-and-free shortcuts);
 *   - decision constructors mirroring the contract (pick with headers, fallbacks, retry-on,
 *     rewrite and tag; reject with headers; no-opinion);
 *   - string, log, clock and key-value helpers;
 *   - the exports, through LBX_EXPORT_ROUTER, which FREE THE ARGUMENTS after each call.
 *
 * Why the freeing matters: the generated export glue hands the plugin the lists and strings the
 * host lowered into linear memory (with cabi_realloc, i.e. malloc) and never frees them; that is
 * the callee's job under wit-bindgen C's ownership rules. A plugin that forgets leaks the stats
 * list on every request (~70 bytes with 3 backends) and traps at its memory limit after about a
 * million requests. LBX_EXPORT_ROUTER frees every argument once the plugin's function returns,
 * so a plugin written on this SDK only frees what it asked for itself (lbx_string values).
 * The other direction is the glue's: it frees a returned decision's lists and strings in its
 * post-return function, so every string in a decision must be heap memory (the constructors
 * below copy), never a literal.
 *
 * Usage (one translation unit):
 *     #include "lbx_router.h"
 *     static lbx_decision choose(lbx_request req, const lbx_backends *b, const lbx_retry *r) {
 *         size_t best = lbx_least_in_flight(b, r, NULL, NULL);
 *         return best == LBX_NONE ? lbx_no_opinion() : lbx_pick(best);
 *     }
 *     LBX_EXPORT_ROUTER(NULL, NULL, choose, NULL)
 */
#ifndef LBX_ROUTER_H
#define LBX_ROUTER_H

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

/* ---- strings ----------------------------------------------------------------------------- */

/** A borrowed run of bytes (UTF-8 text from the host, or part of a C string). Not owned. */
typedef struct lbx_str {
    const char *ptr;
    size_t len;
} lbx_str;

/** A string the plugin owns, returned by the request accessors: free it with lbx_string_free.
 *  `present` is false for an absent optional value (no query, no such header). */
typedef struct lbx_string {
    char *ptr;
    size_t len;
    bool present;
} lbx_string;

/** The sentinel index: "no backend". */
#define LBX_NONE ((size_t)-1)

/** An lbx_str of a C string (NULL gives the empty string). */
static inline lbx_str lbx_cstr(const char *s) {
    lbx_str out = {s ? s : "", s ? strlen(s) : 0};
    return out;
}

static inline lbx_str lbx_view(const lbx_string *s) {
    lbx_str out = {s->ptr ? s->ptr : "", s->len};
    return out;
}

static inline bool lbx_str_eq(lbx_str a, lbx_str b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool lbx_str_eq_cstr(lbx_str a, const char *b) { return lbx_str_eq(a, lbx_cstr(b)); }

static inline bool lbx_str_starts_with(lbx_str s, lbx_str prefix) {
    return s.len >= prefix.len && (prefix.len == 0 || memcmp(s.ptr, prefix.ptr, prefix.len) == 0);
}

/** A NUL-terminated heap copy of `s` (free() it); aborts when out of memory, as cabi_realloc
 *  does: a plugin without memory cannot decide anything anyway. */
static inline char *lbx_strdup_str(lbx_str s) {
    char *out = (char *)malloc(s.len + 1);
    if (!out) abort();
    if (s.len) memcpy(out, s.ptr, s.len);
    out[s.len] = '\0';
    return out;
}

static inline void lbx_string_free(lbx_string *s) {
    /* An empty string from the host was "allocated" with size 0, which cabi_realloc answers
     * with a non-heap pointer: only non-empty strings are freed, as the generated *_free do. */
    if (s->len > 0) free(s->ptr);
    s->ptr = NULL;
    s->len = 0;
    s->present = false;
}

/* Generated strings/lists -> SDK types, and the frees, with the generated code's rule: a
 * zero-length list was never allocated. */
static inline void lbx__free_list(void *ptr, size_t len) {
    if (len > 0) free(ptr);
}

static inline lbx_string lbx__take(plugin_string_t *s, bool present) {
    lbx_string out = {present ? (char *)s->ptr : NULL, present ? s->len : 0, present};
    return out;
}

/** A heap copy as the generated type, for a decision (the post-return glue frees it). */
static inline plugin_string_t lbx__dup(const char *s) {
    plugin_string_t out;
    size_t len = strlen(s);
    out.len = len;
    out.ptr = NULL;
    if (len) {
        out.ptr = (uint8_t *)malloc(len);
        if (!out.ptr) abort();
        memcpy(out.ptr, s, len);
    }
    return out;
}

/* ---- the request ------------------------------------------------------------------------- */

/** The request being decided; valid only during `choose`. */
typedef lbx_router_types_borrow_request_t lbx_request;

static inline lbx_string lbx_request_method(lbx_request req) {
    plugin_string_t s;
    lbx_router_types_method_request_method(req, &s);
    return lbx__take(&s, true);
}

/** The path without the query string. */
static inline lbx_string lbx_request_path(lbx_request req) {
    plugin_string_t s;
    lbx_router_types_method_request_path(req, &s);
    return lbx__take(&s, true);
}

static inline lbx_string lbx_request_query(lbx_request req) {
    plugin_string_t s;
    bool some = lbx_router_types_method_request_query(req, &s);
    return lbx__take(&s, some);
}

static inline lbx_string lbx_request_authority(lbx_request req) {
    plugin_string_t s;
    bool some = lbx_router_types_method_request_authority(req, &s);
    return lbx__take(&s, some);
}

/** The first header named `name` (case-insensitive), if present and valid text. */
static inline lbx_string lbx_request_header(lbx_request req, const char *name) {
    plugin_string_t key = {(uint8_t *)name, strlen(name)}, s;
    bool some = lbx_router_types_method_request_header(req, &key, &s);
    return lbx__take(&s, some);
}

/** The cookie named `name` (case-sensitive), if present. */
static inline lbx_string lbx_request_cookie(lbx_request req, const char *name) {
    plugin_string_t key = {(uint8_t *)name, strlen(name)}, s;
    bool some = lbx_router_types_method_request_cookie(req, &key, &s);
    return lbx__take(&s, some);
}

static inline lbx_string lbx_request_client_ip(lbx_request req) {
    plugin_string_t s;
    lbx_router_types_method_request_client_ip(req, &s);
    return lbx__take(&s, true);
}

static inline uint16_t lbx_request_client_port(lbx_request req) {
    return lbx_router_types_method_request_client_port(req);
}

/* Present, and equal to `equals` unless that is NULL; the copy is freed here. */
static inline bool lbx__present_or_equal(lbx_string value, const char *equals) {
    bool ok = value.present && (equals == NULL || lbx_str_eq_cstr(lbx_view(&value), equals));
    lbx_string_free(&value);
    return ok;
}

/** Whether header `name` is present (and equal to `equals`, unless NULL). */
static inline bool lbx_request_header_is(lbx_request req, const char *name, const char *equals) {
    return lbx__present_or_equal(lbx_request_header(req, name), equals);
}

/** Whether cookie `name` is present (and equal to `equals`, unless NULL). */
static inline bool lbx_request_cookie_is(lbx_request req, const char *name, const char *equals) {
    return lbx__present_or_equal(lbx_request_cookie(req, name), equals);
}

/** Whether the path starts with `prefix` (byte by byte: "/api" also matches "/apis"). */
static inline bool lbx_request_path_starts_with(lbx_request req, const char *prefix) {
    lbx_string path = lbx_request_path(req);
    bool ok = lbx_str_starts_with(lbx_view(&path), lbx_cstr(prefix));
    lbx_string_free(&path);
    return ok;
}

/* ---- backends: identities (backends-changed) and live numbers (choose) -------------------- */

/** One backend as configured: id, address, weight, labels. Valid during the call only. */
typedef lbx_router_types_backend_info_t lbx_backend_info;

/** The value of label `key` of a backend, or NULL's view (ptr NULL) when it has none. */
static inline lbx_str lbx_backend_label(const lbx_backend_info *b, const char *key) {
    lbx_str k = lbx_cstr(key);
    for (size_t i = 0; i < b->labels.len; i++) {
        lbx_str name = {(const char *)b->labels.ptr[i].f0.ptr, b->labels.ptr[i].f0.len};
        if (lbx_str_eq(name, k)) {
            lbx_str value = {(const char *)b->labels.ptr[i].f1.ptr, b->labels.ptr[i].f1.len};
            return value;
        }
    }
    lbx_str none = {NULL, 0};
    return none;
}

/** The backend set as of the last backends-changed. */
typedef struct lbx_backend_list {
    const lbx_backend_info *items;
    size_t count;
    /* Names of the backend signals, in slot order (the operator's `[signals] metrics`). */
    const plugin_string_t *signal_names;
    size_t signal_count;
} lbx_backend_list;

/** The 5 numbers lbx keeps per backend (contract: healthy, weight, in-flight, ewma, failures). */
typedef struct lbx_backend_stats {
    bool healthy;
    uint32_t weight;
    uint32_t in_flight;
    uint32_t ewma_latency_us;
    uint32_t recent_failures;
} lbx_backend_stats;

/** What `choose` sees of the backends: stats by index, signals by name. */
typedef struct lbx_backends {
    const uint32_t *stats;
    size_t count;
    const double *signals; /* NULL when no signals are configured */
    size_t signal_width;   /* 1 (scrape age) + the number of signal names */
} lbx_backends;

#define LBX_STATS_PER_BACKEND 5

static inline lbx_backend_stats lbx_backend(const lbx_backends *b, size_t i) {
    const uint32_t *s = b->stats + LBX_STATS_PER_BACKEND * i;
    lbx_backend_stats out = {s[0] != 0, s[1], s[2], s[3], s[4]};
    return out;
}

static inline bool lbx_backend_healthy(const lbx_backends *b, size_t i) {
    return b->stats[LBX_STATS_PER_BACKEND * i] != 0;
}

static inline uint32_t lbx_backend_in_flight(const lbx_backends *b, size_t i) {
    return b->stats[LBX_STATS_PER_BACKEND * i + 2];
}

/* The signal names of the last backends-changed, kept by the SDK (see the exports). */
static plugin_list_string_t lbx__signal_names;

/** The slot of signal `name`, or LBX_NONE when it is not configured. */
static inline size_t lbx_signal_slot(const char *name) {
    lbx_str n = lbx_cstr(name);
    for (size_t i = 0; i < lbx__signal_names.len; i++) {
        lbx_str have = {(const char *)lbx__signal_names.ptr[i].ptr, lbx__signal_names.ptr[i].len};
        if (lbx_str_eq(have, n)) return i;
    }
    return LBX_NONE;
}

/** Signal `name` of backend `i`; NaN when missing (not configured, never scraped, absent). */
static inline double lbx_signal(const lbx_backends *b, size_t i, const char *name) {
    size_t slot = lbx_signal_slot(name);
    if (b->signals == NULL || slot == LBX_NONE || i >= b->count) return NAN;
    return b->signals[b->signal_width * i + 1 + slot];
}

/** Milliseconds since backend `i`'s last successful scrape; NaN when never scraped. */
static inline double lbx_signal_age_ms(const lbx_backends *b, size_t i) {
    if (b->signals == NULL || i >= b->count) return NAN;
    return b->signals[b->signal_width * i];
}

/** The earlier attempts of this request; NULL in `choose` on a first attempt. */
typedef lbx_router_types_retry_context_t lbx_retry;

static inline bool lbx_retry_tried(const lbx_retry *retry, size_t i) {
    if (retry == NULL) return false;
    for (size_t k = 0; k < retry->tried.len; k++)
        if (retry->tried.ptr[k] == i) return true;
    return false;
}

/** Healthy and not yet tried by this request. */
static inline bool lbx_candidate(const lbx_backends *b, const lbx_retry *retry, size_t i) {
    return lbx_backend_healthy(b, i) && !lbx_retry_tried(retry, i);
}

/** The candidate with the fewest requests in flight among those `member` accepts (all when
 *  NULL; `ctx` is passed through), the lowest index on a tie; LBX_NONE when there is none. */
static inline size_t lbx_least_in_flight(const lbx_backends *b, const lbx_retry *retry,
                                         bool (*member)(const void *ctx, size_t i), const void *ctx) {
    size_t best = LBX_NONE;
    for (size_t i = 0; i < b->count; i++) {
        if (!lbx_candidate(b, retry, i) || (member && !member(ctx, i))) continue;
        if (best == LBX_NONE || lbx_backend_in_flight(b, i) < lbx_backend_in_flight(b, best)) best = i;
    }
    return best;
}

/* ---- decisions --------------------------------------------------------------------------- */

typedef exports_lbx_router_router_decision_t lbx_decision;

/** Send the request to backend `backend` (an index of this call's backends). */
static inline lbx_decision lbx_pick(size_t backend) {
    lbx_decision d;
    memset(&d, 0, sizeof d);
    d.tag = LBX_ROUTER_TYPES_DECISION_PICK;
    d.val.pick.backend = (uint32_t)backend;
    return d;
}

/** Answer the client directly with `status` (4xx or 5xx), no backend contacted. */
static inline lbx_decision lbx_reject(uint16_t status) {
    lbx_decision d;
    memset(&d, 0, sizeof d);
    d.tag = LBX_ROUTER_TYPES_DECISION_REJECT;
    d.val.reject.status = status;
    return d;
}

/** No preference: lbx's built-in fallback (least in flight among healthy backends) decides. */
static inline lbx_decision lbx_no_opinion(void) {
    lbx_decision d;
    memset(&d, 0, sizeof d);
    d.tag = LBX_ROUTER_TYPES_DECISION_NO_OPINION;
    return d;
}

/* Append to a generated list by reallocating it one element larger: decisions carry a few
 * items, and the post-return glue frees the final block with free(). */
#define LBX__PUSH(list, item)                                                                 \
    do {                                                                                      \
        void *grown = realloc((list).ptr, ((list).len + 1) * sizeof *(list).ptr);             \
        if (!grown) abort();                                                                  \
        (list).ptr = grown;                                                                   \
        (list).ptr[(list).len++] = (item);                                                    \
    } while (0)

static inline lbx_router_types_header_t lbx__header(const char *name, const char *value) {
    lbx_router_types_header_t h = {lbx__dup(name), lbx__dup(value)};
    return h;
}

/** Add a header to the request sent to the backend (copied). Pick only. */
static inline void lbx_pick_upstream_header(lbx_decision *d, const char *name, const char *value) {
    if (d->tag == LBX_ROUTER_TYPES_DECISION_PICK)
        LBX__PUSH(d->val.pick.upstream_headers, lbx__header(name, value));
}

/** Add a header to the response sent to the client (copied), e.g. a sticky set-cookie. */
static inline void lbx_pick_downstream_header(lbx_decision *d, const char *name, const char *value) {
    if (d->tag == LBX_ROUTER_TYPES_DECISION_PICK)
        LBX__PUSH(d->val.pick.downstream_headers, lbx__header(name, value));
}

/** A rejection's response header (copied), e.g. retry-after. Reject only. */
static inline void lbx_reject_header(lbx_decision *d, const char *name, const char *value) {
    if (d->tag == LBX_ROUTER_TYPES_DECISION_REJECT)
        LBX__PUSH(d->val.reject.headers, lbx__header(name, value));
}

/* The pick's options, created empty on first use (a plain pick crosses without them). */
static inline lbx_router_types_pick_options_t *lbx__options(lbx_decision *d) {
    if (d->tag != LBX_ROUTER_TYPES_DECISION_PICK) return NULL;
    d->val.pick.options.is_some = true;
    return &d->val.pick.options.val;
}

/** The next alternate for a retry, in order of preference. */
static inline void lbx_pick_fallback(lbx_decision *d, size_t backend) {
    lbx_router_types_pick_options_t *o = lbx__options(d);
    if (o) LBX__PUSH(o->fallbacks, (uint32_t)backend);
}

/** A response status worth another attempt (e.g. 503). */
static inline void lbx_pick_retry_on(lbx_decision *d, uint16_t status) {
    lbx_router_types_pick_options_t *o = lbx__options(d);
    if (o) LBX__PUSH(o->retry_on, status);
}

/** Replace the upstream path and query (origin form, starting with '/'; copied). */
static inline void lbx_pick_rewrite(lbx_decision *d, const char *path_and_query) {
    lbx_router_types_pick_options_t *o = lbx__options(d);
    if (!o) return;
    if (o->rewrite.is_some && o->rewrite.val.len) free(o->rewrite.val.ptr);
    o->rewrite.is_some = true;
    o->rewrite.val = lbx__dup(path_and_query);
}

/** A number handed back in this pick's outcomes. */
static inline void lbx_pick_tag(lbx_decision *d, uint64_t tag) {
    lbx_router_types_pick_options_t *o = lbx__options(d);
    if (o) o->tag = tag;
}

/* ---- host services ----------------------------------------------------------------------- */

enum {
    LBX_LOG_TRACE = LBX_ROUTER_HOST_LOG_LEVEL_TRACE,
    LBX_LOG_DEBUG = LBX_ROUTER_HOST_LOG_LEVEL_DEBUG,
    LBX_LOG_INFO = LBX_ROUTER_HOST_LOG_LEVEL_INFO,
    LBX_LOG_WARN = LBX_ROUTER_HOST_LOG_LEVEL_WARN,
    LBX_LOG_ERROR = LBX_ROUTER_HOST_LOG_LEVEL_ERROR,
};

/** A line in lbx's log, printf-style (cut at 1 KiB). */
static inline void lbx_log(int level, const char *format, ...) {
    char line[1024];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (n < 0) return;
    plugin_string_t message = {(uint8_t *)line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1};
    lbx_router_host_log((lbx_router_host_log_level_t)level, &message);
}

/** Microseconds on the host's monotonic clock (shared by every instance). */
static inline uint64_t lbx_now_us(void) { return lbx_router_host_now_us(); }

/** The value under `key` as an owned string (present false when absent); free it. */
static inline lbx_string lbx_kv_get(const char *key) {
    plugin_string_t k = {(uint8_t *)key, strlen(key)};
    plugin_list_u8_t value;
    bool some = lbx_router_kv_get(&k, &value);
    lbx_string out = {some ? (char *)value.ptr : NULL, some ? value.len : 0, some};
    return out;
}

/** Store `len` bytes under `key`; false when the host refuses (key too long, store full). */
static inline bool lbx_kv_set(const char *key, const void *value, size_t len) {
    plugin_string_t k = {(uint8_t *)key, strlen(key)};
    plugin_list_u8_t v = {(uint8_t *)value, len};
    lbx_router_kv_kv_error_t err;
    return lbx_router_kv_set(&k, &v, &err);
}

/** Remove `key`; true if it existed. */
static inline bool lbx_kv_delete(const char *key) {
    plugin_string_t k = {(uint8_t *)key, strlen(key)};
    return lbx_router_kv_delete(&k);
}

/** Add `delta` to the counter under `key`; false when refused, else the new value in *out. */
static inline bool lbx_kv_increment(const char *key, int64_t delta, int64_t *out) {
    plugin_string_t k = {(uint8_t *)key, strlen(key)};
    lbx_router_kv_kv_error_t err;
    return lbx_router_kv_increment(&k, delta, out, &err);
}

/* ---- the exports ------------------------------------------------------------------------- */

/** What `init` may ask of the host (contract `features`). */
#define LBX_FEATURE_OUTCOMES EXPORTS_LBX_ROUTER_ROUTER_FEATURES_OUTCOMES

/** One finished attempt (contract `outcome`), for plugins that ask for LBX_FEATURE_OUTCOMES. */
typedef lbx_router_types_outcome_t lbx_outcome;

/** init: NULL to accept the JSON `config` (setting *features), else why it is refused (the
 *  text is copied; a static buffer is fine). */
typedef const char *(*lbx_init_fn)(lbx_str config, unsigned *features);
typedef void (*lbx_backends_changed_fn)(const lbx_backend_list *backends);
typedef lbx_decision (*lbx_choose_fn)(lbx_request req, const lbx_backends *backends,
                                      const lbx_retry *retry);
typedef void (*lbx_on_outcome_fn)(const lbx_outcome *outcome);

static inline bool lbx__export_init(lbx_init_fn init, plugin_string_t *config, uint8_t *features,
                                    plugin_string_t *err) {
    unsigned asked = 0;
    const char *refusal = NULL;
    if (init) {
        lbx_str text = {(const char *)config->ptr, config->len};
        refusal = init(text, &asked);
    }
    lbx__free_list(config->ptr, config->len);
    if (refusal) {
        *err = lbx__dup(refusal); /* freed by the post-return glue */
        return false;
    }
    *features = (uint8_t)asked;
    return true;
}

static inline void lbx__export_backends_changed(lbx_backends_changed_fn changed,
                                                exports_lbx_router_router_list_backend_info_t *backends,
                                                plugin_list_string_t *signals) {
    /* The signal names are kept (lbx_signal looks them up by name on every choose) until the
     * next backends-changed replaces them; everything else is freed after the call. */
    for (size_t i = 0; i < lbx__signal_names.len; i++)
        lbx__free_list(lbx__signal_names.ptr[i].ptr, lbx__signal_names.ptr[i].len);
    lbx__free_list(lbx__signal_names.ptr, lbx__signal_names.len);
    lbx__signal_names = *signals;
    if (changed) {
        lbx_backend_list list = {backends->ptr, backends->len, signals->ptr, signals->len};
        changed(&list);
    }
    for (size_t i = 0; i < backends->len; i++) {
        lbx_backend_info *b = &backends->ptr[i];
        lbx__free_list(b->id.ptr, b->id.len);
        lbx__free_list(b->address.ptr, b->address.len);
        for (size_t k = 0; k < b->labels.len; k++) {
            lbx__free_list(b->labels.ptr[k].f0.ptr, b->labels.ptr[k].f0.len);
            lbx__free_list(b->labels.ptr[k].f1.ptr, b->labels.ptr[k].f1.len);
        }
        lbx__free_list(b->labels.ptr, b->labels.len);
    }
    lbx__free_list(backends->ptr, backends->len);
}

static inline void lbx__export_choose(lbx_choose_fn choose, lbx_request req, plugin_list_u32_t *stats,
                                      plugin_list_f64_t *signals, lbx_retry *retry, lbx_decision *ret) {
    lbx_backends view = {stats->ptr, stats->len / LBX_STATS_PER_BACKEND, NULL, 0};
    if (signals && view.count > 0) {
        view.signals = signals->ptr;
        view.signal_width = signals->len / view.count;
    }
    *ret = choose(req, &view, retry);
    /* The arguments are ours: without these frees every request leaks its stats list. */
    lbx__free_list(stats->ptr, stats->len);
    if (signals) lbx__free_list(signals->ptr, signals->len);
    if (retry) lbx__free_list(retry->tried.ptr, retry->tried.len);
}

/** Export a router: its init, backends_changed and on_outcome may be NULL (init then accepts
 *  any config and asks for nothing); choose is required. Use once, at file scope. */
#define LBX_EXPORT_ROUTER(init_fn, backends_changed_fn, choose_fn, on_outcome_fn)              \
    bool exports_lbx_router_router_init(plugin_string_t *config,                              \
                                        exports_lbx_router_router_features_t *ret,            \
                                        plugin_string_t *err) {                               \
        return lbx__export_init((init_fn), config, ret, err);                                 \
    }                                                                                         \
    void exports_lbx_router_router_backends_changed(                                          \
        exports_lbx_router_router_list_backend_info_t *backends, plugin_list_string_t *signals) { \
        lbx__export_backends_changed((backends_changed_fn), backends, signals);               \
    }                                                                                         \
    void exports_lbx_router_router_choose(exports_lbx_router_router_borrow_request_t req,     \
                                          plugin_list_u32_t *stats,                           \
                                          plugin_list_f64_t *maybe_signals,                   \
                                          exports_lbx_router_router_retry_context_t *maybe_retry, \
                                          exports_lbx_router_router_decision_t *ret) {        \
        lbx__export_choose((choose_fn), req, stats, maybe_signals, maybe_retry, ret);         \
    }                                                                                         \
    void exports_lbx_router_router_on_outcome(exports_lbx_router_router_outcome_t *outcome) { \
        lbx_on_outcome_fn hook = (on_outcome_fn);                                             \
        if (hook) hook(outcome);                                                              \
    }

#endif /* LBX_ROUTER_H */
