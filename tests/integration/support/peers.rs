//! Peers written in Python with PyPI packages (grpcio, websockets), installed by
//! scripts/setup.sh: servers started as processes, clients run to completion.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use super::free_port;

/// A script in `tests/integration/peers`.
pub fn peer_script(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/integration/peers")
        .join(name)
}

/// A Python server on a free port; killed when dropped.
pub struct PeerServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl PeerServer {
    /// Run `python3 <script> <port> <name>` and wait for it to print `ready`.
    pub fn start(script: &str, name: &str) -> Self {
        let port = free_port();
        let mut child = Command::new("python3")
            .arg(peer_script(script))
            .args([&port.to_string(), name])
            .stdout(Stdio::piped())
            // Servers log the connections tests break on purpose; failures show in clients.
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with the test peers' packages (installed by scripts/setup.sh)");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready", "{script} did not start");
        Self { child, port }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `python3 <script> <args>` to completion (off the async threads); panics with its
/// output if it fails.
pub async fn run_peer(script: &str, args: Vec<String>) -> String {
    let script = peer_script(script);
    let output: Output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .args(&args)
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
