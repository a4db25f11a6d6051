//! nginx from Debian (installed by scripts/setup.sh), run in the foreground from a directory
//! of its own with the `http { … }` block a test gives it; stopped when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{TempDir, eventually};

/// A running nginx.
pub struct Nginx {
    child: Child,
    /// Its directory (config, logs, temp files), removed with it.
    _dir: TempDir,
}

/// A free port on 127.0.0.1 (bound and released: a tiny race, acceptable for nginx's ports).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` different free ports. Each probe's listener is held until all are picked: released one
/// by one, as [`free_port`] does, the kernel may hand the same port out twice (a CI run got two
/// etcd members on one peer port, and etcd refused the cluster).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

impl Nginx {
    /// The nginx binary.
    pub fn binary() -> String {
        ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .map(str::to_string)
            .expect("nginx is not installed: run `bash scripts/setup.sh`, which installs it")
    }

    /// Start nginx with `http_block` (the inside of `http { … }`) in `dir`; returns once
    /// `ready_port` accepts connections.
    pub async fn start(dir: TempDir, http_block: &str, ready_port: u16) -> Self {
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             {http_block}\n}}\n",
            d = dir.path.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(Self::binary())
            .arg("-p")
            .arg(&dir.path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let up = eventually(Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", ready_port))
                .await
                .ok()
        })
        .await;
        assert!(
            up.is_some(),
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        Self { child, _dir: dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
