//! Errors lbx answers itself: 502 when the chosen backend is unreachable, 503 when no backend
//! is usable, each with the documented plain-text body.

use crate::support::{RefusingPort, TestBackend, TestProxy, config_for_urls, get, plugins};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_backend_gives_502_then_503_once_no_backend_is_usable() {
    let stopped = RefusingPort::reserve();
    let toml = config_for_urls(
        Some(plugins::LEAST_CONN),
        &[stopped.url()],
        "[outlier]\nconsecutive_failures = 2\nbase_ejection = \"1m\"\n",
    );
    let backend_id = stopped.addr.to_string();
    let proxy = TestProxy::start(&toml).await;

    for _ in 0..2 {
        let (status, headers, body) = get(&proxy.url("/")).await;
        assert_eq!(status, 502);
        assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
        assert!(
            body.starts_with(&format!("lbx: backend {backend_id} unreachable: ")),
            "unexpected 502 body: {body:?}"
        );
        assert!(
            body.contains("refused"),
            "502 body should say why: {body:?}"
        );
    }
    // Two consecutive failures eject the only backend: nothing is usable any more.
    let (status, _, body) = get(&proxy.url("/")).await;
    assert_eq!(status, 503);
    assert_eq!(body, "lbx: no usable backend\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_costs_no_failed_request_and_is_ejected() {
    let good = TestBackend::named("good").await;
    let dead = RefusingPort::reserve();
    let toml = config_for_urls(
        Some(plugins::ROUND_ROBIN),
        &[good.url(), dead.url()],
        "[outlier]\nconsecutive_failures = 1\nbase_ejection = \"1m\"\n",
    );
    let proxy = TestProxy::start(&toml).await;
    for _ in 0..20 {
        let (status, _, body) = get(&proxy.url("/")).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "good"));
    }
    assert_eq!(good.requests(), 20);
}
