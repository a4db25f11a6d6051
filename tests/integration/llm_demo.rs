//! `lbx demo --llm` as a newcomer runs it, through the real binary: it compares llm_router
//! with least_conn on simulated replicas, its admin API shows every replica's scraped signals
//! while it runs (what the dashboard draws), it prints both policies in one table and exits 0;
//! and Ctrl-C stops it cleanly halfway.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::support::{LBX_BIN, admin_backend, eventually};

/// The real `lbx demo --llm`, small and fast: two replicas at 4x; killed when dropped.
struct Demo {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    printed: String,
}

impl Demo {
    fn start(duration: &str) -> Self {
        let mut child = Command::new(LBX_BIN)
            .args(["demo", "--llm", "--replicas", "2", "--speedup", "4"])
            .args(["--duration", duration])
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lbx demo --llm");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            printed: String::new(),
        }
    }

    /// The next line printed, within `limit`; `None` once stdout is closed.
    async fn next_line(&mut self, limit: Duration) -> Option<String> {
        let line = tokio::time::timeout(limit, self.lines.recv())
            .await
            .unwrap_or_else(|_| panic!("nothing printed for {limit:?} after:\n{}", self.printed))?;
        self.printed.push_str(&line);
        self.printed.push('\n');
        Some(line)
    }

    /// Read lines until one contains `text`.
    async fn wait_for(&mut self, text: &str) -> String {
        while let Some(line) = self.next_line(Duration::from_secs(20)).await {
            if line.contains(text) {
                return line;
            }
        }
        panic!(
            "the demo ended without printing {text:?}:\n{}",
            self.printed
        )
    }

    /// Read everything up to the end of stdout, then the exit status (within 30 s).
    async fn finish(&mut self) -> std::process::ExitStatus {
        while self.next_line(Duration::from_secs(30)).await.is_some() {}
        for _ in 0..500 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("stdout closed but the demo did not exit:\n{}", self.printed)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The figures of the table row `label`, one per column.
fn row<'a>(printed: &'a str, label: &str) -> Vec<&'a str> {
    let line = printed
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no row {label:?} in:\n{printed}"));
    line[label.len()..].split_whitespace().collect()
}

const SIGNALS: [&str; 3] = [
    "vllm:num_requests_waiting",
    "vllm:num_requests_running",
    "vllm:kv_cache_usage_perc",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_llm_compares_both_policies_on_the_same_workload_and_exits_0() {
    let mut demo = Demo::start("2s");
    let dashboard = demo.wait_for("dashboard http://").await;
    let admin: SocketAddr = dashboard
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no admin address in {dashboard:?}"));

    // While the first policy runs, every replica's scraped signals are numbers in the admin
    // API the dashboard polls.
    for replica in ["replica-1", "replica-2"] {
        let scraped = eventually(Duration::from_secs(2), || async {
            let backend = admin_backend(admin, replica).await?;
            let values = &backend["signals"]["values"];
            SIGNALS
                .iter()
                .all(|name| values[name].is_number())
                .then_some(())
        })
        .await;
        assert!(
            scraped.is_some(),
            "{replica}'s signals: {:?}",
            admin_backend(admin, replica).await
        );
    }

    let status = demo.finish().await;
    let printed = &demo.printed;
    assert!(status.success(), "exit {status}:\n{printed}");
    let header = printed
        .lines()
        .find(|l| l.contains("ratio"))
        .unwrap_or_else(|| panic!("no table:\n{printed}"));
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(columns, ["llm_router", "least_conn", "ratio"], "{printed}");
    let ok = row(printed, "requests ok");
    assert_eq!(ok.len(), 2, "{printed}");
    for count in ok {
        assert!(count.parse::<u64>().unwrap() > 0, "{printed}");
    }
    assert_eq!(row(printed, "errors"), ["0", "0"], "{printed}");
    for label in [
        "TTFT p99 ms",
        "e2e p99 ms",
        "prefix cache hit",
        "output tok/s",
    ] {
        assert_eq!(
            row(printed, label).len(),
            3,
            "both policies and the ratio: {printed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_demo_llm_cleanly_halfway() {
    let mut demo = Demo::start("60s");
    demo.wait_for("sending the workload").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Command::new("kill")
        .args(["-INT", &demo.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    // Well before the 60 s the run would take.
    let status = demo.finish().await;
    let printed = &demo.printed;
    assert!(status.success(), "exit {status}:\n{printed}");
    assert!(
        printed.contains("stopped before the comparison was complete"),
        "{printed}"
    );
    assert!(!printed.contains("least_conn"), "no second run: {printed}");
}
