//! The sandbox: a plugin that loops, eats memory, panics or writes to stdout fails only its own
//! decisions; the fallback answers every request, each within the deadline's reach; the
//! breaker disables a failing plugin and probes it again after the cool-down.

use std::time::{Duration, Instant};

use crate::support::{
    LbxProcess, TempDir, TestBackend, TestProxy, admin_get, config, eventually, get, metric,
    plugins,
};

async fn metrics(proxy: &TestProxy) -> String {
    admin_get(&proxy.admin_url("/metrics")).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_memory_eating_and_panicking_plugins_never_fail_a_request() {
    let backend = TestBackend::named("a").await;
    // Only the looping plugin needs the short deadline; the others get one long enough that
    // their own failure (the memory cap, the trap) comes first even on a busy machine — a
    // plugin growing 16 MiB in a debug build can take longer than 50 ms and be counted as a
    // timeout instead.
    let modes = [
        ("loop", "timeout", "50ms"),
        ("grow", "memory", "1s"),
        ("panic", "trap", "1s"),
        ("print", "trap", "1s"),
    ];
    for (mode, kind, deadline) in modes {
        let proxy = TestProxy::start(&config(
            Some(plugins::TEST_ROUTER),
            &[&backend],
            &format!(
                "deadline = \"{deadline}\"\n\
                 memory_limit_mib = 16\n\
                 disable_after_failures = 3\n\
                 disabled_for = \"1m\"\n\
                 [plugin.config]\n\
                 mode = \"{mode}\"\n"
            ),
        ))
        .await;
        for i in 0..10 {
            let started = Instant::now();
            let (status, _, body) = get(&proxy.url("/")).await;
            let took = started.elapsed();
            assert_eq!((status.as_u16(), body.as_str()), (200, "a"), "{mode} #{i}");
            // An unbounded loop would never return; the deadline (50 ms) cuts it. The slack
            // covers a debug build on a busy machine, not a plugin running on (or, for the
            // others, a 1 s deadline reached).
            assert!(took < Duration::from_secs(2), "{mode} #{i} took {took:?}");
        }
        let text = metrics(&proxy).await;
        let series = |s: &str| metric(&text, s);
        assert_eq!(
            series(&format!("lbx_plugin_failures_total{{kind=\"{kind}\"}}")),
            3.0,
            "{mode}:\n{text}"
        );
        assert_eq!(series("lbx_plugin_disabled_total"), 1.0, "{mode}");
        assert_eq!(
            series("lbx_decisions_total{by=\"fallback_after_error\"}"),
            3.0
        );
        assert_eq!(
            series("lbx_decisions_total{by=\"fallback_plugin_disabled\"}"),
            7.0
        );
        let (_, status) = admin_get(&proxy.admin_url("/admin/plugin")).await;
        assert!(status.contains("\"state\": \"disabled\""), "{status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_trips_then_recovers_once_the_plugin_answers_again() {
    let backend = TestBackend::named("a").await;
    // Panics on its first 4 real requests, then counts: trips after 3, fails its first
    // probe (the 4th), passes the next. The cool-down is long enough that the two requests
    // after the trip always fall inside it, even on a busy machine; the test waits for its
    // end on the admin API rather than sleeping it out.
    let proxy = TestProxy::start(&config(
        Some(plugins::TEST_ROUTER),
        &[&backend],
        "disable_after_failures = 3\ndisabled_for = \"2s\"\n\
         [plugin.config]\nmode = \"count\"\nfail_first = 4\n",
    ))
    .await;
    let cool_down_over = || async {
        let over = eventually(Duration::from_secs(30), || async {
            let (_, status) = admin_get(&proxy.admin_url("/admin/plugin")).await;
            status.contains("\"state\": \"active\"").then_some(())
        })
        .await;
        assert!(
            over.is_some(),
            "the plugin stayed disabled past its cool-down"
        );
    };
    let counted = || async {
        let (status, headers, _) = get(&proxy.url("/")).await;
        assert_eq!(status, 200, "every request is answered");
        headers.contains_key("x-request-number")
    };
    for _ in 0..5 {
        assert!(!counted().await);
    }
    let text = metrics(&proxy).await;
    assert_eq!(metric(&text, "lbx_plugin_disabled_total"), 1.0, "{text}");
    assert_eq!(
        metric(
            &text,
            "lbx_decisions_total{by=\"fallback_plugin_disabled\"}"
        ),
        2.0
    );

    let (_, status) = admin_get(&proxy.admin_url("/admin/plugin")).await;
    assert!(status.contains("\"state\": \"disabled\""), "{status}");

    cool_down_over().await;
    assert!(!counted().await, "the first probe fails (4th failure)");
    assert_eq!(
        metric(&metrics(&proxy).await, "lbx_plugin_disabled_total"),
        2.0,
        "a failed probe disables it again"
    );

    cool_down_over().await;
    assert!(counted().await, "the second probe succeeds");
    assert!(counted().await, "and the plugin stays enabled");
    let (_, status) = admin_get(&proxy.admin_url("/admin/plugin")).await;
    assert!(status.contains("\"state\": \"active\""), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_plugin_is_logged_in_one_line_with_where_and_why() {
    let backend = TestBackend::named("a").await;
    let dir = TempDir::new("panic-line");
    let config_file = dir.join("lbx.toml");
    std::fs::write(
        &config_file,
        config(
            Some(plugins::TEST_ROUTER),
            &[&backend],
            "deadline = \"1s\"\n[plugin.config]\nmode = \"panic\"\n",
        ),
    )
    .unwrap();
    let lbx = LbxProcess::run(&["--config", config_file.to_str().unwrap()]);
    let (status, _, _) = get(&format!("http://{}/", lbx.addr)).await;
    assert_eq!(status, 200, "the fallback answers");
    let line = eventually(Duration::from_secs(10), || async {
        lbx.log()
            .lines()
            .find(|line| line.contains("plugin panicked"))
            .map(str::to_string)
    })
    .await
    .unwrap_or_else(|| panic!("no panic line: {}", lbx.log()));
    // The place and the message on the same line, as a person or a log shipper reads it.
    assert!(
        line.contains("plugin panicked at ") && line.contains(".rs:"),
        "{line}"
    );
    assert!(line.contains(": panicking on purpose"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_decision_that_misses_its_deadline_once_is_tried_again_before_the_plugin_is_refused()
 {
    // A loaded machine can hold a good plugin's trial decision past a short deadline: that once
    // must not refuse the plugin (at start, a hot swap or `lbx validate`). This one stalls on
    // its first trial only, as such a moment would.
    let backend = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(
        Some(plugins::TEST_ROUTER),
        &[&backend],
        "deadline = \"50ms\"\n[plugin.config]\nstall_first_trial = true\n",
    ))
    .await;
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "a"));
    // The plugin answered, not the fallback.
    assert_eq!(headers["x-request-number"], "1");
}
