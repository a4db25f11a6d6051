//! The live dashboard on the admin port: served at `/` without the token but under the Host
//! rules and with its security headers; in a real headless Chromium, while traffic flows, it
//! shows the backends, states and counters `/admin/backends` and `/admin/plugin` report, asks
//! for the admin token once, and its drain buttons send the API's PATCH.
//!
//! Every field the page shows must be reported by the API (per-backend `state`, `draining`,
//! `traffic`; the plugin's `decided_by` and `decision_count`; `GET /admin/reloads`): a field
//! that disappears from the API fails the test, it does not turn into a "–" check.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::support::{
    Browser, LoadGenerator, MetricsAnswer, MetricsBackend, RawClient, TempDir, TestBackend,
    TestProxy, eventually, http1_client, plugins, send,
};

const TOKEN: &str = "dashboard-test-token-0123456789";
const CLIENTS: usize = 4;

/// lbx with the admin token, round robin over alpha, beta, gamma (up) and delta (its health
/// check fails, so it goes down).
async fn proxy_with_four_backends(dir: &TempDir, backends: &[TestBackend; 4]) -> TestProxy {
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut toml = format!(
        "[plugin]\npath = {:?}\ndeadline = \"1s\"\n",
        plugins::ROUND_ROBIN
    );
    for (backend, id) in backends.iter().zip(["alpha", "beta", "gamma", "delta"]) {
        toml.push_str(&format!(
            "[[backend]]\nurl = {:?}\nid = {id:?}\n",
            backend.url()
        ));
    }
    toml.push_str(&format!(
        "[health]\npath = \"/healthz\"\ninterval = \"200ms\"\nfall = 1\n\
         [admin]\ntoken_file = {:?}\n",
        token_file.to_str().unwrap()
    ));
    TestProxy::start(&toml).await
}

/// An admin API call with the token: (status, body as JSON or Null).
async fn admin(proxy: &TestProxy, method: &str, path: &str, body: &str) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(proxy.admin_url(path))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap();
    let (status, _, text) = send(&http1_client(), request).await;
    (
        status.as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn backends_of(proxy: &TestProxy) -> Vec<Value> {
    let (status, json) = admin(proxy, "GET", "/admin/backends", "").await;
    assert_eq!(status, 200, "{json}");
    json["backends"].as_array().unwrap().clone()
}

fn by_id<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|b| b["id"] == id)
        .unwrap_or_else(|| panic!("no backend {id} in {list:?}"))
}

/// The state the page must show for a backend: the API's `state`, which must agree with its
/// `draining`, `ejected` and `down` flags.
fn expected_state(backend: &Value) -> String {
    let state = backend["state"]
        .as_str()
        .unwrap_or_else(|| panic!("the API reports no `state`: {backend}"));
    let flag = |name: &str| {
        backend[name]
            .as_bool()
            .unwrap_or_else(|| panic!("the API reports no `{name}`: {backend}"))
    };
    let from_flags = if flag("draining") {
        "draining"
    } else if flag("down") {
        "down"
    } else if flag("ejected") {
        "ejected"
    } else {
        "up"
    };
    assert_eq!(
        state, from_flags,
        "`state` and the flags disagree: {backend}"
    );
    state.into()
}

/// A field's raw value (`data-value`) as a number; panics naming the field if it has none.
fn number(fields: &Value, name: &str) -> f64 {
    fields[name]["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("field {name} has no number: {fields}"))
}

fn text<'a>(fields: &'a Value, name: &str) -> &'a str {
    fields[name]["text"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_without_the_token_with_its_security_headers() {
    let backend = TestBackend::named("a").await;
    let dir = TempDir::new("dashboard-page");
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let proxy = TestProxy::start(&crate::support::config(
        None,
        &[&backend],
        &format!("[admin]\ntoken_file = {:?}\n", token_file.to_str().unwrap()),
    ))
    .await;
    let get = |path: &str, host: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    };
    for (path, content_type) in [
        ("/", "text/html"),
        ("/dashboard.js", "text/javascript"),
        ("/dashboard.css", "text/css"),
    ] {
        let answer = RawClient::exchange(proxy.admin, get(path, "127.0.0.1")).await;
        let head = answer
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{path}: {answer}");
        assert!(
            head.contains(&format!("\r\ncontent-type: {content_type}")),
            "{path}: {head}"
        );
        for header in [
            "\r\ncontent-security-policy: default-src 'none'; script-src 'self';",
            "frame-ancestors 'none'",
            "\r\nx-content-type-options: nosniff\r\n",
            "\r\nx-frame-options: deny\r\n",
            "\r\ncache-control: no-cache\r\n",
        ] {
            assert!(head.contains(header), "{path} lacks {header}: {head}");
        }
    }
    // The page is no way around the token: the data still needs it.
    let data = RawClient::exchange(proxy.admin, get("/admin/backends", "127.0.0.1")).await;
    assert!(data.starts_with("HTTP/1.1 401 "), "{data}");
    // Nor around the Host rules (DNS rebinding) or the methods.
    let rebound = RawClient::exchange(proxy.admin, get("/", "attacker.example")).await;
    assert!(rebound.starts_with("HTTP/1.1 403 "), "{rebound}");
    let post = RawClient::exchange(
        proxy.admin,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_the_dashboard_shows_what_the_admin_api_reports_while_traffic_flows() {
    let backends = [
        TestBackend::named("alpha").await,
        TestBackend::named("beta").await,
        TestBackend::named("gamma").await,
        TestBackend::named("delta").await,
    ];
    backends[3].set_health(503);
    let dir = TempDir::new("dashboard");
    let proxy = proxy_with_four_backends(&dir, &backends).await;
    let delta_down = eventually(Duration::from_secs(10), || async {
        by_id(&backends_of(&proxy).await, "delta")["down"]
            .as_bool()
            .filter(|down| *down)
    })
    .await;
    assert!(delta_down.is_some(), "delta never went down");
    // A shadow that sends everything to alpha, beside round robin.
    let shadow = format!(
        r#"{{"path": {:?}, "name": "pinned", "config": {{"backend": 0}}, "sample": 1}}"#,
        plugins::TEST_ROUTER
    );
    let (status, started) = admin(&proxy, "POST", "/admin/plugin/shadow", &shadow).await;
    assert_eq!(status, 200, "{started}");
    let canary = format!(
        r#"{{"path": {:?}, "steps": [1, 100], "step_duration": "1h"}}"#,
        plugins::LEAST_CONN
    );
    let (status, started) = admin(&proxy, "POST", "/admin/plugin/canary", &canary).await;
    assert_eq!(status, 200, "{started}");
    let load = LoadGenerator::start(proxy.url("/"), CLIENTS);

    // The page asks for the token on the API's first 401 and then shows the data.
    let (mut browser, ready) = Browser::open(&proxy.admin_url("/"), Some(TOKEN)).await;
    let prompts = ready["dialogs"].as_array().unwrap();
    assert!(
        prompts.iter().any(|d| d["type"] == "prompt"),
        "the page never asked for the token: {ready}"
    );
    // A few polls, so that rates have a window to be computed over.
    browser.wait_polls(4).await;

    // Every counter the page shows must lie between what the API said before and after.
    let before = backends_of(&proxy).await;
    let started = Instant::now();
    browser.wait_polls(2).await;
    let page = browser.snapshot().await;
    let after = backends_of(&proxy).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (_, plugin) = admin(&proxy, "GET", "/admin/plugin", "").await;
    let (reloads_status, reloads) = admin(&proxy, "GET", "/admin/reloads", "").await;

    assert_eq!(
        page["errors"],
        Value::Array(vec![]),
        "the page reported errors"
    );
    assert_eq!(
        page["fleet_hidden"], true,
        "a node alone shows no fleet panel"
    );
    assert_eq!(
        prompts.len(),
        page["dialogs"].as_array().unwrap().len(),
        "the page asked for the token again: {page}"
    );
    let shown = page["backends"].as_array().unwrap();
    let ids = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(shown), ids(&after), "{page}");

    let mut shown_rps = 0.0;
    let mut colours = std::collections::HashMap::new();
    for row in shown {
        let id = row["id"].as_str().unwrap();
        let fields = &row["fields"];
        let (old, new) = (by_id(&before, id), by_id(&after, id));
        assert_eq!(text(fields, "id"), id);
        assert_eq!(fields["address"]["value"], new["address"], "{id}");
        assert_eq!(number(fields, "weight"), new["weight"].as_f64().unwrap());
        assert_eq!(row["state"], expected_state(new), "{id}: {row}");
        assert_eq!(text(fields, "state"), expected_state(new), "{id}");
        colours.insert(expected_state(new), row["state_colour"].clone());

        let requests = number(fields, "requests");
        let (low, high) = (
            old["requests"].as_f64().unwrap(),
            new["requests"].as_f64().unwrap(),
        );
        assert!(
            (low..=high).contains(&requests),
            "{id}: the page shows {requests} requests, the API said {low} then {high}"
        );
        let in_flight = number(fields, "in_flight");
        assert!(
            in_flight.fract() == 0.0 && in_flight <= CLIENTS as f64,
            "{id}: {in_flight} in flight"
        );

        let rps = number(fields, "rps");
        let share = number(fields, "share");
        if id == "delta" {
            assert_eq!(rps, 0.0, "delta is down");
            assert_eq!(share, 0.0, "delta is down");
        } else {
            assert!(rps > 0.0, "{id}: {rps} requests/s");
            // Round robin over the three that are up.
            assert!(
                (share - 1.0 / 3.0).abs() < 0.1,
                "{id}: share {share} of the traffic"
            );
        }
        shown_rps += rps;

        // Per-backend traffic: error rate and latency percentiles from the API's histograms.
        let traffic = &new["traffic"];
        assert!(
            traffic.is_object(),
            "{id}: the API reports no `traffic`: {new}"
        );
        if id != "delta" {
            assert_eq!(number(fields, "error_rate"), 0.0, "{id}");
            let (p50, p99) = (number(fields, "p50"), number(fields, "p99"));
            let bounds = traffic["latency_bounds_seconds"]
                .as_array()
                .unwrap_or_else(|| panic!("{id}: no latency_bounds_seconds: {traffic}"));
            let last = bounds.last().unwrap().as_f64().unwrap();
            assert!(
                0.0 < p50 && p50 <= p99 && p99 <= last,
                "{id}: p50 {p50} p99 {p99}"
            );
        }
    }
    // Colour-coded: up and down look different, and the style sheet was applied.
    assert_ne!(colours["up"], colours["down"], "{colours:?}");
    assert_ne!(
        colours["up"], "rgba(0, 0, 0, 0)",
        "no state colour: {colours:?}"
    );

    let api_rps = after
        .iter()
        .zip(&before)
        .map(|(new, old)| new["requests"].as_f64().unwrap() - old["requests"].as_f64().unwrap())
        .sum::<f64>()
        / elapsed;
    assert!(
        shown_rps > api_rps / 3.0 && shown_rps < api_rps * 3.0,
        "the page shows {shown_rps} requests/s in all, the API's counters {api_rps}"
    );
    assert_eq!(page["chart_areas"], 4, "one area per backend: {page}");

    // The plugin in force.
    let fields = &page["page"];
    assert_eq!(
        text(fields, "plugin_state"),
        plugin["state"].as_str().unwrap()
    );
    let path = plugin["path"].as_str().unwrap();
    assert_eq!(
        text(fields, "plugin_name"),
        path.rsplit('/').next().unwrap()
    );
    let sha256 = plugin["sha256"].as_str().unwrap();
    assert_eq!(fields["sha256"]["value"], sha256);
    assert_eq!(text(fields, "sha256"), &sha256[..12]);
    assert_eq!(fields["loaded_at"]["value"], plugin["loaded_at"]);
    assert_eq!(
        number(fields, "failures"),
        plugin["failures"].as_f64().unwrap()
    );
    assert!(number(fields, "decisions_per_s") > 0.0, "{fields}");
    // Who decided, and how long a decision takes: the plugin made (nearly) all of them.
    let plugin_decisions = plugin["decided_by"]["plugin"]
        .as_f64()
        .unwrap_or_else(|| panic!("the API reports no `decided_by.plugin`: {plugin}"));
    assert!(plugin_decisions > 0.0, "{plugin}");
    assert!(number(fields, "fallback_share") < 0.05, "{fields}");
    let decision_count = plugin["decision_count"]
        .as_f64()
        .unwrap_or_else(|| panic!("the API reports no `decision_count`: {plugin}"));
    assert!(decision_count > 0.0, "{plugin}");
    assert!(number(fields, "us_per_decision") > 0.0, "{fields}");

    // The shadow's row: its name, sample, and figures the API reports.
    let shown = page["shadows"].as_array().unwrap();
    assert_eq!(shown.len(), 1, "{page}");
    let (row, reported) = (&shown[0], &plugin["shadows"][0]);
    assert_eq!(row["name"], "pinned");
    assert_eq!(row["sample"], "100.0 %");
    assert_eq!(row["sha256"], reported["sha256"].as_str().unwrap()[..12]);
    let agreement: f64 = row["agreement"]
        .as_str()
        .unwrap()
        .trim_end_matches(" %")
        .parse()
        .unwrap();
    // Round robin over three usable backends agrees with "always alpha" a third of the time.
    assert!((15.0..=50.0).contains(&agreement), "{row}");
    assert!(row["shares"].as_str().unwrap().contains("alpha"), "{row}");
    assert!(
        row["disagreements"].as_str().unwrap().contains("→ alpha"),
        "{row}"
    );

    // The canary: its state, share and step as the API reports them.
    assert_eq!(text(fields, "canary_state"), "running");
    assert_eq!(text(fields, "canary_share"), "1 %");
    assert!(
        text(fields, "canary_step").starts_with("1 of 2 (1, 100 %)"),
        "{fields}"
    );
    assert!(
        text(fields, "canary_path").ends_with("least_conn.wasm"),
        "{fields}"
    );

    // The reload history: the API keeps one, and the page lists it.
    assert_eq!(reloads_status, 200, "GET /admin/reloads: {reloads}");
    let listed = reloads["reloads"]
        .as_array()
        .unwrap_or_else(|| panic!("no `reloads` list: {reloads}"));
    let shown_reloads = page["reloads"].as_array().unwrap();
    assert_eq!(shown_reloads.len(), listed.len(), "{page}");
    for (row, reload) in shown_reloads.iter().zip(listed) {
        assert_eq!(row["what"], reload["what"]);
        assert_eq!(row["result"], reload["result"]);
    }

    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    browser.screenshot(&screenshot).await;
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}",
        screenshot.display()
    );

    drain_and_undrain_from_the_page(&proxy, &mut browser).await;

    let stats = load.finish().await;
    assert!(stats.ok > 0);
    assert!(stats.failed.is_empty(), "{:?}", stats.failed);
}

/// The drain button sends `PATCH /admin/backends/{id}` with the token: the backend drains
/// (the API reports `draining`) and the page shows it, then the undrain button undoes it.
async fn drain_and_undrain_from_the_page(proxy: &TestProxy, browser: &mut Browser) {
    let alpha = by_id(&backends_of(proxy).await, "alpha").clone();
    assert_eq!(alpha["draining"], false, "{alpha}");
    let answer = browser.click("alpha", "drain").await;
    assert_eq!(answer["status"], 200, "{answer}");
    let alpha = by_id(&backends_of(proxy).await, "alpha").clone();
    assert_eq!(alpha["draining"], true, "{alpha}");
    assert_eq!(expected_state(&alpha), "draining");
    browser.wait_polls(2).await;
    let page = browser.snapshot().await;
    let row = by_id(page["backends"].as_array().unwrap(), "alpha");
    assert_eq!(row["state"], "draining", "{row}");
    assert_eq!(row["action"], "undrain", "{row}");

    let answer = browser.click("alpha", "undrain").await;
    assert_eq!(answer["status"], 200, "{answer}");
    let alpha = by_id(&backends_of(proxy).await, "alpha").clone();
    assert_eq!(alpha["draining"], false, "{alpha}");
    browser.wait_polls(2).await;
    let page = browser.snapshot().await;
    let row = by_id(page["backends"].as_array().unwrap(), "alpha");
    assert_eq!(row["state"], "up", "{row}");
    assert_eq!(row["action"], "drain", "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_each_backend_shows_the_signals_lbx_scrapes_from_it() {
    let exposition = |waiting: u32, usage: f64| {
        MetricsAnswer::Text(format!(
            "vllm:num_requests_waiting{{model_name=\"llama\"}} {waiting}\n\
             vllm:kv_cache_usage_perc{{model_name=\"llama\"}} {usage}\n"
        ))
    };
    let busy = MetricsBackend::start("busy", exposition(7, 0.5)).await;
    let idle = MetricsBackend::start("idle", exposition(0, 0.125)).await;
    let selector = r#"vllm:num_requests_waiting{model_name="llama"}"#;
    let toml = format!(
        "[[backend]]\nurl = {:?}\n[[backend]]\nurl = {:?}\n\
         [signals]\ninterval = \"100ms\"\nmetrics = [{selector:?}, \"vllm:kv_cache_usage_perc\", \"absent\"]\n",
        busy.url(),
        idle.url(),
    );
    let proxy = TestProxy::start(&toml).await;
    let scraped = eventually(Duration::from_secs(10), || async {
        let backends = backends_of(&proxy).await;
        backends
            .iter()
            .all(|b| b["signals"]["scrapes_ok"].as_u64() >= Some(1))
            .then_some(())
    })
    .await;
    assert!(scraped.is_some(), "both backends scraped");

    let (mut browser, _) = Browser::open(&proxy.admin_url("/"), None).await;
    browser.wait_polls(2).await;
    let page = browser.snapshot().await;
    assert_eq!(page["errors"], Value::Array(vec![]), "{page}");
    let shown = page["backends"].as_array().unwrap();
    for (backend, waiting, usage) in [(&busy, 7.0, 0.5), (&idle, 0.0, 0.125)] {
        let row = by_id(shown, &backend.id());
        let fields = &row["fields"];
        assert_eq!(
            number(fields, &format!("signal:{selector}")),
            waiting,
            "{row}"
        );
        assert_eq!(
            number(fields, "signal:vllm:kv_cache_usage_perc"),
            usage,
            "{row}"
        );
        assert_eq!(
            text(fields, "signal:absent"),
            "–",
            "no series: no value, {row}"
        );
        assert!(number(fields, "signals_age") < 10.0, "{row}");
    }
}
