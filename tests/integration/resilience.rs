//! Failure handling over real sockets and processes: active health checks, outlier ejection,
//! retries, timeouts, slowloris protection and graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    BackendProcess, BlackHole, LbxProcess, PatternBody, RefusingPort, ResettingBackend,
    TestBackend, TestProxy, admin_backend, config, config_for_urls, eventually, get, http1_client,
    plugins, send,
};

/// How long a test waits for a state it expects before calling it a failure: a bound on
/// liveness, never on speed.
const LIVENESS: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_backend_under_load_fails_no_request_and_a_restart_brings_it_back() {
    let mut backends: Vec<BackendProcess> = ["b1", "b2", "b3"]
        .map(BackendProcess::start)
        .into_iter()
        .collect();
    let urls: Vec<String> = backends.iter().map(BackendProcess::url).collect();
    let health =
        "[health]\npath = \"/\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 2\nfall = 2\n";
    let toml = config_for_urls(Some(plugins::ROUND_ROBIN), &urls, health);
    let proxy = TestProxy::start(&toml).await;
    let url = proxy.url("/");

    // Steady, bounded load: 4 clients, each sending requests back to back until stopped.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(std::sync::Mutex::new(Vec::<(Instant, String)>::new()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            let (failures, answers) = (failures.clone(), answers.clone());
            tokio::spawn(async move {
                let client = http1_client();
                while !stop.load(Ordering::Relaxed) {
                    let request = Request::get(&url).body(Empty::new().boxed()).unwrap();
                    match client.request(request).await {
                        Ok(response) if response.status() == 200 => {
                            let body = response.into_body().collect().await.unwrap().to_bytes();
                            let name = String::from_utf8_lossy(&body).trim().to_string();
                            answers.lock().unwrap().push((Instant::now(), name));
                        }
                        _ => {
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    let answered = || answers.lock().unwrap().len();
    let served_at_least = |n: usize| {
        eventually(
            LIVENESS,
            move || async move { (answered() >= n).then_some(()) },
        )
    };

    served_at_least(100)
        .await
        .expect("the load never got going");
    backends[1].kill();
    let b2 = backends[1].addr.to_string();
    eventually(LIVENESS, || async {
        let down = admin_backend(proxy.admin, &b2).await?["down"] == true;
        down.then_some(())
    })
    .await
    .expect("the health checks never took the killed backend out");
    // Load goes on while it is out.
    served_at_least(answered() + 100)
        .await
        .expect("the load stalled while b2 was down");

    let b2 = &mut backends[1];
    tokio::task::block_in_place(|| b2.restart());
    let restarted = Instant::now();
    // A liveness bound: how soon after `rise` passing checks it returns is not timed here.
    let back_after = eventually(LIVENESS, || async {
        let answers = answers.lock().unwrap();
        answers
            .iter()
            .find(|(at, name)| *at > restarted && name == "b2")
            .map(|(at, _)| *at - restarted)
    })
    .await
    .expect("b2 never came back into rotation");
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    assert_eq!(failures.load(Ordering::SeqCst), 0, "client requests failed");
    eprintln!(
        "kill test: {} requests, 0 failed, b2 back in rotation {} ms after restart",
        answered(),
        back_after.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_failing_its_health_check_gets_no_traffic_until_it_recovers() {
    let well = TestBackend::named("well").await;
    let sick = TestBackend::named("sick").await;
    sick.set_health(500);
    let proxy = TestProxy::start(&config(
        Some(plugins::ROUND_ROBIN),
        &[&well, &sick],
        "[health]\npath = \"/healthz\"\ninterval = \"50ms\"\nrise = 1\nfall = 1\n",
    ))
    .await;
    let sick_id = sick.addr.to_string();
    let down_is = |wanted: bool| {
        let sick_id = sick_id.clone();
        let admin = proxy.admin;
        eventually(LIVENESS, move || {
            let sick_id = sick_id.clone();
            async move { (admin_backend(admin, &sick_id).await?["down"] == wanted).then_some(()) }
        })
    };
    down_is(true)
        .await
        .expect("the failing health check never took the backend out");

    for _ in 0..30 {
        assert_eq!(get(&proxy.url("/")).await.2, "well");
    }
    assert_eq!(sick.requests(), 0);
    // Its main path would have answered: only the health check keeps it out.
    assert_eq!(get(&format!("{}/", sick.url())).await.2, "sick");

    sick.set_health(200);
    down_is(false)
        .await
        .expect("the passing health check never put the backend back");
    let before = sick.requests();
    for _ in 0..10 {
        assert_eq!(get(&proxy.url("/")).await.0, 200);
    }
    assert_eq!(
        sick.requests() - before,
        5,
        "a recovered backend shares the load again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_gives_504_and_other_clients_are_unaffected() {
    let hole = BlackHole::start().await;
    let good = TestBackend::named("good").await;
    // Long enough that any answer a working lbx gives `good` comes first, even on a busy
    // machine: the test shows ordering, not speed.
    let timeout = Duration::from_secs(3);
    let toml = config_for_urls(
        Some(plugins::ROUND_ROBIN),
        &[hole.url(), good.url()],
        "[timeouts]\nresponse_headers = \"3s\"\n[retry]\nmax_attempts = 1\n",
    );
    let proxy = TestProxy::start(&toml).await;

    // Round robin: the first request goes to the black hole, the second to `good`.
    let url = proxy.url("/");
    let stuck = tokio::spawn(async move {
        let started = Instant::now();
        (get(&url).await, started.elapsed())
    });
    let hole_id = hole.addr.to_string();
    eventually(LIVENESS, || async {
        let waiting = admin_backend(proxy.admin, &hole_id).await?["in_flight"] == 1;
        waiting.then_some(())
    })
    .await
    .expect("the first request never reached the black hole");
    let (status, _, body) = get(&proxy.url("/")).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "good"));
    assert!(
        !stuck.is_finished(),
        "other clients were held up: answered only after the stuck request timed out"
    );

    let ((status, _, body), took) = stuck.await.unwrap();
    assert_eq!(status, 504);
    assert!(
        body.starts_with("504 Gateway Timeout: the backend did not answer in time\n"),
        "{body}"
    );
    assert!(took >= timeout && took < timeout + LIVENESS, "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_that_times_out_is_retried_on_another_backend() {
    let hole = BlackHole::start().await;
    let good = TestBackend::named("good").await;
    let toml = config_for_urls(
        Some(plugins::ROUND_ROBIN),
        &[hole.url(), good.url()],
        "[timeouts]\nresponse_headers = \"200ms\"\n",
    );
    let proxy = TestProxy::start(&toml).await;
    for _ in 0..4 {
        let (status, _, body) = get(&proxy.url("/")).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "good"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_even_for_a_post_with_a_body() {
    let gone = RefusingPort::reserve();
    let good = TestBackend::named("good").await;
    let toml = config_for_urls(Some(plugins::ROUND_ROBIN), &[gone.url(), good.url()], "");
    let proxy = TestProxy::start(&toml).await;
    for _ in 0..4 {
        let request = Request::post(proxy.url("/sum"))
            .body(PatternBody::new(100_000).boxed())
            .unwrap();
        let (status, _, body) = send(&http1_client(), request).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            PatternBody::expected_sum(100_000),
            "body must arrive intact"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_body_reached_a_resetting_backend_is_not_replayed() {
    let resetter = ResettingBackend::start(32 * 1024).await;
    let good = TestBackend::named("good").await;
    let toml = config_for_urls(
        Some(plugins::ROUND_ROBIN),
        &[resetter.url(), good.url()],
        "",
    );
    let proxy = TestProxy::start(&toml).await;

    let request = Request::post(proxy.url("/sum"))
        .body(PatternBody::new(1024 * 1024).boxed())
        .unwrap();
    // lbx answers 502 while the client may still be uploading the rest of the body; such a
    // client can see its write fail before it reads the 502. Either way it must not succeed.
    match http1_client().request(request).await {
        Ok(response) => assert_eq!(response.status(), 502),
        Err(e) => assert!(format!("{e:?}").contains("BodyWrite"), "{e:?}"),
    }
    assert_eq!(resetter.requests(), 1);
    assert_eq!(
        good.requests(),
        0,
        "the POST must not be replayed on another backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_headers_byte_by_byte_is_cut_off() {
    let backend = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(
        None,
        &[&backend],
        "[timeouts]\nrequest_headers = \"300ms\"\n",
    ))
    .await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let head = b"GET / HTTP/1.1\r\nHost: slow.example\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut cut_off = false;
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        // lbx answers 408 and closes: the answer, then EOF, shows up as readable.
        let mut answer = Vec::new();
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(100), stream.read_to_end(&mut answer)).await
        {
            let answer = String::from_utf8_lossy(&answer);
            assert!(read.is_ok() || answer.is_empty(), "{read:?}");
            assert!(
                answer.is_empty()
                    || (answer.starts_with("HTTP/1.1 408 ")
                        && answer.contains("Connection: close\r\n")),
                "lbx answered a request it never got: {answer:?}"
            );
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "lbx kept waiting for the slow client");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cut off after {:?}",
        started.elapsed()
    );
    assert_eq!(backend.requests(), 0);
}

#[test]
fn sigterm_lets_the_slow_request_finish_refuses_new_connections_and_exits_0() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backend = runtime.block_on(TestBackend::slow("slow", Duration::from_millis(1500)));
    let mut lbx = LbxProcess::run(&["--backend", &backend.url(), "--drain-secs", "10"]);
    let addr = lbx.addr;
    let slow_request = runtime.spawn(async move {
        let client = http1_client();
        let request = Request::get(format!("http://{addr}/"))
            .body(Empty::<Bytes>::new().boxed())
            .unwrap();
        send(&client, request).await
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &lbx.pid().to_string()])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "lbx still accepts connections while draining"
    );
    let (status, _, body) = runtime.block_on(slow_request).unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "slow"));
    let exit = lbx.wait();
    assert!(exit.success(), "lbx exited with {exit:?}");
}

/// A request whose body reached a backend that reset mid-body, sent again to a good one.
async fn replay_after_reset(
    method: http::Method,
    extra: &str,
    body_len: u64,
    reset_after: usize,
) -> (u16, String, usize) {
    let resetter = ResettingBackend::start(reset_after).await;
    let good = TestBackend::named("good").await;
    let toml = config_for_urls(
        Some(plugins::ROUND_ROBIN),
        &[resetter.url(), good.url()],
        extra,
    );
    let proxy = TestProxy::start(&toml).await;
    let request = Request::builder()
        .method(method)
        .uri(proxy.url("/sum"))
        .body(PatternBody::new(body_len).boxed())
        .unwrap();
    let (status, body) = match http1_client().request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
        Err(e) => (0, format!("{e:?}")),
    };
    assert_eq!(
        resetter.requests(),
        1,
        "the first attempt went to the resetting backend"
    );
    (status, body, good.requests())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_put_is_replayed_with_its_whole_body_after_a_mid_body_reset() {
    let (status, body, good_requests) =
        replay_after_reset(http::Method::PUT, "", 48 * 1024, 16 * 1024).await;
    assert_eq!((status, good_requests), (200, 1), "{body}");
    assert_eq!(
        body,
        PatternBody::expected_sum(48 * 1024),
        "replayed body must be intact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_replayed_after_a_mid_body_reset_only_when_the_operator_opts_in() {
    let opt_in = "[retry]\nnon_idempotent = true\n";
    let (status, body, good_requests) =
        replay_after_reset(http::Method::POST, opt_in, 48 * 1024, 16 * 1024).await;
    assert_eq!((status, good_requests), (200, 1), "{body}");
    assert_eq!(body, PatternBody::expected_sum(48 * 1024));

    let (status, _, good_requests) =
        replay_after_reset(http::Method::POST, "", 48 * 1024, 16 * 1024).await;
    assert_ne!(status, 200);
    assert_eq!(good_requests, 0, "without opt-in a POST is never replayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_outgrew_the_replay_limit_before_the_failure_is_not_replayed() {
    // 128 KiB reach the backend before it resets: more than the 32 KiB lbx may record.
    let limit = "[retry]\nreplay_limit_bytes = 32768\n";
    let (status, _, good_requests) =
        replay_after_reset(http::Method::PUT, limit, 256 * 1024, 128 * 1024).await;
    assert_ne!(status, 200);
    assert_eq!(good_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overall_request_deadline_bounds_retries_with_504() {
    let (first, second) = (BlackHole::start().await, BlackHole::start().await);
    let toml = config_for_urls(
        None,
        &[first.url(), second.url()],
        "[timeouts]\nresponse_headers = \"250ms\"\nrequest = \"400ms\"\n",
    );
    let proxy = TestProxy::start(&toml).await;
    let started = Instant::now();
    let (status, _, body) = get(&proxy.url("/")).await;
    // First attempt times out at 250 ms, the retry is cut short by the 400 ms deadline.
    assert_eq!(status, 504);
    assert!(
        body.starts_with("504 Gateway Timeout: the backend did not answer in time\n"),
        "{body}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "{took:?}"
    );
}
