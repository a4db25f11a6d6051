/* lbx_router_testkit.h: the native test kit of the C plugin SDK. A plugin's routing logic is
 * compiled with the host's C compiler and called as lbx would call it, no Wasm involved.
 *
 * It owns: native stand-ins for everything the plugin imports (the request accessors, log,
 * clock, key-value store), and drivers that call the plugin's exports the way the generated
 * glue does — every argument a fresh heap block the plugin must free, every decision freed
 * after it is read, as the post-return glue frees it. Built with -fsanitize=address (test.sh
 * does), a plugin that leaks an argument or frees a literal fails its tests.
 *
 * Include it in the test file only (the plugin file includes lbx_router.h), and link the two:
 *
 *     #include "lbx_router_testkit.h"
 *     static void the_api_goes_to_the_api_pool(void) {
 *         LBX_EXPECT_EQ(lbx_test_init("{\"rules\": []}"), NULL);
 *         ...
 *     }
 *     int main(void) { LBX_RUN(the_api_goes_to_the_api_pool); return lbx_test_finish(); }
 */
#ifndef LBX_ROUTER_TESTKIT_H
#define LBX_ROUTER_TESTKIT_H

#include <ctype.h>

#include "lbx_router.h"

/* ---- checks ------------------------------------------------------------------------------ */

static int lbx_test_checks, lbx_test_failures;
static const char *lbx_test_current = "";

/** Check that two integers (indexes, statuses) are equal; a failure is reported, not fatal. */
#define LBX_EXPECT_EQ(actual, expected)                                                        \
    do {                                                                                       \
        long long a_ = (long long)(actual), e_ = (long long)(expected);                        \
        lbx_test_checks++;                                                                     \
        if (a_ != e_) {                                                                        \
            lbx_test_failures++;                                                               \
            fprintf(stderr, "%s:%d: %s: %s is %lld, expected %lld\n", __FILE__, __LINE__,     \
                    lbx_test_current, #actual, a_, e_);                                        \
        }                                                                                      \
    } while (0)

/** Check a condition. */
#define LBX_EXPECT(condition) LBX_EXPECT_EQ(!!(condition), 1)

/** Run one test function (its name is printed with its failures). */
#define LBX_RUN(test)                                                                          \
    do {                                                                                       \
        lbx_test_current = #test;                                                              \
        test();                                                                                \
    } while (0)

/** Print the tally; the process's exit status: 0 when every check passed. */
static inline int lbx_test_finish(void) {
    printf("%d checks, %d failed\n", lbx_test_checks, lbx_test_failures);
    /* Now: a sanitizer's leak report at exit ends the process without flushing stdout. */
    fflush(stdout);
    return lbx_test_failures == 0 && lbx_test_checks > 0 ? 0 : 1;
}

/* ---- requests ---------------------------------------------------------------------------- */

#define LBX_TEST_MAX_HEADERS 32

/** A request as the plugin sees it. Strings are borrowed (literals are fine). */
typedef struct lbx_test_request {
    const char *method, *path, *query, *authority, *client_ip;
    uint16_t client_port;
    const char *headers[LBX_TEST_MAX_HEADERS][2];
    size_t header_count;
} lbx_test_request;

/** GET `path` from 127.0.0.1:40000 with no headers. */
static inline lbx_test_request lbx_test_get(const char *path) {
    lbx_test_request r;
    memset(&r, 0, sizeof r);
    r.method = "GET";
    r.path = path;
    r.client_ip = "127.0.0.1";
    r.client_port = 40000;
    return r;
}

static inline lbx_test_request *lbx_test_header(lbx_test_request *r, const char *name, const char *value) {
    if (r->header_count < LBX_TEST_MAX_HEADERS) {
        r->headers[r->header_count][0] = name;
        r->headers[r->header_count++][1] = value;
    }
    return r;
}

/* The request `choose` is deciding (handle 1 while it runs). */
static const lbx_test_request *lbx__test_request;

/* A heap copy as the host's lowering makes one (cabi_realloc: malloc, or nothing when empty). */
static inline void lbx__test_lower(const char *s, size_t len, plugin_string_t *out) {
    out->len = len;
    out->ptr = len ? (uint8_t *)malloc(len) : (uint8_t *)1;
    if (!out->ptr) abort();
    if (len) memcpy(out->ptr, s, len);
}

static inline const lbx_test_request *lbx__test_req(lbx_router_types_borrow_request_t self) {
    if (self.__handle != 1 || lbx__test_request == NULL) {
        fprintf(stderr, "the request was used outside choose\n");
        abort();
    }
    return lbx__test_request;
}

static inline bool lbx__test_some(const char *s, plugin_string_t *ret) {
    if (s == NULL) return false;
    lbx__test_lower(s, strlen(s), ret);
    return true;
}

void lbx_router_types_method_request_method(lbx_router_types_borrow_request_t self, plugin_string_t *ret) {
    lbx__test_some(lbx__test_req(self)->method, ret);
}

void lbx_router_types_method_request_path(lbx_router_types_borrow_request_t self, plugin_string_t *ret) {
    lbx__test_some(lbx__test_req(self)->path, ret);
}

bool lbx_router_types_method_request_query(lbx_router_types_borrow_request_t self, plugin_string_t *ret) {
    return lbx__test_some(lbx__test_req(self)->query, ret);
}

bool lbx_router_types_method_request_authority(lbx_router_types_borrow_request_t self, plugin_string_t *ret) {
    return lbx__test_some(lbx__test_req(self)->authority, ret);
}

static inline bool lbx__test_same_name(const char *a, const uint8_t *b, size_t len) {
    if (strlen(a) != len) return false;
    for (size_t i = 0; i < len; i++)
        if (tolower((unsigned char)a[i]) != tolower(b[i])) return false;
    return true;
}

/* The first header with this name, case-insensitively, as lbx answers. */
bool lbx_router_types_method_request_header(lbx_router_types_borrow_request_t self, plugin_string_t *name,
                                            plugin_string_t *ret) {
    const lbx_test_request *r = lbx__test_req(self);
    for (size_t i = 0; i < r->header_count; i++)
        if (lbx__test_same_name(r->headers[i][0], name->ptr, name->len)) return lbx__test_some(r->headers[i][1], ret);
    return false;
}

/* The cookie from the `cookie` headers ("a=1; b=2"), its name case-sensitive. */
bool lbx_router_types_method_request_cookie(lbx_router_types_borrow_request_t self, plugin_string_t *name,
                                            plugin_string_t *ret) {
    const lbx_test_request *r = lbx__test_req(self);
    for (size_t i = 0; i < r->header_count; i++) {
        if (!lbx__test_same_name("cookie", (const uint8_t *)r->headers[i][0], strlen(r->headers[i][0]))) continue;
        const char *at = r->headers[i][1];
        while (*at) {
            while (*at == ' ' || *at == ';') at++;
            const char *eq = strchr(at, '='), *end = strchr(at, ';');
            if (!end) end = at + strlen(at);
            if (eq && eq < end && (size_t)(eq - at) == name->len && memcmp(at, name->ptr, name->len) == 0) {
                lbx__test_lower(eq + 1, (size_t)(end - eq - 1), ret);
                return true;
            }
            at = end;
        }
    }
    return false;
}

void lbx_router_types_method_request_client_ip(lbx_router_types_borrow_request_t self, plugin_string_t *ret) {
    lbx__test_some(lbx__test_req(self)->client_ip, ret);
}

uint16_t lbx_router_types_method_request_client_port(lbx_router_types_borrow_request_t self) {
    return lbx__test_req(self)->client_port;
}

/* ---- host services ----------------------------------------------------------------------- */

/** The last line the plugin logged (a test may check it). */
static char lbx_test_last_log[1024];
/** What lbx_now_us answers; a test moves it to age the plugin's state. */
static uint64_t lbx_test_clock_us = 1000000;

void lbx_router_host_log(lbx_router_host_log_level_t level, plugin_string_t *message) {
    (void)level;
    size_t n = message->len < sizeof lbx_test_last_log - 1 ? message->len : sizeof lbx_test_last_log - 1;
    memcpy(lbx_test_last_log, message->ptr, n);
    lbx_test_last_log[n] = '\0';
}

uint64_t lbx_router_host_now_us(void) { return lbx_test_clock_us; }

/* A small key-value store, as the host's (values are heap copies the plugin frees). */
#define LBX_TEST_KV_SLOTS 64
static struct {
    char *key;
    uint8_t *value;
    size_t len;
} lbx__test_kv[LBX_TEST_KV_SLOTS];

static inline int lbx__test_kv_find(const plugin_string_t *key) {
    for (int i = 0; i < LBX_TEST_KV_SLOTS; i++)
        if (lbx__test_kv[i].key && strlen(lbx__test_kv[i].key) == key->len &&
            memcmp(lbx__test_kv[i].key, key->ptr, key->len) == 0)
            return i;
    return -1;
}

bool lbx_router_kv_get(plugin_string_t *key, plugin_list_u8_t *ret) {
    int i = lbx__test_kv_find(key);
    if (i < 0) return false;
    plugin_string_t copy;
    lbx__test_lower((const char *)lbx__test_kv[i].value, lbx__test_kv[i].len, &copy);
    ret->ptr = copy.ptr;
    ret->len = copy.len;
    return true;
}

bool lbx_router_kv_set(plugin_string_t *key, plugin_list_u8_t *value, lbx_router_kv_kv_error_t *err) {
    if (key->len > 256) {
        *err = LBX_ROUTER_KV_KV_ERROR_KEY_TOO_LONG;
        return false;
    }
    int i = lbx__test_kv_find(key);
    for (int k = 0; i < 0 && k < LBX_TEST_KV_SLOTS; k++)
        if (!lbx__test_kv[k].key) i = k;
    if (i < 0) {
        *err = LBX_ROUTER_KV_KV_ERROR_STORE_FULL;
        return false;
    }
    if (!lbx__test_kv[i].key) lbx__test_kv[i].key = lbx_strdup_str((lbx_str){(const char *)key->ptr, key->len});
    free(lbx__test_kv[i].value);
    lbx__test_kv[i].value = (uint8_t *)malloc(value->len ? value->len : 1);
    if (!lbx__test_kv[i].value) abort();
    if (value->len) memcpy(lbx__test_kv[i].value, value->ptr, value->len);
    lbx__test_kv[i].len = value->len;
    return true;
}

bool lbx_router_kv_delete(plugin_string_t *key) {
    int i = lbx__test_kv_find(key);
    if (i < 0) return false;
    free(lbx__test_kv[i].key);
    free(lbx__test_kv[i].value);
    memset(&lbx__test_kv[i], 0, sizeof lbx__test_kv[i]);
    return true;
}

bool lbx_router_kv_increment(plugin_string_t *key, int64_t delta, int64_t *ret, lbx_router_kv_kv_error_t *err) {
    int i = lbx__test_kv_find(key);
    int64_t now = 0;
    if (i >= 0 && lbx__test_kv[i].len == 8) memcpy(&now, lbx__test_kv[i].value, 8);
    now += delta;
    plugin_list_u8_t value = {(uint8_t *)&now, 8};
    if (!lbx_router_kv_set(key, &value, err)) return false;
    *ret = now;
    return true;
}

/* ---- driving the plugin ------------------------------------------------------------------ */

/** init with this JSON: NULL when accepted, else the refusal (valid until the next call). */
static inline const char *lbx_test_init(const char *json) {
    static char refusal[512];
    plugin_string_t config, err;
    uint8_t features = 0;
    lbx__test_lower(json, strlen(json), &config);
    if (exports_lbx_router_router_init(&config, &features, &err)) return NULL;
    size_t n = err.len < sizeof refusal - 1 ? err.len : sizeof refusal - 1;
    memcpy(refusal, err.ptr, n);
    refusal[n] = '\0';
    if (err.len) free(err.ptr); /* as the post-return glue does */
    return refusal;
}

/** backends-changed with one backend per label spec ("pool=api,version=stable"; "" for
 *  none), ids b0, b1, ..., weight 1, no signals; the list ends with NULL. */
static inline void lbx_test_backends(const char *first, ...) {
    exports_lbx_router_router_list_backend_info_t list = {NULL, 0};
    va_list args;
    va_start(args, first);
    for (const char *spec = first; spec; spec = va_arg(args, const char *)) {
        lbx_backend_info b;
        memset(&b, 0, sizeof b);
        char id[32];
        snprintf(id, sizeof id, "b%zu", list.len);
        lbx__test_lower(id, strlen(id), &b.id);
        snprintf(id, sizeof id, "10.0.0.%zu:80", list.len + 1);
        lbx__test_lower(id, strlen(id), &b.address);
        b.weight = 1;
        const char *at = spec;
        while (*at) {
            const char *eq = strchr(at, '='), *end = strchr(at, ',');
            if (!end) end = at + strlen(at);
            if (!eq || eq > end) break;
            plugin_tuple2_string_string_t label;
            lbx__test_lower(at, (size_t)(eq - at), &label.f0);
            lbx__test_lower(eq + 1, (size_t)(end - eq - 1), &label.f1);
            LBX__PUSH(b.labels, label);
            at = *end ? end + 1 : end;
        }
        LBX__PUSH(list, b);
    }
    va_end(args);
    plugin_list_string_t signals = {NULL, 0};
    exports_lbx_router_router_backends_changed(&list, &signals);
}

/** The live numbers of one backend for `choose`. */
typedef struct lbx_test_backend {
    bool healthy;
    uint32_t in_flight;
} lbx_test_backend;

/** A healthy backend with `in_flight` requests. */
static inline lbx_test_backend lbx_test_up(uint32_t in_flight) {
    lbx_test_backend b = {true, in_flight};
    return b;
}

/** A backend marked down. */
static inline lbx_test_backend lbx_test_down(void) {
    lbx_test_backend b = {false, 0};
    return b;
}

/** choose for `req` over `n` backends; `tried` (NULL on a first attempt) lists the backends
 *  that already failed it. The decision is the caller's: read it with lbx_test_picked. */
static inline lbx_decision lbx_test_choose_retry(const lbx_test_request *req, const lbx_test_backend *backends,
                                                 size_t n, const uint32_t *tried, size_t tried_count) {
    plugin_list_u32_t stats = {(uint32_t *)malloc(n * LBX_STATS_PER_BACKEND * sizeof(uint32_t)),
                               n * LBX_STATS_PER_BACKEND};
    if (!stats.ptr) abort();
    for (size_t i = 0; i < n; i++) {
        uint32_t *s = stats.ptr + LBX_STATS_PER_BACKEND * i;
        s[0] = backends[i].healthy;
        s[1] = 1;
        s[2] = backends[i].in_flight;
        s[3] = 0;
        s[4] = 0;
    }
    lbx_retry retry = {1, {NULL, tried_count}};
    if (tried_count) {
        retry.tried.ptr = (uint32_t *)malloc(tried_count * sizeof(uint32_t));
        if (!retry.tried.ptr) abort();
        memcpy(retry.tried.ptr, tried, tried_count * sizeof(uint32_t));
    }
    lbx_decision d;
    lbx__test_request = req;
    lbx_router_types_borrow_request_t handle = {1};
    exports_lbx_router_router_choose(handle, &stats, NULL, tried ? &retry : NULL, &d);
    lbx__test_request = NULL;
    return d;
}

static inline lbx_decision lbx_test_choose(const lbx_test_request *req, const lbx_test_backend *backends, size_t n) {
    return lbx_test_choose_retry(req, backends, n, NULL, 0);
}

/* Free a decision as the post-return glue does: every non-empty list and string. */
static inline void lbx_test_decision_free(lbx_decision *d) {
    lbx_router_types_list_header_t *lists[3] = {NULL, NULL, NULL};
    if (d->tag == LBX_ROUTER_TYPES_DECISION_PICK) {
        lists[0] = &d->val.pick.upstream_headers;
        lists[1] = &d->val.pick.downstream_headers;
        if (d->val.pick.options.is_some) {
            lbx_router_types_pick_options_t *o = &d->val.pick.options.val;
            lbx__free_list(o->fallbacks.ptr, o->fallbacks.len);
            lbx__free_list(o->retry_on.ptr, o->retry_on.len);
            if (o->rewrite.is_some) lbx__free_list(o->rewrite.val.ptr, o->rewrite.val.len);
        }
    } else if (d->tag == LBX_ROUTER_TYPES_DECISION_REJECT) {
        lists[2] = &d->val.reject.headers;
    }
    for (int l = 0; l < 3; l++) {
        if (!lists[l]) continue;
        for (size_t i = 0; i < lists[l]->len; i++) {
            lbx__free_list(lists[l]->ptr[i].name.ptr, lists[l]->ptr[i].name.len);
            lbx__free_list(lists[l]->ptr[i].value.ptr, lists[l]->ptr[i].value.len);
        }
        lbx__free_list(lists[l]->ptr, lists[l]->len);
    }
    memset(d, 0, sizeof *d);
}

#define LBX_TEST_NO_OPINION (-1)
#define LBX_TEST_REJECTED (-2)

/** The picked backend's index (LBX_TEST_NO_OPINION, LBX_TEST_REJECTED otherwise); frees `d`. */
static inline long lbx_test_picked(lbx_decision d) {
    long out = d.tag == LBX_ROUTER_TYPES_DECISION_PICK     ? (long)d.val.pick.backend
               : d.tag == LBX_ROUTER_TYPES_DECISION_REJECT ? LBX_TEST_REJECTED
                                                           : LBX_TEST_NO_OPINION;
    lbx_test_decision_free(&d);
    return out;
}

#endif /* LBX_ROUTER_TESTKIT_H */
