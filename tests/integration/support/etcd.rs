//! A real etcd cluster on 127.0.0.1 (the `etcd` binary from Debian's etcd-server, installed by
//! scripts/setup.sh), for the fleet store's tests: members on free ports with their data in a
//! temporary directory, fast elections, and helpers that kill, freeze and restart members.
//!
//! Every member runs under `timeout -s KILL`, so even a test process that dies without dropping
//! the cluster leaves no etcd behind for long; dropping the cluster kills and reaps them at once.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lbx::fleet::etcd::{EtcdSettings, EtcdStore, EtcdTls};
use lbx::fleet::store::Store;

use super::{TempDir, TestCa, eventually, free_ports};

/// The longest a member may live, whatever happens to the test process.
const MEMBER_LIFETIME: Duration = Duration::from_secs(120);

/// One member: its ports and, while it runs, the `timeout` process wrapping it.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    process: Option<Child>,
}

/// A running etcd cluster; every member is killed and reaped when dropped.
pub struct EtcdCluster {
    members: Vec<Member>,
    token: String,
    tls: Option<ClusterTls>,
    dir: TempDir,
}

/// Certificates of a cluster that serves clients over TLS and requires client certificates.
struct ClusterTls {
    ca: std::path::PathBuf,
    server: super::Issued,
    client: super::Issued,
}

impl EtcdCluster {
    /// The etcd binary; fails the test if it is missing (setup installs it).
    pub fn binary() -> String {
        ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .map(str::to_string)
            .expect(
                "etcd is not installed: run `bash scripts/setup.sh`, which installs etcd-server",
            )
    }

    /// Start `size` members and wait until each one serves linearizable reads (so a leader is
    /// elected and every member has joined).
    pub async fn start(size: usize) -> Self {
        Self::start_with(size, None).await
    }

    /// Like [`EtcdCluster::start`], with client connections over TLS (certificates from `ca`,
    /// for 127.0.0.1) and client certificates required. Members talk to each other in clear.
    pub async fn start_tls(size: usize, ca: &TestCa) -> Self {
        let tls = ClusterTls {
            ca: ca.ca_pem.clone(),
            server: ca.issue("etcd-server", &["127.0.0.1"]),
            client: ca.issue("etcd-client", &["lbx"]),
        };
        Self::start_with(size, Some(tls)).await
    }

    async fn start_with(size: usize, tls: Option<ClusterTls>) -> Self {
        let dir = TempDir::new("etcd");
        let token = dir.path.file_name().unwrap().to_string_lossy().into_owned();
        let ports = free_ports(2 * size);
        let members = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                process: None,
            })
            .collect();
        let mut cluster = Self {
            members,
            token,
            tls,
            dir,
        };
        for i in 0..size {
            cluster.spawn(i, "new");
        }
        for i in 0..size {
            cluster.wait_serving(i).await;
        }
        cluster
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let member = &self.members[i];
        let client_url = self.endpoint(i);
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let log = std::fs::File::create(self.dir.join(&format!("{}.log", member.name))).unwrap();
        let mut command = Command::new("timeout");
        command
            .args(["-s", "KILL", &MEMBER_LIFETIME.as_secs().to_string()])
            .arg(Self::binary())
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(self.dir.join(&member.name))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            // Fast elections: a dead leader is replaced within about a second.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-level", "warn"]);
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.server.cert)
                .arg("--key-file")
                .arg(&tls.server.key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd under timeout");
        self.members[i].process = Some(child);
    }

    async fn wait_serving(&self, i: usize) {
        let store = EtcdStore::connect(self.settings(vec![self.endpoint(i)]))
            .await
            .unwrap();
        let up = eventually(Duration::from_secs(15), || {
            let store = store.clone();
            async move { store.list("/health-check/").await.ok() }
        })
        .await;
        assert!(
            up.is_some(),
            "etcd member {i} did not start serving; its log:\n{}",
            self.log(i)
        );
    }

    /// Store settings tuned for tests: a dead or frozen member is noticed within about 2 s.
    pub fn quick(endpoints: Vec<String>) -> EtcdSettings {
        let mut settings = EtcdSettings::new(endpoints);
        settings.connect_timeout = Duration::from_millis(500);
        settings.request_timeout = Duration::from_millis(1500);
        settings.keepalive_interval = Duration::from_millis(500);
        settings.keepalive_timeout = Duration::from_millis(1000);
        settings
    }

    /// [`EtcdCluster::quick`] settings for `endpoints`, with this cluster's CA and a client
    /// certificate if it serves TLS.
    pub fn settings(&self, endpoints: Vec<String>) -> EtcdSettings {
        let mut settings = Self::quick(endpoints);
        settings.tls = self.tls.as_ref().map(|tls| EtcdTls {
            ca_file: Some(tls.ca.clone()),
            client_cert: Some((tls.client.cert.clone(), tls.client.key.clone())),
        });
        settings
    }

    /// A store client over every member, with [`EtcdCluster::settings`].
    pub async fn store(&self) -> EtcdStore {
        EtcdStore::connect(self.settings(self.endpoints()))
            .await
            .unwrap()
    }

    /// Member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Member `i`'s log so far (stderr).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(&format!("{}.log", self.members[i].name)))
            .unwrap_or_default()
    }

    /// The index of the member that is leader, as the running members see it (waits up to 10 s
    /// for an elected one). Plain clusters only.
    pub async fn leader(&self) -> usize {
        let found = eventually(Duration::from_secs(10), || async {
            for i in 0..self.members.len() {
                if self.members[i].process.is_none() {
                    continue;
                }
                let Ok(Ok(mut client)) = tokio::time::timeout(
                    Duration::from_secs(1),
                    etcd_client::Client::connect([self.endpoint(i)], None),
                )
                .await
                else {
                    continue;
                };
                let Ok(Ok(status)) =
                    tokio::time::timeout(Duration::from_secs(1), client.status()).await
                else {
                    continue;
                };
                if status.leader() == 0 {
                    continue;
                }
                let member_id = status.header().map(|h| h.member_id());
                if member_id == Some(status.leader()) {
                    return Some(i);
                }
            }
            None
        })
        .await;
        found.expect("no etcd member is leader")
    }

    /// The pid of etcd itself (the only child of its `timeout` wrapper).
    fn etcd_pid(&self, i: usize) -> u32 {
        let wrapper = self.members[i]
            .process
            .as_ref()
            .expect("member is running")
            .id();
        let children =
            std::fs::read_to_string(format!("/proc/{wrapper}/task/{wrapper}/children")).unwrap();
        children
            .split_whitespace()
            .next()
            .expect("etcd runs under its timeout wrapper")
            .parse()
            .unwrap()
    }

    fn signal(&self, i: usize, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.etcd_pid(i).to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} etcd member {i}");
    }

    /// SIGKILL member `i` (its data stays, for [`EtcdCluster::restart`]).
    pub fn kill(&mut self, i: usize) {
        self.signal(i, "-KILL");
        let mut wrapper = self.members[i].process.take().unwrap();
        let _ = wrapper.wait();
    }

    /// SIGSTOP member `i`: it keeps its sockets open but answers nothing, like a hung machine.
    pub fn stop(&self, i: usize) {
        self.signal(i, "-STOP");
    }

    /// SIGCONT member `i` after [`EtcdCluster::stop`].
    pub fn cont(&self, i: usize) {
        self.signal(i, "-CONT");
    }

    /// Start member `i` again (after [`EtcdCluster::kill`]) on its ports and data; returns once
    /// it serves.
    pub async fn restart(&mut self, i: usize) {
        if self.members[i].process.is_some() {
            self.kill(i);
        }
        self.spawn(i, "existing");
        self.wait_serving(i).await;
    }

    /// Start every member that is not running (after [`EtcdCluster::kill`]) together — one
    /// alone cannot serve without a quorum — and return once each serves.
    pub async fn restart_all(&mut self) {
        let stopped: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].process.is_none())
            .collect();
        for &i in &stopped {
            self.spawn(i, "existing");
        }
        for &i in &stopped {
            self.wait_serving(i).await;
        }
    }

    /// Compact the cluster's history up to `revision`.
    pub async fn compact(&self, revision: i64) {
        self.store().await.compact(revision).await.unwrap();
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].process.is_none() {
                continue;
            }
            // A frozen member ignores SIGTERM but not SIGKILL; its wrapper then exits too.
            let pid = std::fs::read_to_string({
                let wrapper = self.members[i].process.as_ref().unwrap().id();
                format!("/proc/{wrapper}/task/{wrapper}/children")
            })
            .unwrap_or_default();
            if let Some(pid) = pid.split_whitespace().next() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
            let mut wrapper = self.members[i].process.take().unwrap();
            let _ = wrapper.kill();
            let _ = wrapper.wait();
        }
    }
}
