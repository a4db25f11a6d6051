//! `lbx check PLUGIN.wasm [--config lbx.toml]`: is this file a plugin lbx can run, what does
//! it decide, and how long does a decision take — before it goes anywhere near traffic.
//!
//! It validates the config as `lbx run` would (every problem named by its key), loads the
//! plugin exactly as `lbx run` would (same world, same sandbox, `init` with the config's
//! `[plugin] config`), then runs a fixed set of synthetic requests over the config's
//! backends (or three made-up ones) and prints each decision with its mean time, then what the
//! first one costs with cold CPU caches (see [`cold`]). It names the language that made the
//! plugin (see [`language`]), the contract version it speaks (`lbx:router@0.1.0` or `@0.2.0`)
//! and whether it asked to hear outcomes, its size, compile and start times, each decision's
//! p50 and p99, and the linear memory an instance holds after them. Any failure (not a
//! component, wrong world, `init` refusal, a trap or an unusable answer) is an error.
//!
//! With `--recording rec.lbxr` it decides recorded live requests instead (see the `replay`
//! module) and fails if any of them traps or is answered unusably.

mod cold;
mod language;

pub use cold::CacheEvicter;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::config::{BackendConfig, Config};
use crate::plugin::{
    Decision, KvStore, LoadOptions, LoadedPlugin, PluginEngine, RequestMeta, RetryContext, Route,
    interpret,
};
use crate::upstream::{BackendSet, PoolSettings, Upstreams};

/// One synthetic request of the check.
struct Scenario {
    label: &'static str,
    request: http::Request<()>,
    client: SocketAddr,
    /// Mark this backend index down first (restored afterwards).
    down: Option<usize>,
    /// Ask as a retry after the first decision of the plain `GET /`.
    retry: bool,
}

/// Run the check; returns the report to print, or why the plugin is not usable.
pub fn run(plugin: &Path, config_file: Option<&Path>, iterations: u32) -> anyhow::Result<String> {
    let mut config = match config_file {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if config.backends.is_empty() {
        config.backends = made_up_backends();
    }
    // The plugin's settings must be what `lbx run` would accept, or the check proves nothing.
    let resolved = config.validate().with_context(|| match config_file {
        Some(path) => format!("{} cannot be used", path.display()),
        None => "the default config cannot be used".into(),
    })?;
    let specs = resolved.backends;
    let upstreams = Upstreams::new(&specs, PoolSettings::never_connecting())?;
    let set = upstreams.snapshot();
    let kv = Arc::new(KvStore::new(config.plugin_settings().kv_max_bytes));
    let options = LoadOptions {
        // A plugin's own output (a Python traceback) helps its author here.
        inherit_stdio: true,
        ..LoadOptions::from_spec(&config.plugin_spec(), kv, 1)
    };
    let limits = options.limits;

    let engine = PluginEngine::new(limits.deadline)?;
    let bytes =
        std::fs::read(plugin).with_context(|| format!("cannot read {}", plugin.display()))?;
    let started = Instant::now();
    let loaded = LoadedPlugin::load_file(&engine, plugin, options.clone(), &set)?;
    let load_time = started.elapsed();
    // Loaded again, the compiled code comes from the engine's cache: what is left is starting
    // it (instantiate, `init`, the trial decision), and the difference is the compilation.
    let started = Instant::now();
    drop(LoadedPlugin::load_file(&engine, plugin, options, &set)?);
    let start_time = started.elapsed();
    let compile_time = load_time.saturating_sub(start_time);

    let mut report = String::new();
    writeln!(report, "plugin {}", plugin.display())?;
    let language = match language::language(&language::producers(&bytes)) {
        Some((language, evidence)) => format!("{language} ({evidence})"),
        None => "unknown (no toolchain named in its producers sections)".into(),
    };
    writeln!(
        report,
        "  sha256 {}\n  language {language}\n  {} bytes, compiled in {:.1} ms, started in {:.1} ms (init with {})",
        loaded.sha256(),
        bytes.len(),
        compile_time.as_secs_f64() * 1000.0,
        start_time.as_secs_f64() * 1000.0,
        loaded.options().config_json
    )?;
    let hears = if loaded.features().outcomes {
        ", hears outcomes"
    } else {
        ""
    };
    writeln!(report, "  contract {}{hears}", loaded.contract().as_str())?;
    writeln!(report, "backends")?;
    for (i, b) in set.backends.iter().enumerate() {
        writeln!(report, "  {i}: {} ({})", b.spec.id, b.spec.authority)?;
    }
    writeln!(
        report,
        "decisions ({iterations} calls each, p50 and p99 of their times; in-process, no network)"
    )?;
    let mut first_pick = None;
    for scenario in scenarios(set.len()) {
        if let Some(index) = scenario.down {
            set.backends[index].stats.set_down(true);
        }
        let retry = scenario.retry.then(|| RetryContext {
            attempt: 1,
            tried: first_pick.into_iter().collect(),
        });
        let mut meta = RequestMeta::from_http(&scenario.request, scenario.client);
        let decision = loaded.choose(&mut meta, &set, None, retry.as_ref());
        let decision =
            decision.with_context(|| format!("decision for {} failed", scenario.label))?;
        let described = describe(&decision, &set)
            .with_context(|| format!("decision for {} is unusable", scenario.label))?;
        if first_pick.is_none()
            && let Decision::Pick(pick) = &decision
        {
            first_pick = Some(pick.backend);
        }
        let timed = time_decisions(&loaded, meta, &set, retry.as_ref(), iterations);
        let (failures, reason) = (timed.failures, timed.first_failure);
        writeln!(
            report,
            "  {:<44} -> {described}  [p50 {:.2} µs, p99 {:.2} µs]",
            scenario.label,
            timed.p50.as_secs_f64() * 1e6,
            timed.p99.as_secs_f64() * 1e6
        )?;
        if let Some(reason) = reason {
            // More than 1% failing is the plugin's doing, not an unlucky preemption.
            if failures * 100 > iterations {
                bail!(
                    "{failures} of {iterations} timed decisions for {} failed: {reason}",
                    scenario.label
                );
            }
            writeln!(
                report,
                "    ({failures} of {iterations} calls failed: {reason})"
            )?;
        }
        if let Some(index) = scenario.down {
            set.backends[index].stats.set_down(false);
        }
    }
    let cold = time_cold_decisions(&loaded, &set, COLD_SAMPLES);
    writeln!(
        report,
        "with cold caches (64 MiB written before each call, as when requests come one at a time)\n  \
         GET / from 127.0.0.1: median of {COLD_SAMPLES} calls [{:.2} µs]",
        cold.as_secs_f64() * 1e6
    )?;
    writeln!(
        report,
        "memory\n  {:.1} MiB of linear memory per instance after these decisions (limit {} MiB)",
        loaded.idle_memory_bytes() as f64 / (1024.0 * 1024.0),
        limits.memory_bytes / (1024 * 1024)
    )?;
    writeln!(report, "ok: the plugin is usable")?;
    Ok(report)
}

/// Check a plugin on recorded live decisions instead of synthetic requests (`lbx check
/// PLUGIN --recording rec.lbxr`): the replay's report (see the `replay` module), and an error
/// if any decision trapped, ran out of time or was answered unusably.
pub fn run_on_recording(
    plugin: &Path,
    config_file: Option<&Path>,
    recordings: Vec<std::path::PathBuf>,
) -> anyhow::Result<String> {
    let report = crate::replay::run(&crate::replay::Options {
        plugin: Some(plugin.to_path_buf()),
        recordings,
        config_file: config_file.map(Path::to_path_buf),
        ..Default::default()
    })?;
    let failed = report.traps + report.unusable;
    if failed > 0 {
        bail!(
            "{failed} of {} recorded decisions failed ({} traps or timeouts, {} unusable answers):\n{report}",
            report.decisions,
            report.traps,
            report.unusable
        );
    }
    Ok(format!(
        "{report}ok: the plugin is usable on the recording\n"
    ))
}

/// Three backends that exist only for trying a plugin, for a config that names none.
pub(crate) fn made_up_backends() -> Vec<BackendConfig> {
    (1..=3)
        .map(|i| BackendConfig {
            id: Some(format!("b{i}")),
            ..BackendConfig::at(format!("http://127.0.0.1:{}", 9000 + i))
        })
        .collect()
}

fn scenarios(backends: usize) -> Vec<Scenario> {
    let local = SocketAddr::from(([127, 0, 0, 1], 40000));
    let get = |target: &str| {
        http::Request::get(target)
            .header("host", "example.test")
            .header("user-agent", "lbx-check")
    };
    let mut list = vec![
        Scenario {
            label: "GET / from 127.0.0.1",
            request: get("/").body(()).expect("valid"),
            client: local,
            down: None,
            retry: false,
        },
        Scenario {
            label: "GET /api/users?id=7 (x-canary: 1)",
            request: get("/api/users?id=7")
                .header("x-canary", "1")
                .body(())
                .expect("valid"),
            client: SocketAddr::from(([10, 1, 2, 3], 51000)),
            down: None,
            retry: false,
        },
        Scenario {
            label: "POST /cart (cookie session=abc) from 10.9.8.7",
            request: http::Request::post("/cart")
                .header("host", "shop.example.test")
                .header("cookie", "session=abc; theme=dark")
                .body(())
                .expect("valid"),
            client: SocketAddr::from(([10, 9, 8, 7], 52000)),
            down: None,
            retry: false,
        },
        Scenario {
            label: "GET / retry after the first pick failed",
            request: get("/").body(()).expect("valid"),
            client: local,
            down: None,
            retry: true,
        },
    ];
    if backends > 1 {
        list.push(Scenario {
            label: "GET / with backend 0 down",
            request: get("/").body(()).expect("valid"),
            client: local,
            down: Some(0),
            retry: false,
        });
    }
    list
}

/// A decision in words, or why it is unusable over `set`.
pub(crate) fn describe(decision: &Decision, set: &BackendSet) -> anyhow::Result<String> {
    let route = match interpret(decision.clone(), set) {
        Ok(route) => route,
        Err(reason) => bail!(reason),
    };
    Ok(match route {
        None => "no opinion (the built-in least-in-flight decides)".into(),
        Some((Route::Reject(status), _)) => format!("reject {status}"),
        Some((Route::NoUsableBackend, _)) => "no usable backend".into(),
        Some((Route::Forward { index }, directives)) => {
            let mut text = format!("backend {index} ({})", set.backends[index].spec.id);
            if !directives.fallbacks.is_empty() {
                let ids: Vec<&str> = directives
                    .fallbacks
                    .iter()
                    .map(|&i| set.backends[i as usize].spec.id.as_str())
                    .collect();
                write!(text, ", then {}", ids.join(", "))?;
            }
            if !directives.retry_on.is_empty() {
                write!(text, ", retry on {:?}", directives.retry_on)?;
            }
            if let Some(target) = &directives.rewrite {
                write!(text, ", path {}", String::from_utf8_lossy(target))?;
            }
            for (name, value) in &directives.upstream_headers {
                write!(text, ", upstream {name}: {}", value.to_str().unwrap_or("?"))?;
            }
            for (name, value) in &directives.downstream_headers {
                write!(text, ", response {name}: {}", value.to_str().unwrap_or("?"))?;
            }
            if directives.tag != 0 {
                write!(text, ", tag {}", directives.tag)?;
            }
            text
        }
    })
}

/// Calls timed with cold caches: each costs a 64 MiB write (~10 ms), so few, and their median.
const COLD_SAMPLES: usize = 21;

/// Median time of a plain `GET /` decision when the caches were evicted just before it.
fn time_cold_decisions(loaded: &LoadedPlugin, set: &BackendSet, samples: usize) -> Duration {
    let request = http::Request::get("/").body(()).expect("a valid request");
    let mut meta = RequestMeta::from_http(&request, SocketAddr::from(([127, 0, 0, 1], 40000)));
    let mut evicter = CacheEvicter::new(CacheEvicter::DEFAULT_BYTES);
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        evicter.evict();
        let started = Instant::now();
        let _ = loaded.choose(&mut meta, set, None, None);
        times.push(started.elapsed());
    }
    cold::median(&mut times)
}

/// Times of `iterations` decisions of one request.
struct Timed {
    p50: Duration,
    p99: Duration,
    /// Calls that failed, and the first reason.
    failures: u32,
    first_failure: Option<String>,
}

/// Each of `iterations` calls timed on its own (the clock read costs ~25 ns a call, part of
/// every figure), their p50 and p99, and how many failed (with the first reason). A lone
/// failure is reported, not fatal: on a busy machine a preempted call can overrun a
/// millisecond deadline without the plugin being at fault.
fn time_decisions(
    loaded: &LoadedPlugin,
    mut meta: RequestMeta,
    set: &BackendSet,
    retry: Option<&RetryContext>,
    iterations: u32,
) -> Timed {
    let iterations = iterations.max(1);
    let (mut failures, mut first_failure) = (0, None);
    let mut times = Vec::with_capacity(iterations as usize);
    for _ in 0..iterations {
        let started = Instant::now();
        let decided = loaded.choose(&mut meta, set, None, retry);
        times.push(started.elapsed());
        if let Err(e) = decided {
            failures += 1;
            first_failure.get_or_insert(e.reason);
        }
    }
    times.sort_unstable();
    let at = |share: f64| times[((times.len() - 1) as f64 * share).round() as usize];
    Timed {
        p50: at(0.50),
        p99: at(0.99),
        failures,
        first_failure,
    }
}
