//! The plugin library through lbx, over real sockets: sticky sessions with real cookies,
//! weights, consistent hashing, latency-aware choice and label routing.

use std::time::Duration;

use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Empty};

use crate::support::{
    RawBackend, TestBackend, TestProxy, admin_backend, admin_get, config_for_urls, eventually, get,
    get_with, http1_client, metric, plugins, send, tally,
};

/// `name=value` of a Set-Cookie header.
fn cookie_pair(headers: &HeaderMap) -> Option<String> {
    let set_cookie = headers.get("set-cookie")?.to_str().unwrap();
    Some(set_cookie.split(';').next().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_keeps_a_client_on_its_backend_and_moves_it_when_that_goes_down() {
    let backends = [
        TestBackend::named("a").await,
        TestBackend::named("b").await,
        TestBackend::named("c").await,
    ];
    let urls: Vec<String> = backends.iter().map(TestBackend::url).collect();
    let toml = config_for_urls(
        Some(plugins::STICKY_COOKIE),
        &urls,
        "[plugin.config]\nsecret = \"test\"\nmax_age = 60\n\
         [health]\npath = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"50ms\"\nfall = 1\nrise = 1\n",
    );
    let proxy = TestProxy::start(&toml).await;

    let (status, headers, first) = get_with(&proxy, "/", &[]).await;
    assert_eq!(status, 200);
    let cookie = cookie_pair(&headers).expect("a new client gets the sticky cookie");
    let set_cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.contains("Max-Age=60") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    for _ in 0..100 {
        let (_, headers, body) = get_with(&proxy, "/", &[("cookie", &cookie)]).await;
        assert_eq!(body, first, "the client stays on its backend");
        assert!(!headers.contains_key("set-cookie"));
    }

    // Its backend fails its health check: the client moves, with a new cookie.
    let (home, _) = backends
        .iter()
        .zip(["a", "b", "c"])
        .find(|(_, name)| *name == first)
        .unwrap();
    home.set_health(503);
    let home_id = home.addr.to_string();
    let out = eventually(Duration::from_secs(30), || async {
        (admin_backend(proxy.admin, &home_id).await?["down"] == true).then_some(())
    })
    .await;
    assert!(out.is_some(), "the failing health check never took it out");
    let (_, headers, moved) = get_with(&proxy, "/", &[("cookie", &cookie)]).await;
    assert_ne!(moved, first);
    let new_cookie = cookie_pair(&headers).expect("a moved client gets a new cookie");
    assert_ne!(new_cookie, cookie);
    let (_, _, again) = get_with(&proxy, "/", &[("cookie", &new_cookie)]).await;
    assert_eq!(again, moved);

    // A forged value is ignored: a fresh choice and a real cookie.
    let (_, headers, _) = get_with(&proxy, "/", &[("cookie", "lbx_sticky=deadbeefdeadbeef")]).await;
    assert!(cookie_pair(&headers).is_some_and(|c| c != "lbx_sticky=deadbeefdeadbeef"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_follows_the_configured_weights_exactly() {
    let backends = [
        TestBackend::named("heavy").await,
        TestBackend::named("light1").await,
        TestBackend::named("light2").await,
    ];
    let mut toml = String::new();
    toml.push_str(&format!(
        "[plugin]\npath = {:?}\ndeadline = \"1s\"\n",
        plugins::WEIGHTED_ROUND_ROBIN
    ));
    for (backend, weight) in backends.iter().zip([5, 1, 1]) {
        toml.push_str(&format!(
            "[[backend]]\nurl = {:?}\nweight = {weight}\n",
            backend.url()
        ));
    }
    let proxy = TestProxy::start(&toml).await;
    let mut answers = Vec::new();
    for _ in 0..70 {
        answers.push(get(&proxy.url("/")).await.2);
    }
    let counts = tally(answers.clone());
    assert_eq!(
        (counts["heavy"], counts["light1"], counts["light2"]),
        (50, 10, 10)
    );
    assert_eq!(
        answers[..7],
        [
            "heavy", "heavy", "light1", "heavy", "light2", "heavy", "heavy"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_sends_each_user_to_one_backend() {
    let backends = [
        TestBackend::named("a").await,
        TestBackend::named("b").await,
        TestBackend::named("c").await,
    ];
    let urls: Vec<String> = backends.iter().map(TestBackend::url).collect();
    let toml = config_for_urls(
        Some(plugins::CONSISTENT_HASH),
        &urls,
        "[plugin.config]\nkey = \"header:x-user\"\n",
    );
    let proxy = TestProxy::start(&toml).await;
    let mut homes = std::collections::HashSet::new();
    for user in 0..30 {
        let user = format!("user-{user}");
        let (_, _, home) = get_with(&proxy, "/", &[("x-user", &user)]).await;
        for _ in 0..3 {
            assert_eq!(get_with(&proxy, "/", &[("x-user", &user)]).await.2, home);
        }
        homes.insert(home);
    }
    assert_eq!(homes.len(), 3, "30 users spread over all backends");

    // Without the key the plugin has no opinion: the built-in choice answers, and the metrics
    // say it was the plugin's call to hand over, not the absence of a plugin.
    for _ in 0..4 {
        assert_eq!(get(&proxy.url("/")).await.0, 200);
    }
    let (_, text) = admin_get(&proxy.admin_url("/metrics")).await;
    assert_eq!(
        metric(&text, "lbx_decisions_total{by=\"fallback_no_opinion\"}"),
        4.0,
        "{text}"
    );
    assert_eq!(metric(&text, "lbx_decisions_total{by=\"builtin\"}"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_ewma_keeps_traffic_off_a_slow_backend() {
    let fast1 = TestBackend::named("fast1").await;
    let fast2 = TestBackend::named("fast2").await;
    let slow = TestBackend::slow("slow", Duration::from_millis(300)).await;
    let urls = [fast1.url(), fast2.url(), slow.url()];
    let proxy = TestProxy::start(&config_for_urls(Some(plugins::P2C_EWMA), &urls, "")).await;
    let mut answers = Vec::new();
    for _ in 0..60 {
        answers.push(get(&proxy.url("/")).await.2);
    }
    let counts = tally(answers);
    // Once its latency is known the slow backend loses every draw against a fast one, unless
    // a fast backend's latency spikes past 300 ms (a debug build on a busy machine): a fair
    // share would be 20 of 60.
    assert!(counts.get("slow").copied().unwrap_or(0) <= 5, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_router_routes_by_path_header_and_labels() {
    let stable = TestBackend::named("stable").await;
    let canary = TestBackend::named("canary").await;
    let toml = format!(
        "[plugin]\npath = {:?}\ndeadline = \"1s\"\n[plugin.config]\n\
         default = {{ version = \"stable\" }}\n\
         rules = [{{ header = \"x-canary\", equals = \"1\", group = {{ version = \"canary\" }} }}]\n\
         [[backend]]\nurl = {:?}\nlabels = {{ version = \"stable\" }}\n\
         [[backend]]\nurl = {:?}\nlabels = {{ version = \"canary\" }}\n",
        plugins::HEADER_ROUTER,
        stable.url(),
        canary.url()
    );
    let proxy = TestProxy::start(&toml).await;
    assert_eq!(
        get_with(&proxy, "/", &[("x-canary", "1")]).await.2,
        "canary"
    );
    for _ in 0..5 {
        assert_eq!(get(&proxy.url("/")).await.2, "stable");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_router_strips_a_path_prefix_and_routes_by_cookie() {
    let api = RawBackend::recording().await;
    let web = TestBackend::named("web").await;
    let beta = TestBackend::named("beta").await;
    let toml = format!(
        "[plugin]\npath = {:?}\ndeadline = \"1s\"\n[plugin.config]\n\
         default = {{ pool = \"web\" }}\n\
         rules = [\n\
           {{ path_prefix = \"/api\", strip_prefix = true, group = {{ pool = \"api\" }} }},\n\
           {{ cookie = \"beta\", equals = \"yes\", group = {{ pool = \"beta\" }} }},\n\
         ]\n\
         [[backend]]\nurl = {:?}\nlabels = {{ pool = \"api\" }}\n\
         [[backend]]\nurl = {:?}\nlabels = {{ pool = \"web\" }}\n\
         [[backend]]\nurl = {:?}\nlabels = {{ pool = \"beta\" }}\n",
        plugins::HEADER_ROUTER,
        api.url(),
        web.url(),
        beta.url()
    );
    let proxy = TestProxy::start(&toml).await;
    for (path, upstream) in [("/api/users?x=1", "/users?x=1"), ("/api", "/")] {
        assert_eq!(get_with(&proxy, path, &[]).await.0, 200);
        let seen = api.requests().pop().unwrap();
        assert_eq!(seen.request_line(), format!("GET {upstream} HTTP/1.1"));
    }
    assert_eq!(
        get_with(&proxy, "/page", &[("cookie", "a=1; beta=yes")])
            .await
            .2,
        "beta"
    );
    assert_eq!(
        get_with(&proxy, "/page", &[("cookie", "beta=no")]).await.2,
        "web"
    );
    assert_eq!(get_with(&proxy, "/page", &[]).await.2, "web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_with_bounded_loads_spills_a_busy_key_and_brings_it_home() {
    let backends = [
        TestBackend::slow("a", Duration::from_millis(400)).await,
        TestBackend::slow("b", Duration::from_millis(400)).await,
    ];
    let urls: Vec<String> = backends.iter().map(TestBackend::url).collect();
    let concurrent = |proxy: &TestProxy| {
        let url = proxy.url("/");
        async move {
            // Collected first: all six are under way before the first answer.
            let requests: Vec<_> = (0..6)
                .map(|_| {
                    let url = url.clone();
                    tokio::spawn(async move {
                        let request = Request::get(url)
                            .header("x-user", "alice")
                            .body(Empty::new().boxed())
                            .unwrap();
                        send(&http1_client(), request).await.2
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for request in requests {
                answers.push(request.await.unwrap());
            }
            tally(answers)
        }
    };

    // Without a bound, one key is one backend however busy it gets.
    let plain = config_for_urls(
        Some(plugins::CONSISTENT_HASH),
        &urls,
        "[plugin.config]\nkey = \"header:x-user\"\n",
    );
    let proxy = TestProxy::start(&plain).await;
    let (_, _, home) = get_with(&proxy, "/", &[("x-user", "alice")]).await;
    assert_eq!(concurrent(&proxy).await, [(home.clone(), 6)].into());
    drop(proxy);

    // Bounded: past 1.25 × the average in flight, alice's requests spill to the other
    // backend; once the load is gone she is home again.
    let bounded = config_for_urls(
        Some(plugins::CONSISTENT_HASH),
        &urls,
        "[plugin.config]\nkey = \"header:x-user\"\nbalance_factor = 1.25\n",
    );
    let proxy = TestProxy::start(&bounded).await;
    assert_eq!(get_with(&proxy, "/", &[("x-user", "alice")]).await.2, home);
    let spread = concurrent(&proxy).await;
    assert_eq!(spread.len(), 2, "both backends served alice: {spread:?}");
    assert!(spread[&home] >= 3, "home still takes its share: {spread:?}");
    assert_eq!(get_with(&proxy, "/", &[("x-user", "alice")]).await.2, home);
}
