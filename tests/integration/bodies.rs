//! Bodies stream through lbx in both directions without being held in memory.

use std::hash::Hasher;

use http::Request;
use http_body_util::BodyExt;

use crate::support::{LbxProcess, PatternBody, TestBackend, http1_client, plugins, send};

const TEN_MIB: u64 = 10 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_mib_bodies_pass_through_intact_without_lbx_memory_growing_by_their_size() {
    let backend = TestBackend::named("a").await;
    let lbx = LbxProcess::run(&["--plugin", plugins::LEAST_CONN, "--backend", &backend.url()]);
    let client = http1_client();
    let base = format!("http://{}", lbx.addr);

    // Warm up the connection pools and plugin instances before taking the baseline.
    let warm = Request::post(format!("{base}/sum"))
        .body(PatternBody::new(64 * 1024).boxed())
        .unwrap();
    assert_eq!(send(&client, warm).await.0, 200);
    let baseline = lbx.peak_rss_kib();

    // Upload: the backend hashes what arrives.
    let upload = Request::post(format!("{base}/sum"))
        .body(PatternBody::new(TEN_MIB).boxed())
        .unwrap();
    let (status, _, answer) = send(&client, upload).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        PatternBody::expected_sum(TEN_MIB),
        "upload was altered"
    );

    // Download: hash what arrives here, frame by frame.
    let response = client
        .request(
            Request::get(format!("{base}/bytes/{TEN_MIB}"))
                .body(http_body_util::Empty::new().boxed())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let (mut hasher, mut length) = (std::hash::DefaultHasher::new(), 0u64);
    while let Some(frame) = body.frame().await {
        if let Ok(chunk) = frame.unwrap().into_data() {
            length += chunk.len() as u64;
            hasher.write(&chunk);
        }
    }
    assert_eq!(
        format!("{length} {:x}", hasher.finish()),
        PatternBody::expected_sum(TEN_MIB),
        "download was altered"
    );

    let growth_kib = lbx.peak_rss_kib().saturating_sub(baseline);
    assert!(
        growth_kib < 4 * 1024,
        "lbx peak memory grew by {growth_kib} KiB while relaying 2 x 10 MiB"
    );
}
