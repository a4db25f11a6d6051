//! Config reloads: a Kubernetes-style ConfigMap update (the `..data` symlink flipped to a new
//! directory) swaps backends and plugin together; an invalid config is refused while the old
//! one keeps serving; SIGHUP reloads when file watching is off.

use std::path::Path;
use std::time::Duration;

use crate::support::{
    LbxProcess, TempDir, TestBackend, admin_get, config, eventually, get, metric, plugins,
};

/// Lay out `files` in a new revision directory and point `..data` at it atomically, as the
/// kubelet does: `..data_tmp` → revision, then rename over `..data`.
fn publish_revision(dir: &Path, revision: &str, files: &[(&str, Vec<u8>)]) {
    let target = dir.join(revision);
    std::fs::create_dir_all(&target).unwrap();
    for (name, bytes) in files {
        std::fs::write(target.join(name), bytes).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(revision, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

async fn answers(url: &str, n: usize) -> Vec<(String, bool)> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let (status, headers, body) = get(url).await;
        assert_eq!(status, 200);
        seen.push((body, headers.contains_key("x-request-number")));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_symlink_flip_swaps_backends_and_plugin_and_a_bad_config_is_refused() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let dir = TempDir::new("configmap");
    let mounted_plugin = dir.join("plugin.wasm");
    let mounted_config = dir.join("lbx.toml");
    let plugin_path = mounted_plugin.to_str().unwrap();

    // Revision 1: round robin over `a`.
    publish_revision(
        &dir.path,
        "..rev1",
        &[
            (
                "lbx.toml",
                config(Some(plugin_path), &[&a], "").into_bytes(),
            ),
            ("plugin.wasm", std::fs::read(plugins::ROUND_ROBIN).unwrap()),
        ],
    );
    for name in ["lbx.toml", "plugin.wasm"] {
        std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
    }
    let lbx = LbxProcess::run(&["--config", mounted_config.to_str().unwrap()]);
    let url = format!("http://{}/", lbx.addr);
    assert!(
        answers(&url, 4)
            .await
            .iter()
            .all(|(body, counted)| body == "a" && !counted)
    );

    // Revision 2: the counting plugin over `a` and `b`.
    publish_revision(
        &dir.path,
        "..rev2",
        &[
            (
                "lbx.toml",
                config(
                    Some(plugin_path),
                    &[&b, &a],
                    "[plugin.config]\nmode = \"count\"\n",
                )
                .into_bytes(),
            ),
            ("plugin.wasm", std::fs::read(plugins::TEST_ROUTER).unwrap()),
        ],
    );
    let switched = eventually(Duration::from_secs(5), || async {
        let (_, headers, body) = get(&url).await;
        (body == "b" && headers.contains_key("x-request-number")).then_some(())
    })
    .await;
    assert!(
        switched.is_some(),
        "revision 2 never took effect:\n{}",
        lbx.log()
    );

    // Revision 3: a typo. Refused; revision 2 keeps serving.
    publish_revision(
        &dir.path,
        "..rev3",
        &[
            (
                "lbx.toml",
                b"listen = \"127.0.0.1:0\"\nbackendz = []\n".to_vec(),
            ),
            ("plugin.wasm", std::fs::read(plugins::TEST_ROUTER).unwrap()),
        ],
    );
    let metrics_url = format!("http://{}/metrics", lbx.admin);
    let refused = eventually(Duration::from_secs(5), || async {
        let (_, text) = admin_get(&metrics_url).await;
        let count = metric(
            &text,
            "lbx_reloads_total{what=\"config\",result=\"refused\"}",
        );
        (count >= 1.0).then_some(())
    })
    .await;
    assert!(
        refused.is_some(),
        "the bad config was not refused:\n{}",
        lbx.log()
    );
    // The log is written by its own thread, in batches: the line may land just after the
    // counter moved.
    let named = eventually(Duration::from_secs(5), || async {
        lbx.log().contains("backendz").then_some(())
    })
    .await;
    assert!(
        named.is_some(),
        "the refusal must name the key:\n{}",
        lbx.log()
    );
    assert!(
        answers(&url, 3)
            .await
            .iter()
            .all(|(body, counted)| body == "b" && *counted)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_when_file_watching_is_off() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let dir = TempDir::new("sighup");
    let config_file = dir.join("lbx.toml");
    let no_watch = "[reload]\nwatch = false\n";
    std::fs::write(&config_file, config(None, &[&a], no_watch)).unwrap();
    let lbx = LbxProcess::run(&["--config", config_file.to_str().unwrap()]);
    let url = format!("http://{}/", lbx.addr);

    std::fs::write(&config_file, config(None, &[&b], no_watch)).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        answers(&url, 3).await.iter().all(|(body, _)| body == "a"),
        "not watching"
    );

    let status = std::process::Command::new("kill")
        .args(["-HUP", &lbx.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let moved = eventually(Duration::from_secs(5), || async {
        (get(&url).await.2 == "b").then_some(())
    })
    .await;
    assert!(moved.is_some(), "SIGHUP did not reload:\n{}", lbx.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_config_the_plugin_rejects_at_reload_is_refused_and_the_old_one_serves() {
    let stable = TestBackend::named("stable").await;
    let canary = TestBackend::named("canary").await;
    let dir = TempDir::new("plugin-config");
    let config_file = dir.join("lbx.toml");
    let write = |rules: &str| {
        let toml = format!(
            "[plugin]\npath = {:?}\ndeadline = \"1s\"\n[plugin.config]\n\
             default = {{ version = \"stable\" }}\nrules = [{rules}]\n\
             [[backend]]\nurl = {:?}\nlabels = {{ version = \"stable\" }}\n\
             [[backend]]\nurl = {:?}\nlabels = {{ version = \"canary\" }}\n",
            plugins::HEADER_ROUTER,
            stable.url(),
            canary.url()
        );
        let temporary = dir.join("lbx.toml.new");
        std::fs::write(&temporary, toml).unwrap();
        std::fs::rename(&temporary, &config_file).unwrap();
    };
    write("{ path_prefix = \"/beta\", group = { version = \"canary\" } }");
    let lbx = LbxProcess::run(&["--config", config_file.to_str().unwrap()]);
    let url = |path: &str| format!("http://{}{path}", lbx.addr);
    assert_eq!(get(&url("/beta")).await.2, "canary");

    write("{ percent = 150.0, group = { version = \"canary\" } }");
    let metrics_url = format!("http://{}/metrics", lbx.admin);
    let refused = eventually(Duration::from_secs(5), || async {
        let (_, text) = admin_get(&metrics_url).await;
        (metric(
            &text,
            "lbx_reloads_total{what=\"config\",result=\"refused\"}",
        ) >= 1.0)
            .then_some(())
    })
    .await;
    assert!(refused.is_some(), "not refused:\n{}", lbx.log());
    assert!(
        lbx.log()
            .contains("rejected its configuration: plugin.config.rules[0]: percent 150"),
        "{}",
        lbx.log()
    );
    assert_eq!(
        get(&url("/beta")).await.2,
        "canary",
        "the old rules keep serving"
    );
}
