//! Headless Chromium (Debian's `chromium`, installed by scripts/setup.sh) on a page of lbx,
//! driven through the DevTools protocol by `peers/dashboard_browser.py`: the test sends it one
//! command a line and reads one JSON answer a line (see that script for the commands).

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::peers::peer_script;

/// Where Chromium is; fails the test (never skips it) when it is not installed.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "headless Chromium is not installed; run `bash scripts/setup.sh` \
                 (it installs Debian's chromium) and test again"
            )
        })
}

/// A page open in headless Chromium; the browser is closed when dropped.
pub struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    answers: Option<Lines<BufReader<ChildStdout>>>,
}

impl Browser {
    /// Open `url`, answering a token prompt with `token`, and wait for the page's first
    /// completed poll. Returns the browser and its first answer (`{"ready": true, "dialogs":
    /// [...]}`: the prompts the page showed).
    pub async fn open(url: &str, token: Option<&str>) -> (Self, Value) {
        let mut command = Command::new("python3");
        command
            .arg(peer_script("dashboard_browser.py"))
            .arg(chromium())
            .arg(url)
            .args(token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .expect("python3 with websockets (installed by scripts/setup.sh)");
        let stdin = child.stdin.take();
        let answers = Some(BufReader::new(child.stdout.take().unwrap()).lines());
        let mut browser = Self {
            child,
            stdin,
            answers,
        };
        let ready = browser.next_answer("open").await;
        (browser, ready)
    }

    /// Send one command and read its answer; panics with the script's error if it failed.
    pub async fn command(&mut self, line: &str) -> Value {
        let stdin = self.stdin.as_mut().expect("browser still open");
        writeln!(stdin, "{line}").expect("the browser script is running");
        stdin.flush().unwrap();
        self.next_answer(line).await
    }

    /// Wait until the page has completed `polls` more polls of the admin API.
    pub async fn wait_polls(&mut self, polls: u32) {
        self.command(&format!("wait-polls {polls}")).await;
    }

    /// Everything the page shows, read from its `data-*` attributes.
    pub async fn snapshot(&mut self) -> Value {
        self.command("snapshot").await
    }

    /// Click backend `id`'s `action` button; returns `{"status": <HTTP status>, "text": ..}`
    /// as the page reports lbx's answer.
    pub async fn click(&mut self, id: &str, action: &str) -> Value {
        self.command(&format!("click {id} {action}")).await
    }

    /// Save a 1280x900 PNG of the page at `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        self.command(&format!("screenshot {}", path.display()))
            .await;
    }

    /// The next JSON line, read off the async threads (the page keeps lbx busy meanwhile).
    async fn next_answer(&mut self, what: &str) -> Value {
        let mut answers = self.answers.take().expect("browser still open");
        let (answers, line) = tokio::task::spawn_blocking(move || {
            let line = answers.next();
            (answers, line)
        })
        .await
        .unwrap();
        self.answers = Some(answers);
        let line = line
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("{what}: the browser script ended without an answer"));
        let answer: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {line}"));
        assert!(answer.get("error").is_none(), "{what}: {answer}");
        answer
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End of input: the script closes Chromium and its profile itself.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
