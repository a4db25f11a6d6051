//! The `lbx` command: parse the command line, set up logging and the runtime, call the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use lbx::config::{CertificateConfig, Config, Overrides};
use lbx::llm_sim::Profile;
use lbx::server::{Origin, Server, worker_count};
use lbx::shutdown::StopSignals;

#[derive(Parser)]
#[command(
    name = "lbx",
    version,
    about = "HTTP load balancer with WebAssembly routing plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Print every live node of the fleet (from etcd): the revision it applied, its lag, the
    /// plugin it runs, whether it reaches the store, and any revision it refused and why.
    Status {
        /// The config file whose `[fleet]` section names the store and prefix.
        #[arg(long)]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Start a plugin project: its SDK and contract copied in, a least-in-flight router to
    /// change, its native tests, a build script and a README of three commands (test, build,
    /// `lbx check`). It passes its tests and `lbx check` as created.
    New {
        /// The language: rust, python, js, c or go.
        #[arg(long)]
        lang: lbx::scaffold::Language,
        /// The plugin's name (lowercase letters, digits, `_`): the directory, crate or module,
        /// and `NAME.wasm`.
        name: String,
        /// Create `NAME/` in this directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Write the C bindings of the contract (`plugin.h`, `plugin.c`, `plugin_component_type.o`)
    /// into a directory, as `wit-bindgen c` does: a C project's build and test scripts call it.
    Bindings {
        /// The directory holding the contract (`router.wit`).
        #[arg(long, default_value = "wit")]
        wit: PathBuf,
        /// The world of the contract the plugin implements.
        #[arg(long, default_value = "plugin")]
        world: String,
        /// Where the files go (created if missing).
        out: PathBuf,
    },
    /// Make a compiler's output the component lbx loads: a C or Go core module wrapped with the
    /// WASI preview1 reactor adapter matching this lbx's wasmtime (what `wasm-tools component
    /// new --adapt` does), or a QuickJS component made to drop the borrowed request before
    /// `choose` returns (componentize-qjs 0.4.5 drops it after, and wasmtime traps the call).
    Component {
        /// What made the input: `c` (clang, bindings from `lbx plugin bindings` linked in),
        /// `go` (`go build -buildmode=c-shared` on the lbxrouter SDK) or `quickjs`
        /// (componentize-qjs, sync runtime).
        #[arg(long, value_enum)]
        lang: ModuleLanguage,
        /// The core module (C, Go) or component (QuickJS).
        core: PathBuf,
        /// The component to write.
        #[arg(short, long)]
        out: PathBuf,
        /// Go: the contract to embed (Go's module carries none).
        #[arg(long, default_value = "wit")]
        wit: PathBuf,
        /// Go: the world of the contract the plugin implements.
        #[arg(long, default_value = "plugin")]
        world: String,
        /// Go: the toolchain's version (`go env GOVERSION`), recorded in the producers section.
        #[arg(long, default_value = "")]
        go_version: String,
    },
}

/// What `lbx plugin component` makes a component of.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ModuleLanguage {
    C,
    Go,
    Quickjs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run(RunArgs),
    /// Check a config as `run` would, without serving: print every problem, or a summary.
    ///
    /// Checks the config, every file it names (certificates, keys, token, CAs) and the plugin
    /// with its `init` config and one trial decision. Exits 0 when `run` would start.
    Validate(ConfigArgs),
    /// Ask a running lbx to reload its config, plugin and certificates, as SIGHUP does.
    ///
    /// Sends `POST /admin/reload` to its admin API and prints what was applied, or why it was
    /// refused (exit 1; the running configuration keeps serving).
    Reload {
        /// The running lbx's admin API address [default: the config's `[admin] listen`, or
        /// 127.0.0.1:9901].
        #[arg(long)]
        admin: Option<String>,
        /// File holding the admin bearer token [default: the config's `[admin] token_file`].
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Take the admin address and token file from this config file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Plugin projects (`new`) and the build steps of C, Go and JavaScript plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Fleet mode: the fleet's nodes and where each stands.
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// Start three demo backends and lbx with the embedded least_conn plugin in front of them;
    /// or with --llm, compare llm_router with least_conn on simulated vLLM replicas.
    ///
    /// With --llm: fresh simulated replicas per policy, lbx with the policy, the same seeded
    /// chat workload through each, then a table of TTFT, end-to-end time, prefix-cache hits and
    /// tokens/s per policy. Runs twice --duration plus the answers' tails, then exits.
    Demo {
        /// Address of the demo proxy.
        #[arg(long, default_value = lbx::config::DEFAULT_LISTEN)]
        listen: String,
        /// Address of the admin API, or `off`.
        #[arg(long, default_value = lbx::config::DEFAULT_ADMIN_LISTEN)]
        admin: String,
        /// Compare the llm_router and least_conn plugins on simulated vLLM replicas.
        #[arg(long)]
        llm: bool,
        #[command(flatten)]
        llm_demo: LlmDemoArgs,
    },
    /// Check a plugin: load it as `lbx run` would, run decisions on synthetic requests, print
    /// them with the time each takes. Exits non-zero, saying why, if the plugin is unusable.
    Check {
        /// The plugin component (`.wasm`).
        plugin: PathBuf,
        /// Take the plugin's config, sandbox limits and backends from this file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Calls per synthetic request for the timing.
        #[arg(long, default_value_t = 10_000)]
        iterations: u32,
        /// Decide these recorded live requests (`[record]`, oldest file first) instead of the
        /// synthetic ones, and print the replay's report (`lbx replay`).
        #[arg(long = "recording", num_args = 1..)]
        recordings: Vec<PathBuf>,
    },
    /// Replay a recording of live routing decisions (`[record]`, `POST /admin/record`)
    /// against a plugin, offline: agreement with the recorded decisions, share per backend,
    /// time per decision (p50/p99), traps and fallbacks.
    ///
    /// Give the files of a rotated recording oldest first (`rec.lbxr.1 rec.lbxr`).
    Replay {
        /// The plugin component (`.wasm`) [default: the --config file's `[plugin] path`].
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// Take the plugin's `init` config and sandbox limits from this lbx config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The plugin's `init` config as JSON, instead of the config file's `[plugin] config`.
        #[arg(long)]
        plugin_config: Option<String>,
        /// Longest one decision may run, e.g. 50ms [default: the config's, or 5ms].
        #[arg(long, value_parser = humantime::parse_duration)]
        deadline: Option<Duration>,
        /// Print one JSON object instead of the text report.
        #[arg(long)]
        json: bool,
        /// The recording file(s).
        #[arg(required = true)]
        recordings: Vec<PathBuf>,
    },
    /// Drive an OpenAI-compatible LLM server (or lbx in front of several) with a seeded chat
    /// workload and report TTFT, end-to-end latency, tokens/s and the prefix-cache hit rate.
    ///
    /// Open loop: Poisson arrivals at --rate for --duration, each the next turn of one of
    /// --conversations multi-turn conversations that start from --system-prompts shared system
    /// prompts. The same --seed sends the same requests at the same offsets. Exits 1 when no
    /// request succeeded (after printing the report).
    LlmLoad(LlmLoadArgs),
    /// Run a tiny backend that answers every request with its name (for demos and benchmarks),
    /// or with --llm a simulated vLLM replica.
    Backend {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Name returned in the body and the `x-backend` header (with --llm: the
        /// `x-llm-replica` header).
        #[arg(long)]
        name: String,
        /// Delay before each answer, in milliseconds.
        #[arg(long, default_value_t = 0, conflicts_with = "llm")]
        delay_ms: u64,
        /// Worker threads (0 = one per core).
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Simulate a vLLM replica: OpenAI chat and completions (streamed as SSE or whole),
        /// /v1/models, vLLM's /metrics, continuous batching and a prefix cache timed like
        /// Llama-3.1-8B on an H100 (README: "LLM replica simulator").
        #[arg(long)]
        llm: bool,
        #[command(flatten)]
        sim: LlmArgs,
    },
}

/// The simulated replica's settings (`lbx backend --llm`); defaults: Llama-3.1-8B-Instruct on
/// one H100 with vLLM v0.8.4 (sources in host/src/llm_sim/params.rs).
#[derive(Args)]
struct LlmArgs {
    /// Model name served (repeat for aliases; the first labels the metrics) [default:
    /// meta-llama/Llama-3.1-8B-Instruct].
    #[arg(long = "model", requires = "llm")]
    models: Vec<String>,
    /// Divide every modelled time by this, so a benchmark runs in seconds.
    #[arg(long, default_value_t = 1.0, requires = "llm")]
    speedup: f64,
    /// Requests running at once (vLLM's --max-num-seqs); the rest wait in FIFO order.
    #[arg(long, default_value_t = Profile::DEFAULT.max_running, requires = "llm")]
    max_running: usize,
    /// KV cache capacity in blocks (vLLM's num_gpu_blocks).
    #[arg(long, default_value_t = Profile::DEFAULT.kv_blocks, requires = "llm")]
    kv_blocks: usize,
    /// Tokens per KV block: the prefix cache's granularity.
    #[arg(long, default_value_t = Profile::DEFAULT.block_size, requires = "llm")]
    block_size: usize,
    /// Tokens one engine step may compute (vLLM's --max-num-batched-tokens).
    #[arg(long, default_value_t = Profile::DEFAULT.max_batched_tokens, requires = "llm")]
    max_batched_tokens: usize,
    /// Longest prompt plus max_tokens accepted (vLLM's --max-model-len).
    #[arg(long, default_value_t = Profile::DEFAULT.max_model_len, requires = "llm")]
    max_model_len: usize,
    /// Fixed time of one engine step, in microseconds.
    #[arg(long, default_value_t = Profile::DEFAULT.step_us, requires = "llm")]
    step_us: f64,
    /// Added step time per uncached prompt token computed, in microseconds.
    #[arg(long, default_value_t = Profile::DEFAULT.prefill_us_per_token, requires = "llm")]
    prefill_us_per_token: f64,
    /// Added step time per decoding request in the batch, in microseconds.
    #[arg(long, default_value_t = Profile::DEFAULT.decode_us_per_token, requires = "llm")]
    decode_us_per_token: f64,
    /// API server time before a request reaches the engine, in microseconds.
    #[arg(long, default_value_t = Profile::DEFAULT.overhead_us, requires = "llm")]
    overhead_us: f64,
    /// Added API server time per prompt token, in microseconds.
    #[arg(long, default_value_t = Profile::DEFAULT.overhead_us_per_token, requires = "llm")]
    overhead_us_per_token: f64,
    /// Output length of a request that sets no max_tokens.
    #[arg(long, default_value_t = lbx::llm_sim::Settings::DEFAULT_MAX_TOKENS, requires = "llm")]
    default_max_tokens: usize,
}

impl LlmArgs {
    fn settings(self, name: String) -> lbx::llm_sim::Settings {
        let mut settings = lbx::llm_sim::Settings::new(name);
        if !self.models.is_empty() {
            settings.models = self.models;
        }
        settings.speedup = self.speedup;
        settings.default_max_tokens = self.default_max_tokens;
        settings.profile = Profile {
            step_us: self.step_us,
            prefill_us_per_token: self.prefill_us_per_token,
            decode_us_per_token: self.decode_us_per_token,
            overhead_us: self.overhead_us,
            overhead_us_per_token: self.overhead_us_per_token,
            kv_blocks: self.kv_blocks,
            block_size: self.block_size,
            max_batched_tokens: self.max_batched_tokens,
            max_running: self.max_running,
            max_model_len: self.max_model_len,
        };
        settings
    }
}

/// `lbx demo --llm`'s settings.
#[derive(Args)]
struct LlmDemoArgs {
    /// Simulated replicas in the pool.
    #[arg(long, default_value_t = 4, requires = "llm")]
    replicas: usize,
    /// How long requests keep arriving, per policy, e.g. 15s.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration, requires = "llm")]
    duration: Duration,
    /// Requests per second [default: 80% of the pool's capacity, which grows with --replicas
    /// and --speedup].
    #[arg(long, requires = "llm")]
    rate: Option<f64>,
    /// Divide every modelled time by this (the replicas run faster; so does the workload).
    #[arg(long, default_value_t = 2.0, requires = "llm")]
    speedup: f64,
    /// Seed of the workload.
    #[arg(long, default_value_t = 7, requires = "llm")]
    seed: u64,
}

#[derive(Args)]
struct LlmLoadArgs {
    /// Base URL of the server; the API path is appended.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Mean requests per second (Poisson arrivals).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// How long requests keep arriving, e.g. 30s or 2m; answers still streaming are then
    /// awaited.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Seed of the workload: the same seed sends the same requests at the same offsets.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The `model` field of every request.
    #[arg(long, default_value = lbx::llm_load::DEFAULT_MODEL)]
    model: String,
    /// `chat` (/v1/chat/completions) or `completions` (/v1/completions).
    #[arg(long, default_value = "chat")]
    api: lbx::llm_load::Api,
    /// Conversations in progress at any time (a conversation's turns come on average
    /// conversations/rate seconds apart).
    #[arg(long, default_value_t = 32)]
    conversations: usize,
    /// Distinct shared system prompts the conversations start from.
    #[arg(long, default_value_t = 4)]
    system_prompts: usize,
    /// Length of each system prompt, in tokens.
    #[arg(long, default_value_t = 1000)]
    system_prompt_tokens: u32,
    /// A conversation ends early rather than send a longer prompt, in tokens.
    #[arg(long, default_value_t = 16_384)]
    max_prompt_tokens: u32,
    /// Requests in flight at most; arrivals beyond it are dropped by the generator (counted).
    #[arg(long, default_value_t = 1024)]
    max_outstanding: usize,
    /// Longest one request may take to its last token, e.g. 120s; slower counts as an error.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT [default: 30, or
    /// `timeouts.drain` from the config file].
    #[arg(long)]
    drain_secs: Option<u64>,
}

/// The config file and the flags that override it (`run` and `validate`).
#[derive(Args)]
struct ConfigArgs {
    /// TOML configuration file; flags given here override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Routing plugin (a Wasm component). Without one, the built-in least-in-flight is used.
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// Backend URL, e.g. http://127.0.0.1:9001 (repeat for more; replaces the file's list).
    #[arg(long = "backend")]
    backends: Vec<String>,
    /// Address to accept clients on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Worker threads (0 = one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Admin API address, or `off` [default: 127.0.0.1:9901].
    #[arg(long)]
    admin: Option<String>,
    /// Address of the HTTPS listener (HTTP/1.1 and HTTP/2 by ALPN), beside the plain one.
    #[arg(long)]
    tls_listen: Option<String>,
    /// PEM certificate chain for the HTTPS listener (repeat for more; pairs with --tls-key in
    /// order; the first is served when SNI matches none).
    #[arg(long = "tls-cert")]
    tls_certs: Vec<PathBuf>,
    /// PEM private key for the --tls-cert at the same position.
    #[arg(long = "tls-key")]
    tls_keys: Vec<PathBuf>,
    /// PEM CA certificate(s) that sign the https:// backends' certificates, instead of the
    /// system roots.
    #[arg(long)]
    backend_ca: Option<PathBuf>,
}

fn main() -> ExitCode {
    let logging = lbx::logging::init();
    let cli = Cli::parse();
    let result = dispatch(cli.command);
    // Write out queued log lines before the error, which goes straight to stderr.
    drop(logging);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lbx: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => {
            let overrides = overrides(&args.config)?;
            let config = load_config(args.config.config.as_deref(), overrides.clone())?;
            let runtime = build_runtime(config.workers)?;
            runtime.block_on(async {
                let signals = StopSignals::install()?;
                let origin = Origin {
                    config_file: args.config.config.clone(),
                    overrides,
                };
                let mut server = Server::bind_from(&config, origin).await?;
                if let Some(secs) = args.drain_secs {
                    server = server.with_drain(Duration::from_secs(secs));
                }
                let (stop_tx, stop_rx) = lbx::shutdown::channel();
                signals.raise_on_signal(stop_tx);
                server.run(stop_rx).await;
                anyhow::Ok(())
            })
        }
        Command::Plugin {
            command: PluginCommand::New { lang, name, dir },
        } => {
            let created = lbx::scaffold::create(lang, &name, &dir)?;
            println!(
                "created {}: see its README.md (test, build, lbx check)",
                created.display()
            );
            Ok(())
        }
        Command::Plugin {
            command: PluginCommand::Bindings { wit, world, out },
        } => lbx_plugin_tools::c_bindings(&wit, &world, &out),
        Command::Plugin {
            command:
                PluginCommand::Component {
                    lang,
                    core,
                    out,
                    wit,
                    world,
                    go_version,
                },
        } => match lang {
            ModuleLanguage::C => lbx_plugin_tools::component(&core, &out),
            ModuleLanguage::Go => {
                lbx_plugin_tools::go_component(&core, &wit, &world, &go_version, &out)
            }
            ModuleLanguage::Quickjs => lbx_plugin_tools::quickjs_fix(&core, &out),
        },
        Command::Fleet {
            command: FleetCommand::Status { config, json },
        } => {
            let report = build_runtime(1)?.block_on(lbx::fleet::cli::status(&config, json))?;
            print!("{report}");
            Ok(())
        }
        Command::Validate(args) => {
            let overrides = overrides(&args)?;
            print!(
                "{}",
                lbx::validate::validate(args.config.as_deref(), overrides)?
            );
            Ok(())
        }
        Command::Reload {
            admin,
            token_file,
            config,
        } => {
            use lbx::reload::remote;
            let target = remote::Target::from_args(
                admin.as_deref(),
                token_file.as_deref(),
                config.as_deref(),
            )?;
            let applied = build_runtime(1)?.block_on(remote::request_reload(&target))?;
            println!("{applied}");
            Ok(())
        }
        Command::Check {
            plugin,
            config,
            recordings,
            ..
        } if !recordings.is_empty() => {
            print!(
                "{}",
                lbx::check::run_on_recording(&plugin, config.as_deref(), recordings)?
            );
            Ok(())
        }
        Command::Check {
            plugin,
            config,
            iterations,
            ..
        } => {
            print!(
                "{}",
                lbx::check::run(&plugin, config.as_deref(), iterations)?
            );
            Ok(())
        }
        Command::Replay {
            plugin,
            config,
            plugin_config,
            deadline,
            json,
            recordings,
        } => {
            let report = lbx::replay::run(&lbx::replay::Options {
                plugin,
                recordings,
                config_file: config,
                plugin_config,
                deadline,
            })?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{report}");
            }
            Ok(())
        }
        Command::Demo {
            listen,
            admin,
            llm: false,
            ..
        } => build_runtime(0)?.block_on(lbx::demo::run(Some(listen), Some(admin))),
        Command::Demo {
            listen,
            admin,
            llm: true,
            llm_demo: args,
        } => {
            let settings = lbx::demo::llm::Settings {
                listen,
                admin,
                replicas: args.replicas,
                duration: args.duration,
                rate: args.rate,
                speedup: args.speedup,
                seed: args.seed,
            };
            build_runtime(0)?.block_on(lbx::demo::llm::run(settings))
        }
        Command::LlmLoad(args) => llm_load(args),
        Command::Backend {
            listen,
            name,
            delay_ms,
            workers,
            llm,
            sim,
        } => {
            let sim = llm.then(|| sim.settings(name.clone()));
            if let Some(settings) = &sim {
                settings.validate()?;
            }
            build_runtime(workers)?.block_on(async move {
                let signals = StopSignals::install()?;
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                let (stop_tx, stop_rx) = lbx::shutdown::channel();
                signals.raise_on_signal(stop_tx);
                match sim {
                    Some(settings) => lbx::llm_sim::serve(listener, settings, stop_rx).await?,
                    None => {
                        let delay = Duration::from_millis(delay_ms);
                        lbx::demo::serve_backend(listener, name, delay, stop_rx).await;
                    }
                }
                anyhow::Ok(())
            })
        }
    }
}

fn llm_load(args: LlmLoadArgs) -> anyhow::Result<()> {
    let mut settings = lbx::llm_load::Settings {
        url: args.url,
        api: args.api,
        model: args.model,
        rate: args.rate,
        duration: args.duration,
        seed: args.seed,
        conversations: args.conversations,
        system_prompts: args.system_prompts,
        max_prompt_tokens: args.max_prompt_tokens,
        max_outstanding: args.max_outstanding,
        timeout: args.timeout,
        ..Default::default()
    };
    settings.profile.system_prompt_tokens = args.system_prompt_tokens;
    let report = build_runtime(0)?.block_on(lbx::llm_load::run(&settings))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    if report.ok == 0 && report.sent > 0 {
        anyhow::bail!(
            "no request succeeded ({} shed, {} errors)",
            report.shed,
            report.errors
        );
    }
    Ok(())
}

fn overrides(args: &ConfigArgs) -> anyhow::Result<Overrides> {
    if args.tls_certs.len() != args.tls_keys.len() {
        anyhow::bail!(
            "--tls-cert and --tls-key pair up in order: got {} certificates and {} keys",
            args.tls_certs.len(),
            args.tls_keys.len()
        );
    }
    Ok(Overrides {
        listen: args.listen.clone(),
        plugin: args.plugin.clone(),
        backends: args.backends.clone(),
        workers: args.workers,
        admin: args.admin.clone(),
        tls_listen: args.tls_listen.clone(),
        tls_certificates: args
            .tls_certs
            .iter()
            .zip(&args.tls_keys)
            .map(|(cert, key)| CertificateConfig {
                cert: cert.clone(),
                key: key.clone(),
            })
            .collect(),
        backend_ca: args.backend_ca.clone(),
    })
}

fn load_config(file: Option<&std::path::Path>, overrides: Overrides) -> anyhow::Result<Config> {
    let mut config = match file {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    config.apply(overrides);
    config.validate()?;
    Ok(config)
}

/// One worker runs on a current-thread runtime: no work-stealing overhead.
fn build_runtime(workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = worker_count(workers);
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    Ok(builder.enable_all().build()?)
}
