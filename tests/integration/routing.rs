//! Routing plugins deciding real traffic.

use std::time::Duration;

use crate::support::{TestBackend, TestProxy, config, get, plugins, tally};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_splits_300_requests_exactly_evenly() {
    let (a, b, c) = (
        TestBackend::named("a").await,
        TestBackend::named("b").await,
        TestBackend::named("c").await,
    );
    let proxy = TestProxy::start(&config(Some(plugins::ROUND_ROBIN), &[&a, &b, &c], "")).await;

    let mut answers = Vec::new();
    for _ in 0..300 {
        let (status, _, body) = get(&proxy.url("/")).await;
        assert_eq!(status, 200);
        answers.push(body);
    }
    let counts = tally(answers);
    assert_eq!((counts["a"], counts["b"], counts["c"]), (100, 100, 100));
    assert_eq!((a.requests(), b.requests(), c.requests()), (100, 100, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_conn_sends_new_requests_away_from_a_backend_holding_slow_requests() {
    let fast1 = TestBackend::named("fast1").await;
    let fast2 = TestBackend::named("fast2").await;
    let slow = TestBackend::slow("slow", Duration::from_secs(3)).await;
    let proxy = TestProxy::start(&config(
        Some(plugins::LEAST_CONN),
        &[&fast1, &fast2, &slow],
        "",
    ))
    .await;

    // Six at once: ties are rotated, so the slow backend gets its share and holds on to it.
    let url = proxy.url("/");
    let burst: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while slow.requests() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow backend never got a request"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let held = slow.requests();

    // While those are held, every new request goes to a backend with fewer in flight.
    for _ in 0..30 {
        let (status, _, body) = get(&url).await;
        assert_eq!(status, 200);
        assert_ne!(
            body, "slow",
            "least_conn sent a request to the busy backend"
        );
    }
    assert_eq!(slow.requests(), held);
    assert_eq!(fast1.requests() + fast2.requests(), 30 + 6 - held);
    for request in burst {
        assert_eq!(request.await.unwrap().0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_plugin_uses_every_backend() {
    let (a, b) = (TestBackend::named("a").await, TestBackend::named("b").await);
    let proxy = TestProxy::start(&config(Some(plugins::RANDOM), &[&a, &b], "")).await;
    for _ in 0..40 {
        assert_eq!(get(&proxy.url("/")).await.0, 200);
    }
    assert!(a.requests() > 0 && b.requests() > 0);
    assert_eq!(a.requests() + b.requests(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_plugin_the_builtin_fallback_spreads_load() {
    let (a, b) = (TestBackend::named("a").await, TestBackend::named("b").await);
    let proxy = TestProxy::start(&config(None, &[&a, &b], "")).await;
    for _ in 0..10 {
        assert_eq!(get(&proxy.url("/")).await.0, 200);
    }
    assert_eq!((a.requests(), b.requests()), (5, 5));
}
