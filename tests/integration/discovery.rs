//! Backends from DNS (`[[discovery.dns]]`) against a real dnsmasq: SRV answers that change
//! add and drain backends under load, A records with a port, a resolver that stops answering
//! (the last answer stays), `keep_last_for` expiring (the name's backends go, but never the
//! last backends lbx has), config reloads, and `lbx validate`'s messages.

use std::time::Duration;

use serde_json::Value;

use crate::support::dns::{DnsRecord, Dnsmasq};
use crate::support::{
    LBX_BIN, LoadGenerator, TempDir, TestBackend, TestProxy, admin_backend, admin_get, admin_post,
    eventually, get, metric,
};

const SRV: &str = "_http._tcp.api.lbx.test";

/// The `[[discovery.dns]]` table for `name` of `kind` against `dns`, plus `extra` lines.
fn discovery(dns: &Dnsmasq, name: &str, kind: &str, extra: &str) -> String {
    format!(
        "[[discovery.dns]]\nname = {name:?}\ntype = {kind:?}\nresolver = {:?}\n\
         interval = \"200ms\"\n{extra}\n",
        dns.addr()
    )
}

/// SRV records for `backends`, each under its own target name `b<i>.lbx.test`.
fn srv_for(backends: &[(&str, &TestBackend)]) -> Vec<DnsRecord> {
    let mut records = Vec::new();
    for (name, backend) in backends {
        let target = format!("{name}.lbx.test");
        records.push(DnsRecord::srv(SRV, &target, backend.addr.port()));
        records.push(DnsRecord::localhost(&target));
    }
    records
}

fn id(backend: &TestBackend) -> String {
    backend.addr.to_string()
}

async fn discovery_status(proxy: &TestProxy, name: &str) -> Value {
    let (status, body) = admin_get(&proxy.admin_url("/admin/discovery")).await;
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    report["dns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in {body}"))
}

async fn metrics(proxy: &TestProxy) -> String {
    admin_get(&proxy.admin_url("/metrics")).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srv_answer_change_adds_a_backend_and_drains_a_gone_one_without_failing_requests() {
    // a is slow, so it has requests in flight when DNS drops it: it must be drained first.
    // 2 s, not less: the drain lasts as long as a's last request, and on a machine loaded by
    // the whole suite a 500 ms drain passed between two looks at the admin API.
    let a = TestBackend::slow("a", Duration::from_secs(2)).await;
    let b = TestBackend::named("b").await;
    let mut dns = Dnsmasq::start(&srv_for(&[("a", &a)])).await;
    // DNS is the only source: lbx starts with what the first answer holds.
    let proxy = TestProxy::start(&discovery(&dns, SRV, "srv", "")).await;
    assert_eq!(get(&proxy.url("/")).await.2, "a");
    let listed = admin_backend(proxy.admin, &id(&a)).await.expect("a listed");
    assert_eq!(listed["source"], "dns");
    assert_eq!(listed["discovery"], SRV);
    assert_eq!(listed["labels"]["source"], format!("dns:{SRV}"));
    let requests_before = listed["requests"].as_u64().unwrap();

    let load = LoadGenerator::start(proxy.url("/"), 4);
    dns.set_records(&srv_for(&[("a", &a), ("b", &b)])).await;
    let added = eventually(Duration::from_secs(5), || async {
        (b.requests() > 0).then_some(())
    })
    .await;
    assert!(added.is_some(), "b never got traffic");
    let listed = admin_backend(proxy.admin, &id(&b)).await.expect("b listed");
    assert_eq!(listed["source"], "dns");
    // a was untouched by the change: same backend, its counters carried on.
    let a_now = admin_backend(proxy.admin, &id(&a)).await.unwrap();
    assert!(
        a_now["requests"].as_u64().unwrap() > requests_before,
        "{a_now}"
    );
    // The same answer again and again builds no new set: nothing churns.
    let generation =
        |body: String| serde_json::from_str::<Value>(&body).unwrap()["generation"].clone();
    let before = generation(admin_get(&proxy.admin_url("/admin/backends")).await.1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let after = generation(admin_get(&proxy.admin_url("/admin/backends")).await.1);
    assert_eq!(
        before, after,
        "an unchanged answer replaced the backend set"
    );

    dns.set_records(&srv_for(&[("b", &b)])).await;
    let drained = eventually(Duration::from_secs(10), || async {
        let listed = admin_backend(proxy.admin, &id(&a)).await?;
        (listed["removing"] == true && listed["state"] == "draining").then_some(())
    })
    .await;
    assert!(drained.is_some(), "a was not drained before it was removed");
    let gone = eventually(Duration::from_secs(10), || async {
        admin_backend(proxy.admin, &id(&a))
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert!(gone.is_some(), "a was not removed");
    let a_requests = a.requests();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stats = load.finish().await;
    assert_eq!(
        a.requests(),
        a_requests,
        "a got requests after it was removed"
    );
    assert!(stats.failed.is_empty(), "{:?}", stats.failed);
    assert!(stats.ok > 0);

    let text = metrics(&proxy).await;
    let ok = format!("lbx_discovery_resolutions_total{{name=\"{SRV}\",result=\"ok\"}}");
    assert!(metric(&text, &ok) >= 3.0, "{text}");
    assert_eq!(
        metric(&text, &format!("lbx_discovery_targets{{name=\"{SRV}\"}}")),
        1.0
    );
    let (_, reloads) = admin_get(&proxy.admin_url("/admin/reloads")).await;
    assert!(
        reloads.contains(&format!("removing {}", id(&a))),
        "{reloads}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_records_with_a_port_become_backends_beside_the_config_files() {
    let a = TestBackend::named("a").await;
    let file = TestBackend::named("file").await;
    let dns = Dnsmasq::start(&[DnsRecord::localhost("web.lbx.test")]).await;
    let toml = format!(
        "[[backend]]\nurl = {:?}\n{}",
        file.url(),
        discovery(
            &dns,
            "web.lbx.test",
            "a",
            &format!("port = {}\nweight = 3", a.addr.port())
        )
    );
    let proxy = TestProxy::start(&toml).await;
    let listed = admin_backend(proxy.admin, &id(&a)).await.expect("a listed");
    assert_eq!(listed["source"], "dns");
    assert_eq!(listed["weight"], 3);
    assert_eq!(
        admin_backend(proxy.admin, &id(&file)).await.unwrap()["source"],
        "config"
    );
    for _ in 0..20 {
        assert_eq!(get(&proxy.url("/")).await.0, 200);
    }
    assert!(a.requests() > 0 && file.requests() > 0);
    // The admin API cannot change what DNS owns.
    let (status, body) = crate::support::admin_send(
        "DELETE",
        &proxy.admin_url(&format!("/admin/backends/{}", id(&a))),
        None,
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("found in DNS"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_that_stops_answering_keeps_the_last_answer_and_traffic_flows() {
    let a = TestBackend::named("a").await;
    let file = TestBackend::named("file").await;
    let mut dns = Dnsmasq::start(&srv_for(&[("a", &a)])).await;
    // With a file backend beside it, a is not the last backend: only keep_last_for keeps it.
    let toml = format!(
        "[[backend]]\nurl = {:?}\n{}",
        file.url(),
        discovery(&dns, SRV, "srv", "keep_last_for = \"1m\"")
    );
    let proxy = TestProxy::start(&toml).await;
    let load = LoadGenerator::start(proxy.url("/"), 2);

    dns.stop();
    let failing = eventually(Duration::from_secs(5), || async {
        let status = discovery_status(&proxy, SRV).await;
        (status["state"] == "failing").then_some(status)
    })
    .await
    .expect("never failing");
    assert!(failing["last_error"].as_str().is_some(), "{failing}");
    assert!(failing["last_success"].as_str().is_some(), "{failing}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let served = a.requests();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.requests() > served, "a no longer gets traffic");
    assert!(admin_backend(proxy.admin, &id(&a)).await.is_some());
    let text = metrics(&proxy).await;
    let errors = format!("lbx_discovery_resolutions_total{{name=\"{SRV}\",result=\"error\"}}");
    assert!(metric(&text, &errors) >= 2.0, "{text}");

    dns.restart().await;
    let back = eventually(Duration::from_secs(5), || async {
        (discovery_status(&proxy, SRV).await["state"] == "ok").then_some(())
    })
    .await;
    assert!(back.is_some(), "never ok again");
    let stats = load.finish().await;
    assert!(stats.failed.is_empty(), "{:?}", stats.failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_keep_last_for_a_names_backends_go_but_never_the_last_ones() {
    let a = TestBackend::named("a").await;
    let file = TestBackend::named("file").await;
    let mut dns = Dnsmasq::start(&[DnsRecord::localhost("web.lbx.test")]).await;
    let entry = |name: &str| {
        discovery(
            &dns,
            name,
            "a",
            &format!("port = {}\nkeep_last_for = \"600ms\"", a.addr.port()),
        )
    };
    let with_file = format!(
        "[[backend]]\nurl = {:?}\n{}",
        file.url(),
        entry("web.lbx.test")
    );
    let proxy = TestProxy::start(&with_file).await;
    let alone = TestProxy::start(&entry("web.lbx.test")).await;
    assert!(admin_backend(proxy.admin, &id(&a)).await.is_some());
    let load = LoadGenerator::start(proxy.url("/"), 2);

    // NXDOMAIN from now on: kept for 600 ms, then drained and removed.
    dns.set_records(&[]).await;
    let expired = eventually(Duration::from_secs(5), || async {
        let status = discovery_status(&proxy, "web.lbx.test").await;
        (status["state"] == "expired").then_some(())
    })
    .await;
    assert!(expired.is_some(), "never expired");
    let removed = eventually(Duration::from_secs(5), || async {
        admin_backend(proxy.admin, &id(&a))
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert!(removed.is_some(), "a still listed after keep_last_for");
    let stats = load.finish().await;
    assert!(stats.failed.is_empty(), "{:?}", stats.failed);
    let text = metrics(&proxy).await;
    let none = "lbx_discovery_resolutions_total{name=\"web.lbx.test\",result=\"no_records\"}";
    assert!(metric(&text, none) >= 1.0, "{text}");

    // Where DNS is the only source, expiry would empty the set: the last answer stays.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = discovery_status(&alone, "web.lbx.test").await;
    assert_eq!(status["state"], "failing", "{status}");
    assert!(
        status["refused"]
            .as_str()
            .unwrap_or("")
            .contains("no backend"),
        "{status}"
    );
    assert_eq!(get(&alone.url("/")).await.2, "a");
    dns.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_an_unchanged_names_backends_and_one_that_removes_it_removes_them() {
    let a = TestBackend::named("a").await;
    let file = TestBackend::named("file").await;
    let dns = Dnsmasq::start(&srv_for(&[("a", &a)])).await;
    let dir = TempDir::new("discovery-reload");
    let config_file = dir.join("lbx.toml");
    let head = format!(
        "listen = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[reload]\nwatch = false\n\
         [[backend]]\nurl = {:?}\n",
        file.url()
    );
    std::fs::write(
        &config_file,
        format!("{head}{}", discovery(&dns, SRV, "srv", "")),
    )
    .unwrap();
    let config = lbx::Config::load(&config_file).unwrap();
    let server = lbx::Server::bind_from(
        &config,
        lbx::server::Origin {
            config_file: Some(config_file.clone()),
            overrides: Default::default(),
        },
    )
    .await
    .unwrap();
    let admin = server.admin_addr().unwrap();
    let (stop, stopped) = lbx::shutdown::channel();
    tokio::spawn(server.run(stopped));
    let a_id = id(&a);
    assert!(admin_backend(admin, &a_id).await.is_some());

    // A reload that changes the file's backends but keeps [[discovery.dns]]: a stays.
    let other = TestBackend::named("other").await;
    std::fs::write(
        &config_file,
        format!(
            "{head}[[backend]]\nurl = {:?}\n{}",
            other.url(),
            discovery(&dns, SRV, "srv", "")
        ),
    )
    .unwrap();
    let (status, body) = admin_post(&format!("http://{admin}/admin/reload")).await;
    assert_eq!(status, 200, "{body}");
    assert!(admin_backend(admin, &id(&other)).await.is_some());
    assert!(
        admin_backend(admin, &a_id).await.is_some(),
        "a lost in the reload"
    );

    // One without it: a is drained and removed, the file's backends stay.
    std::fs::write(&config_file, &head).unwrap();
    let (status, body) = admin_post(&format!("http://{admin}/admin/reload")).await;
    assert_eq!(status, 200, "{body}");
    let gone = eventually(Duration::from_secs(5), || async {
        admin_backend(admin, &a_id).await.is_none().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "a survived the removal of its [[discovery.dns]]"
    );
    assert!(admin_backend(admin, &id(&file)).await.is_some());
    let (_, report) = admin_get(&format!("http://{admin}/admin/discovery")).await;
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["dns"], serde_json::json!([]), "{report}");
    let _ = stop.send(true);
}

#[test]
fn validate_names_each_discovery_mistake() {
    let dir = TempDir::new("discovery-validate");
    let file = dir.join("lbx.toml");
    std::fs::write(
        &file,
        "[[discovery.dns]]\nname = \"_http._tcp.api.lbx.test:80\"\ntype = \"srv\"\n\
         [[discovery.dns]]\nname = \"web.lbx.test\"\ntype = \"a\"\n\
         [[discovery.dns]]\nname = \"db.lbx.test\"\ntype = \"a\"\nport = 5432\nresolver = \"dns.lbx.test\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(LBX_BIN)
        .args(["validate", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    for line in [
        "discovery.dns[0].name: \"_http._tcp.api.lbx.test:80\" has a port: SRV records carry",
        "discovery.dns[1].port: required with type = \"a\"",
        "discovery.dns[2].resolver: \"dns.lbx.test\" is not the address of a DNS server",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in: {stderr}");
    }
    std::fs::write(
        &file,
        "[[discovery.dns]]\nname = \"x.lbx.test\"\ntype = \"mx\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(LBX_BIN)
        .args(["validate", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("unknown variant `mx`"), "{stderr}");
}
