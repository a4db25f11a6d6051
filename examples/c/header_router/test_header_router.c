/* Native tests of the C header router (header_router.c) on the SDK's test kit: the same
 * scenarios as the Python example's tests and the Rust router's, no Wasm needed.
 *
 * Run: bash examples/c/header_router/test.sh
 */
#include "lbx_router_testkit.h"

static const char *CONFIG =
    "{\"default\": {\"version\": \"stable\"},"
    " \"rules\": ["
    "  {\"path_prefix\": \"/api\", \"group\": {\"pool\": \"api\"}},"
    "  {\"header\": \"X-Canary\", \"equals\": \"1\", \"group\": {\"version\": \"canary\"}},"
    "  {\"cookie\": \"beta\", \"equals\": \"yes\", \"group\": {\"version\": \"canary\"}}"
    " ]}";

/* 0: stable, 1: canary, 2: the api pool (also stable). */
static void start(void) {
    LBX_EXPECT(lbx_test_init(CONFIG) == NULL);
    lbx_test_backends("version=stable", "version=canary", "pool=api,version=stable", NULL);
}

static const lbx_test_backend ALL_IDLE[3] = {{true, 0}, {true, 0}, {true, 0}};

static void the_api_path_goes_to_the_api_pool(void) {
    start();
    lbx_test_request req = lbx_test_get("/api/users");
    LBX_EXPECT_EQ(lbx_test_picked(lbx_test_choose(&req, ALL_IDLE, 3)), 2);
}

static void the_canary_header_goes_to_the_canary(void) {
    start();
    lbx_test_request req = lbx_test_get("/");
    lbx_test_header(&req, "x-canary", "1");
    LBX_EXPECT_EQ(lbx_test_picked(lbx_test_choose(&req, ALL_IDLE, 3)), 1);
    /* Another value does not match: the default group. */
    lbx_test_request other = lbx_test_get("/");
    lbx_test_header(&other, "x-canary", "0");
    LBX_EXPECT(lbx_test_picked(lbx_test_choose(&other, ALL_IDLE, 3)) != 1);
}

static void the_beta_cookie_goes_to_the_canary(void) {
    start();
    lbx_test_request req = lbx_test_get("/home");
    lbx_test_header(&req, "cookie", "theme=dark; beta=yes");
    LBX_EXPECT_EQ(lbx_test_picked(lbx_test_choose(&req, ALL_IDLE, 3)), 1);
}

static void the_rest_goes_to_the_least_loaded_stable_backend(void) {
    start();
    lbx_test_request req = lbx_test_get("/home");
    lbx_test_backend busy_stable[3] = {lbx_test_up(5), lbx_test_up(0), lbx_test_up(1)};
    LBX_EXPECT_EQ(lbx_test_picked(lbx_test_choose(&req, busy_stable, 3)), 2);
    lbx_test_backend busy_api[3] = {lbx_test_up(1), lbx_test_up(0), lbx_test_up(5)};
    LBX_EXPECT_EQ(lbx_test_picked(lbx_test_choose(&req, busy_api, 3)), 0);
}

static void a_down_group_falls_back_to_the_default_group(void) {
    start();
    lbx_test_request req = lbx_test_get("/");
    lbx_test_header(&req, "x-canary", "1");
    lbx_test_backend canary_down[3] = {lbx_test_up(3), lbx_test_down(), lbx_test_up(0)};
    LBX_EXPECT_EQ(lbx_test_picked(lbx_test_choose(&req, canary_down, 3)), 2);
}

static void nobody_usable_means_no_opinion(void) {
    start();
    lbx_test_request req = lbx_test_get("/home");
    lbx_test_backend only_canary[3] = {lbx_test_down(), lbx_test_up(0), lbx_test_down()};
    LBX_EXPECT_EQ(lbx_test_picked(lbx_test_choose(&req, only_canary, 3)), LBX_TEST_NO_OPINION);
}

static void a_retry_skips_the_tried_backend(void) {
    start();
    lbx_test_request req = lbx_test_get("/api/x");
    const uint32_t tried[1] = {2};
    /* The api pool's only member failed: the default group's other stable backend. */
    LBX_EXPECT_EQ(lbx_test_picked(lbx_test_choose_retry(&req, ALL_IDLE, 3, tried, 1)), 0);
}

static void a_percent_rule_sends_about_that_share(void) {
    LBX_EXPECT(lbx_test_init("{\"default\": {\"version\": \"stable\"}, \"rules\": ["
                             "{\"percent\": 25, \"group\": {\"version\": \"canary\"}}]}") == NULL);
    lbx_test_backends("version=stable", "version=canary", NULL);
    lbx_test_request req = lbx_test_get("/");
    int canary = 0;
    for (int i = 0; i < 10000; i++) canary += lbx_test_picked(lbx_test_choose(&req, ALL_IDLE, 2)) == 1;
    LBX_EXPECT(canary > 2200 && canary < 2800);
}

static void bad_configurations_are_refused_with_the_rule_named(void) {
    const char *why = lbx_test_init("{\"rules\": [{\"path_prefix\": \"/a\", \"header\": \"x\", \"group\": {\"a\": \"b\"}}]}");
    LBX_EXPECT(why != NULL && strstr(why, "rules[0]") != NULL);
    why = lbx_test_init("{\"rules\": [{\"percent\": 150, \"group\": {\"a\": \"b\"}}]}");
    LBX_EXPECT(why != NULL && strstr(why, "percent") != NULL);
    why = lbx_test_init("{\"rules\": [{\"header\": \"x\", \"group\": {}}]}");
    LBX_EXPECT(why != NULL && strstr(why, "group is empty") != NULL);
    LBX_EXPECT(lbx_test_init("{\"rules\": [") != NULL);
}

int main(void) {
    LBX_RUN(the_api_path_goes_to_the_api_pool);
    LBX_RUN(the_canary_header_goes_to_the_canary);
    LBX_RUN(the_beta_cookie_goes_to_the_canary);
    LBX_RUN(the_rest_goes_to_the_least_loaded_stable_backend);
    LBX_RUN(a_down_group_falls_back_to_the_default_group);
    LBX_RUN(nobody_usable_means_no_opinion);
    LBX_RUN(a_retry_skips_the_tried_backend);
    LBX_RUN(a_percent_rule_sends_about_that_share);
    LBX_RUN(bad_configurations_are_refused_with_the_rule_named);
    return lbx_test_finish();
}
