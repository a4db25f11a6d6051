//! A real DNS server for the discovery tests: dnsmasq from Debian (installed by
//! scripts/setup.sh), in the foreground on a free loopback port (UDP and TCP), answering only
//! from the records a test gives it. Stopped when dropped; every wait is bounded.
//!
//! Changing the records restarts it on the same port: on SIGHUP dnsmasq re-reads only its
//! hosts files (`/etc/hosts`, `--addn-hosts`) and DHCP files, not `srv-host` or `host-record`
//! lines. Names under `lbx.test` that it has no record for answer NXDOMAIN (`local=`), not
//! REFUSED, as an authoritative server would.
//!
//! Without root: dnsmasq changes to user `nobody` only when started as root, so it is told to
//! stay the user it runs as (`--user`), and writes its pid file in its own directory.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{TempDir, eventually};

/// One record dnsmasq answers.
#[derive(Debug, Clone)]
pub enum DnsRecord {
    /// `name` SRV → `target`:`port`, priority 0, `weight`.
    Srv {
        /// `_service._proto.domain`.
        name: String,
        /// The target host name (give it a [`DnsRecord::Host`] too).
        target: String,
        /// The target's port.
        port: u16,
        /// The record's weight.
        weight: u16,
    },
    /// `name` A (and AAAA for IPv6 addresses).
    Host {
        /// The host name.
        name: String,
        /// Its addresses.
        ips: Vec<String>,
    },
}

impl DnsRecord {
    /// An SRV record of weight 1.
    pub fn srv(name: &str, target: &str, port: u16) -> Self {
        DnsRecord::Srv {
            name: name.into(),
            target: target.into(),
            port,
            weight: 1,
        }
    }

    /// `name` A 127.0.0.1.
    pub fn localhost(name: &str) -> Self {
        DnsRecord::Host {
            name: name.into(),
            ips: vec!["127.0.0.1".into()],
        }
    }

    fn line(&self) -> String {
        match self {
            DnsRecord::Srv {
                name,
                target,
                port,
                weight,
            } => format!("srv-host={name},{target},{port},0,{weight}"),
            DnsRecord::Host { name, ips } => format!("host-record={name},{}", ips.join(",")),
        }
    }
}

/// A running (or stopped) dnsmasq on one port.
pub struct Dnsmasq {
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl Dnsmasq {
    /// The dnsmasq binary.
    fn binary() -> String {
        [
            "/usr/sbin/dnsmasq",
            "/usr/bin/dnsmasq",
            "/usr/local/sbin/dnsmasq",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_string)
        .expect("dnsmasq is not installed: run `bash scripts/setup.sh`, which installs it")
    }

    /// Start answering `records` on a free port.
    pub async fn start(records: &[DnsRecord]) -> Self {
        let mut server = Self {
            port: free_udp_and_tcp_port(),
            child: None,
            dir: TempDir::new("dnsmasq"),
        };
        server.write(records);
        server.run().await;
        server
    }

    /// `127.0.0.1:<port>`, for `resolver =`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Answer `records` from now on (restarted on the same port).
    pub async fn set_records(&mut self, records: &[DnsRecord]) {
        self.stop();
        self.write(records);
        self.run().await;
    }

    /// Stop answering: queries to its port get no answer (ICMP port unreachable).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again with the records it last had.
    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }

    fn write(&self, records: &[DnsRecord]) {
        let mut conf = String::new();
        for record in records {
            conf.push_str(&record.line());
            conf.push('\n');
        }
        std::fs::write(self.dir.join("records.conf"), conf).unwrap();
    }

    async fn run(&mut self) {
        let user = current_user();
        let log = std::fs::File::create(self.dir.join("dnsmasq.log")).unwrap();
        let child = Command::new(Self::binary())
            .arg("--keep-in-foreground")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg("--no-poll")
            .arg(format!("--port={}", self.port))
            .arg("--listen-address=127.0.0.1")
            .arg("--bind-interfaces")
            .arg("--local=/lbx.test/")
            .arg(format!("--user={user}"))
            .arg(format!(
                "--pid-file={}",
                self.dir.join("dnsmasq.pid").display()
            ))
            .arg(format!(
                "--conf-file={}",
                self.dir.join("records.conf").display()
            ))
            .arg("--log-facility=-")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dnsmasq");
        self.child = Some(child);
        let port = self.port;
        let up = eventually(Duration::from_secs(5), || async move {
            answers_on(port).await.then_some(())
        })
        .await;
        if up.is_none() {
            self.stop();
            panic!(
                "dnsmasq did not answer on port {port}: {}",
                std::fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
            );
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a DNS server answers (anything) on 127.0.0.1:`port` within 200 ms.
async fn answers_on(port: u16) -> bool {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // A query for `lbx.test. A`: id 1, recursion desired, one question.
    let mut query = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(b"\x03lbx\x04test\x00\x00\x01\x00\x01");
    if socket.send_to(&query, ("127.0.0.1", port)).await.is_err() {
        return false;
    }
    let mut buffer = [0u8; 512];
    matches!(
        tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buffer)).await,
        Ok(Ok(n)) if n >= 12
    )
}

/// A port free on 127.0.0.1 for both UDP and TCP (bound and released: a tiny race).
fn free_udp_and_tcp_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The user this process runs as, for dnsmasq's `--user`.
fn current_user() -> String {
    let output = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}
