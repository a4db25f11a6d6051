//! Property: a backend sees a complete request body only if the client sent a complete one,
//! byte for byte — whatever the chunk sizes, however TCP splits the writes, wherever the
//! client stops, resets or breaks the framing. And nothing is ever sent twice.
//!
//! Each case is a `PUT` (idempotent, so retries are allowed) through one lbx with two
//! recording backends and ejection after a single failure: a replay, a completed partial
//! body, or a client fault counted against a backend would all show.
//!
//! A plain `cargo test` runs [`DEFAULT_CASES`] cases from the fixed seed [`CI_SEED`], so a CI
//! failure names inputs any machine regenerates. To explore new inputs, run longer from a random
//! seed (the seed is printed, and named on failure with the case count that reproduces it:
//! `LBX_FUZZ_SEED=<seed> LBX_FUZZ_CASES=<n>`):
//!
//! ```text
//! LBX_FUZZ_SEED=random LBX_FUZZ_CASES=2000 cargo test -p lbx --test integration body_relay_property -- --nocapture
//! ```
//!
//! A seed fixes the inputs (bodies, chunk sizes, pauses, where the client stops), not how the
//! machine schedules them; keep a failing input as a plain test once understood.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestRunner};

use lbx::fuzz_settings::fuzz_settings;

use crate::support::{
    RawBackend, RawClient, RawRequest, TestProxy, admin_get, config_for_urls, eventually,
};

/// Cases run by a plain `cargo test`.
const DEFAULT_CASES: u32 = 96;

/// The seed a plain `cargo test` (and so CI) uses: the same inputs on every run and machine.
const CI_SEED: u64 = 0x6c62_785f_626f;

/// How the client's upload ends.
#[derive(Debug, Clone)]
enum Ending {
    /// The whole body, properly terminated.
    Complete,
    /// The first `n` bytes of the wire body, then a close (FIN).
    Truncate(usize),
    /// The first `n` bytes, then a reset.
    Reset(usize),
    /// The first `n` bytes (ending where a chunk-size line is due), then an invalid one
    /// (chunked only).
    Malformed(usize),
}

#[derive(Debug, Clone)]
struct Case {
    body: Vec<u8>,
    /// Chunk sizes for a chunked body; `None`: Content-Length.
    chunks: Option<Vec<usize>>,
    /// Byte offsets into the wire body where the client pauses between writes.
    pauses: Vec<usize>,
    ending: Ending,
}

impl Case {
    /// Offsets in the wire body where a chunk-size line starts.
    fn chunk_starts(&self) -> Vec<usize> {
        let mut starts = vec![0];
        let Some(sizes) = &self.chunks else {
            return starts;
        };
        let (mut at, mut left) = (0, self.body.len());
        let mut sizes = sizes.iter().cycle();
        while left > 0 {
            let n = (*sizes.next().unwrap()).clamp(1, left);
            at += format!("{n:x}\r\n").len() + n + 2;
            left -= n;
            starts.push(at);
        }
        starts
    }

    /// The body as the client frames it.
    fn wire_body(&self) -> Vec<u8> {
        let Some(sizes) = &self.chunks else {
            return self.body.clone();
        };
        let mut wire = Vec::new();
        let mut rest = &self.body[..];
        let mut sizes = sizes.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).clamp(1, rest.len());
            wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            wire.extend_from_slice(&rest[..n]);
            wire.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        wire
    }
}

fn case() -> impl Strategy<Value = Case> {
    let body = prop::collection::vec(any::<u8>(), 0..3000);
    let chunks = prop::option::of(prop::collection::vec(1usize..700, 1..6));
    let pauses = prop::collection::vec(0usize..4000, 0..3);
    let ending = prop_oneof![
        3 => Just(0u8),
        1 => Just(1u8),
        1 => Just(2u8),
        1 => Just(3u8),
    ];
    (body, chunks, pauses, ending, any::<prop::sample::Index>()).prop_map(
        |(body, chunks, pauses, kind, at)| {
            let mut case = Case {
                body,
                chunks,
                pauses,
                ending: Ending::Complete,
            };
            let wire_len = case.wire_body().len();
            // A cut strictly inside the body: a cut at its very end would be complete.
            let cut = if wire_len > 1 {
                at.index(wire_len - 1)
            } else {
                0
            };
            case.ending = match kind {
                _ if wire_len == 0 => Ending::Complete,
                1 => Ending::Truncate(cut),
                2 => Ending::Reset(cut),
                3 if case.chunks.is_some() => {
                    let starts = case.chunk_starts();
                    Ending::Malformed(starts[at.index(starts.len())])
                }
                3 => Ending::Truncate(cut),
                _ => Ending::Complete,
            };
            case
        },
    )
}

/// Send one case as `PUT /case/<n>`; returns lbx's answer (empty when the client left).
async fn send(proxy: &TestProxy, n: usize, case: &Case) -> String {
    let framing = match &case.chunks {
        Some(_) => "Transfer-Encoding: chunked".to_string(),
        None => format!("Content-Length: {}", case.body.len()),
    };
    let head = format!(
        "PUT /case/{n} HTTP/1.1\r\nHost: prop.example\r\n{framing}\r\nConnection: close\r\n\r\n"
    );
    let wire = case.wire_body();
    let (sent, tail): (&[u8], &[u8]) = match case.ending {
        Ending::Complete => (&wire, b""),
        Ending::Truncate(cut) | Ending::Reset(cut) => (&wire[..cut], b""),
        // Where a chunk-size line is due, one that is not a size.
        Ending::Malformed(cut) => (&wire[..cut], b"zz\r\n"),
    };
    let mut client = RawClient::connect(proxy.addr).await;
    client.send(head.as_bytes()).await;
    let mut from = 0;
    let mut pauses: Vec<usize> = case.pauses.iter().map(|p| p % (sent.len() + 1)).collect();
    pauses.sort_unstable();
    for pause in pauses {
        client.send(&sent[from..pause.max(from)]).await;
        from = pause.max(from);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    client.send(&sent[from..]).await;
    client.send(tail).await;
    match case.ending {
        Ending::Complete | Ending::Malformed(_) => {
            client.read_to_close(Duration::from_secs(5)).await
        }
        Ending::Truncate(_) => {
            client.abort(false).await;
            String::new()
        }
        Ending::Reset(_) => {
            client.abort(true).await;
            String::new()
        }
    }
}

fn check(case: &Case, answer: &str, seen: &[RawRequest]) -> Result<(), String> {
    let expected_status = match case.ending {
        Ending::Complete => Some("HTTP/1.1 200 "),
        Ending::Malformed(_) => Some("HTTP/1.1 400 "),
        _ => None,
    };
    if let Some(status) = expected_status
        && !answer.starts_with(status)
    {
        return Err(format!("expected {status}, got {answer:?}"));
    }
    if seen.len() != 1 {
        return Err(format!(
            "the backends saw {} requests (a replay or a loss)",
            seen.len()
        ));
    }
    let request = &seen[0];
    match case.ending {
        Ending::Complete => {
            if !request.complete || request.body != case.body {
                return Err(format!(
                    "complete upload arrived as {} of {} bytes (complete: {})",
                    request.body.len(),
                    case.body.len(),
                    request.complete
                ));
            }
        }
        _ => {
            if request.complete {
                return Err("an upload the client broke off reached the backend complete".into());
            }
            if !case.body.starts_with(&request.body) {
                return Err("the backend got bytes the client never sent".into());
            }
        }
    }
    Ok(())
}

#[test]
fn a_backend_sees_a_complete_body_only_if_the_client_sent_one() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (a, b, proxy) = runtime.block_on(async {
        let (a, b) = (RawBackend::recording().await, RawBackend::recording().await);
        let toml = config_for_urls(
            None,
            &[a.url(), b.url()],
            "[outlier]\nconsecutive_failures = 1\nbase_ejection = \"1m\"\n[retry]\nmax_attempts = 3\n",
        );
        (a, b, TestProxy::start(&toml).await)
    });
    let (seed, cases) = fuzz_settings(CI_SEED, DEFAULT_CASES);
    eprintln!("body relay property: {cases} cases from seed {seed}");
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    });
    let next = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&case(), |case| {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let path = format!("/case/{n} ");
        let seen = runtime.block_on(async {
            let answer = send(&proxy, n, &case).await;
            // The backend records a broken-off request once lbx closes its connection.
            let seen = eventually(Duration::from_secs(5), || {
                let mut seen = a.requests();
                seen.extend(b.requests());
                let seen: Vec<RawRequest> = seen
                    .into_iter()
                    .filter(|r| r.request_line().contains(&path))
                    .collect();
                async move { (!seen.is_empty()).then_some(seen) }
            })
            .await
            .unwrap_or_default();
            // A replay would arrive right after the first attempt: look once more.
            tokio::time::sleep(Duration::from_millis(30)).await;
            let mut again = a.requests();
            again.extend(b.requests());
            let replays = again
                .iter()
                .filter(|r| r.request_line().contains(&path))
                .count();
            (answer, seen, replays)
        });
        let (answer, seen, replays) = seen;
        if replays != seen.len() {
            return Err(TestCaseError::fail(format!(
                "{replays} requests for one upload"
            )));
        }
        check(&case, &answer, &seen).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}\nrerun with LBX_FUZZ_SEED={seed} LBX_FUZZ_CASES={cases}");
    }
    // No client's broken upload counted against either backend.
    let (_, backends) = runtime.block_on(admin_get(&proxy.admin_url("/admin/backends")));
    assert!(!backends.contains("\"ejected\": true"), "{backends}");
}
