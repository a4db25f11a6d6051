//! `lbx demo --llm`: simulated vLLM replicas behind lbx, once routed by the embedded
//! `llm_router` plugin and once by the embedded least_conn plugin, each run driven by the same
//! seeded chat workload; then a table of what a user of the service would have felt with each.
//!
//! Everything runs in this one process, on loopback. Per policy, in turn:
//! 1. **Fresh replicas** (`llm_sim`), so every policy starts with cold prefix caches: a policy
//!    run second must not inherit the caches the first one warmed.
//! 2. **lbx** with that policy and the config bench/llm.sh uses for the same comparison: the
//!    plugin reads up to 64 KiB of each body (the router needs the model and the whole
//!    conversation), the replicas' queues and KV-cache use are scraped as signals every 100 ms
//!    of model time, and every backend is labelled with the model it serves. Its admin API
//!    (and the dashboard, which shows each replica's scraped signals) stays up for the run.
//! 3. **The workload** (`llm_load`): the same seed, so the same requests at the same offsets.
//!
//! The replicas are shaped as in bench/llm.sh: Llama-3.1-8B-on-H100 step times, but 8 requests
//! running at once and 2048 KV blocks (32k tokens) each. A replica cannot cache every
//! conversation, so where a conversation's next turn goes matters; and a pool of four streaming
//! every token as an event fits a 2-core machine in real time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::comparison::Comparison;
use crate::config::{BackendConfig, Config, Overrides, PluginConfig};
use crate::llm_load::{self, Report};
use crate::llm_sim;
use crate::server::Server;
use crate::shutdown::{self, StopReceiver, StopSignals};

/// Requests one replica of the shape above completes per second at speedup 1 under the
/// default workload: bench/llm.sh measured 16.585 req/s for a pool of four (least_conn offered
/// far more than the pool could serve; bench/results/llm-2026-12-02.md). The demo assumes the
/// capacity grows linearly with the replicas and the speedup (the speedup divides every
/// modelled time).
pub const CAPACITY_PER_REPLICA: f64 = 16.585 / 4.0;

/// The share of the pool's capacity offered by default: busy enough that queues form and
/// placement matters, below saturation so that nothing is shed (bench/llm.sh's middle load).
pub const LOAD: f64 = 0.8;

/// Requests a replica runs at once (vLLM's `max_num_seqs`), as bench/llm.sh sets it.
const MAX_RUNNING: usize = 8;
/// A replica's KV cache, in blocks of 16 tokens, as bench/llm.sh sets it.
const KV_BLOCKS: usize = 2048;
/// Conversations in progress per replica: bench/llm.sh runs 48 over four replicas.
const CONVERSATIONS_PER_REPLICA: usize = 12;
/// How much of a request body the plugin sees: the whole conversation of the workload's
/// prompts (bench/llm.sh's default).
const BODY_PREFIX: u64 = 64 * 1024;
/// The replicas' metrics lbx scrapes and hands the plugin (and shows on the dashboard).
const SIGNALS: [&str; 3] = [
    "vllm:num_requests_waiting",
    "vllm:num_requests_running",
    "vllm:kv_cache_usage_perc",
];
/// Model time between two scrapes of a replica; real time is this over the speedup.
const SCRAPE_MODEL_MS: f64 = 100.0;
/// More replicas than this would not stream in real time on a small machine, in one process.
pub const MAX_REPLICAS: usize = 16;

/// A routing plugin compiled into the binary.
struct Policy {
    name: &'static str,
    /// How logs and the admin API name it.
    label: &'static str,
    wasm: &'static [u8],
}

/// The policies compared, in the order run: the router made for this traffic, then the
/// baseline the plain demo uses.
const POLICIES: [Policy; 2] = [
    Policy {
        name: "llm_router",
        label: "llm_router.wasm (embedded)",
        wasm: crate::EMBEDDED_LLM_ROUTER,
    },
    Policy {
        name: "least_conn",
        label: "least_conn.wasm (embedded)",
        wasm: crate::EMBEDDED_LEAST_CONN,
    },
];

/// What `lbx demo --llm` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// lbx's listen address (one policy at a time, so both runs use it).
    pub listen: String,
    /// lbx's admin API and dashboard address, or `off`.
    pub admin: String,
    /// Simulated replicas in the pool.
    pub replicas: usize,
    /// How long requests keep arriving, per policy.
    pub duration: Duration,
    /// Requests per second; `None`: [`LOAD`] of the pool's capacity.
    pub rate: Option<f64>,
    /// Every modelled time is divided by this.
    pub speedup: f64,
    /// The workload's seed.
    pub seed: u64,
}

/// Settings that cannot run; the message names every problem by its flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lbx demo --llm cannot run: {}", .0.join("; "))]
pub struct SettingsError(pub Vec<String>);

impl Settings {
    /// The pool's capacity in requests per second, as [`CAPACITY_PER_REPLICA`] estimates it.
    pub fn capacity(&self) -> f64 {
        CAPACITY_PER_REPLICA * self.replicas as f64 * self.speedup
    }

    /// The arrival rate offered: `--rate`, or [`LOAD`] of the capacity.
    pub fn rate(&self) -> f64 {
        self.rate.unwrap_or(LOAD * self.capacity())
    }

    /// Every problem with these settings, by flag.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            problems.push(format!(
                "--replicas must be between 1 and {MAX_REPLICAS}, got {}",
                self.replicas
            ));
        }
        if self.duration.is_zero() {
            problems.push("--duration must be longer than zero".into());
        }
        if !(self.speedup.is_finite() && self.speedup > 0.0) {
            problems.push(format!(
                "--speedup must be a positive number, got {}",
                self.speedup
            ));
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            problems.push(format!(
                "--rate must be a positive number of requests per second, got {rate}"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError(problems))
        }
    }

    fn replica(&self, name: String) -> llm_sim::Settings {
        let mut replica = llm_sim::Settings::new(name);
        replica.models = vec![llm_load::DEFAULT_MODEL.to_string()];
        replica.speedup = self.speedup;
        replica.profile.max_running = MAX_RUNNING;
        replica.profile.kv_blocks = KV_BLOCKS;
        replica
    }

    fn workload(&self, proxy: SocketAddr) -> llm_load::Settings {
        llm_load::Settings {
            url: format!("http://{proxy}"),
            rate: self.rate(),
            duration: self.duration,
            seed: self.seed,
            conversations: CONVERSATIONS_PER_REPLICA * self.replicas,
            ..llm_load::Settings::default()
        }
    }

    fn scrape_interval(&self) -> Duration {
        Duration::from_secs_f64(SCRAPE_MODEL_MS / 1000.0 / self.speedup)
            .max(crate::config::signals::MIN_INTERVAL)
    }
}

/// Run the comparison and print it; Ctrl-C (or SIGTERM) stops whatever runs, cleanly.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    settings.validate()?;
    let (interrupt, interrupted) = shutdown::channel();
    StopSignals::install()?.raise_on_signal(interrupt);

    println!(
        "lbx demo --llm: {} simulated vLLM replicas (Llama-3.1-8B on an H100, {MAX_RUNNING} \
         requests at once and {} KV-cache tokens each, time sped up {}x)",
        settings.replicas,
        KV_BLOCKS * llm_sim::Profile::DEFAULT.block_size,
        settings.speedup
    );
    let share = match settings.rate {
        Some(_) => String::new(),
        None => format!(" ({:.0}% of the pool's capacity)", LOAD * 100.0),
    };
    println!(
        "workload: {:.1} req/s of chat conversations{share} for {} s, seed {}; the same for \
         each policy, on fresh replicas (cold caches)",
        settings.rate(),
        settings.duration.as_secs_f64(),
        settings.seed
    );

    let mut comparison = Comparison::new();
    for (i, policy) in POLICIES.iter().enumerate() {
        println!("\n[{}/{}] {}", i + 1, POLICIES.len(), policy.name);
        match run_policy(&settings, policy, interrupted.clone()).await? {
            Some(report) => {
                println!(
                    "  done: {} of {} requests ok in {:.1} s",
                    report.ok, report.sent, report.elapsed_s
                );
                comparison.push(policy.name, report);
            }
            None => {
                println!("  stopped before the comparison was complete; every server is stopped");
                return Ok(());
            }
        }
    }
    println!("\n{comparison}");
    Ok(())
}

/// One policy's run on fresh replicas; `None` if `interrupted` was raised first. Every server
/// it started is stopped when it returns.
async fn run_policy(
    settings: &Settings,
    policy: &Policy,
    mut interrupted: StopReceiver,
) -> anyhow::Result<Option<Report>> {
    // Dropping `stop` (an early return) stops everything as sending `true` does.
    let (stop, stopped) = shutdown::channel();
    let mut replicas = Vec::new();
    for i in 1..=settings.replicas {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let replica = settings.replica(format!("replica-{i}"));
        let task: JoinHandle<Result<(), llm_sim::SettingsError>> =
            tokio::spawn(llm_sim::serve(listener, replica, stopped.clone()));
        replicas.push((addr, task));
    }
    let addrs: Vec<SocketAddr> = replicas.iter().map(|(addr, _)| *addr).collect();
    let config = lbx_config(settings, &addrs);
    let server = Server::bind_embedded(&config, policy.label, policy.wasm)
        .await
        .context(
            "cannot start the demo proxy (is something else on that port? try --listen \
             127.0.0.1:0 --admin 127.0.0.1:0)",
        )?
        .with_drain(Duration::from_secs(2));
    let proxy = server.local_addr();
    println!("  lbx on http://{proxy} with {}", policy.label);
    if let Some(admin) = server.admin_addr() {
        println!(
            "  dashboard http://{admin}/ (each replica's scraped queue, batch and KV-cache use)"
        );
    }
    let serving = tokio::spawn(server.run(stopped.clone()));
    println!(
        "  sending the workload for {} s (Ctrl-C stops the demo)",
        settings.duration.as_secs_f64()
    );

    let workload = settings.workload(proxy);
    let measured = tokio::select! {
        report = llm_load::run(&workload) => Some(report),
        _ = shutdown::stopped(&mut interrupted) => None,
    };
    let _ = stop.send(true);
    let _ = serving.await;
    for (_, task) in replicas {
        task.await??;
    }
    Ok(measured.transpose()?)
}

/// lbx in front of the replicas at `addrs`, configured as bench/llm.sh configures it (the
/// plugin itself comes from the binary, so `[plugin] path` only names it).
fn lbx_config(settings: &Settings, addrs: &[SocketAddr]) -> Config {
    let mut config = Config::default();
    config.apply(Overrides {
        listen: Some(settings.listen.clone()),
        admin: Some(settings.admin.clone()),
        ..Overrides::default()
    });
    config.backends = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let mut backend = BackendConfig::at(format!("http://{addr}"));
            backend.id = Some(format!("replica-{}", i + 1));
            backend
                .labels
                .insert("model".into(), llm_load::DEFAULT_MODEL.into());
            backend
        })
        .collect();
    let mut plugin = PluginConfig::at(PathBuf::from("(embedded)"));
    plugin.body_prefix = bytesize::ByteSize(BODY_PREFIX);
    config.plugin = Some(plugin);
    config.signals.interval = settings.scrape_interval();
    config.signals.metrics = SIGNALS.iter().map(|s| s.to_string()).collect();
    // A line per request would bury the demo's own output.
    config.log.access = false;
    // The workload's requests are POSTs: let one that never reached a replica go to another,
    // as bench/llm.sh does.
    config.retry.non_idempotent = true;
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            listen: "127.0.0.1:0".into(),
            admin: "off".into(),
            replicas: 4,
            duration: Duration::from_secs(15),
            rate: None,
            speedup: 1.0,
            seed: 7,
        }
    }

    #[test]
    fn the_default_rate_is_eighty_percent_of_the_measured_capacity_scaled_by_pool_and_speedup() {
        let mut s = settings();
        assert!((s.rate() - 0.8 * 16.585).abs() < 1e-9);
        s.replicas = 2;
        s.speedup = 4.0;
        assert!((s.rate() - 0.8 * 16.585 / 2.0 * 4.0).abs() < 1e-9);
        s.rate = Some(3.0);
        assert_eq!(s.rate(), 3.0);
    }

    #[test]
    fn every_bad_setting_is_named_by_its_flag() {
        let s = Settings {
            replicas: 0,
            duration: Duration::ZERO,
            rate: Some(-1.0),
            speedup: f64::NAN,
            ..settings()
        };
        let message = s.validate().unwrap_err().to_string();
        for flag in ["--replicas", "--duration", "--rate", "--speedup"] {
            assert!(message.contains(flag), "{flag} in {message}");
        }
        assert_eq!(settings().validate(), Ok(()));
    }

    #[test]
    fn lbx_starts_with_valid_signals_whatever_the_speedup() {
        let addrs: Vec<SocketAddr> = vec!["127.0.0.1:9101".parse().unwrap()];
        for speedup in [0.5, 1.0, 20.0, 1000.0] {
            let s = Settings {
                speedup,
                ..settings()
            };
            let config = lbx_config(&s, &addrs);
            assert!(config.validate().is_ok(), "speedup {speedup}");
            assert!(config.signals.interval >= Duration::from_millis(10));
        }
    }
}
