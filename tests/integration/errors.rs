//! Errors lbx answers itself: 502 when the chosen backend is unreachable, 503 when no backend
//! is usable, each with a short generic body and a request id; the details (backend, address,
//! OS error) go to the log line with the same id.

use std::time::Duration;

use crate::support::{
    LbxProcess, RefusingPort, TestBackend, TestProxy, admin_get, config_for_urls, eventually, get,
    metric, plugins,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_backend_gives_502_then_503_once_no_backend_is_usable() {
    let stopped = RefusingPort::reserve();
    let toml = config_for_urls(
        Some(plugins::LEAST_CONN),
        &[stopped.url()],
        "[outlier]\nconsecutive_failures = 2\nbase_ejection = \"1m\"\n",
    );
    let proxy = TestProxy::start(&toml).await;

    for _ in 0..2 {
        let (status, headers, body) = get(&proxy.url("/")).await;
        assert_eq!(status, 502);
        assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
        let id = headers["x-request-id"].to_str().unwrap();
        assert_eq!(
            body,
            format!("502 Bad Gateway: the backend could not be reached\nrequest id: {id}\n")
        );
    }
    // Two consecutive failures eject the only backend: nothing is usable any more.
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!(status, 503);
    let id = headers["x-request-id"].to_str().unwrap();
    assert_eq!(
        body,
        format!("503 Service Unavailable: no backend is available\nrequest id: {id}\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sees_no_internals_and_the_log_line_with_its_request_id_has_them() {
    let stopped = RefusingPort::reserve();
    let lbx = LbxProcess::run(&["--backend", &stopped.url()]);
    let (status, headers, body) = get(&format!("http://{}/", lbx.addr)).await;
    assert_eq!(status, 502);
    let id = headers["x-request-id"].to_str().unwrap().to_string();
    assert!(!body.contains(&stopped.addr.to_string()), "{body}");
    assert!(
        !body.contains("os error") && !body.contains("refused"),
        "{body}"
    );
    assert!(body.contains(&id));
    let line = eventually(Duration::from_secs(5), || {
        let log = lbx.log();
        let id = id.clone();
        async move {
            log.lines()
                .find(|l| l.contains(&id) && l.contains("backend error"))
                .map(str::to_string)
        }
    })
    .await
    .expect("a log line with the request id");
    assert!(line.contains(&stopped.addr.to_string()), "{line}");
    assert!(line.contains("refused"), "{line}");
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
    // Retries alone would also give 20 answers from `good`: the dead backend must be out of
    // rotation, ejected once (its first refused connection), for the minute configured.
    let id = dead.addr.to_string();
    let (status, backend) = admin_get(&proxy.admin_url(&format!("/admin/backends/{id}"))).await;
    assert_eq!(status, 200, "{backend}");
    let backend: serde_json::Value = serde_json::from_str(&backend).unwrap();
    assert_eq!(backend["state"], "ejected", "{backend}");
    assert_eq!(backend["usable"], false, "{backend}");
    let (_, metrics) = admin_get(&proxy.admin_url("/metrics")).await;
    assert_eq!(
        metric(
            &metrics,
            &format!("lbx_backend_ejections_total{{backend=\"{id}\"}}")
        ),
        1.0
    );
}
