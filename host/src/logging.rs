//! Where log lines go: formatted on the thread that logs, written by a writer thread of their
//! own, never by a worker serving requests.
//!
//! An access line per request written straight to stderr is a `write` syscall per request on
//! the worker, and a slow log destination (a full pipe, a stalled disk) would stall the
//! proxy with it: measured 14% of a worker's throughput. Here the worker hands the formatted
//! line to a bounded channel (tracing-appender's non-blocking writer) and goes on; the writer
//! thread drains whatever has queued into one buffer and writes it out with one syscall. When
//! the channel is full — the destination cannot keep up — lines are dropped, never waited
//! for, and counted (`lbx_log_lines_dropped_total`).

use std::io::{BufWriter, Write};
use std::os::fd::AsFd;
use std::sync::OnceLock;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

/// Lines that may wait for the writer thread before new ones are dropped (~2 MB of access
/// lines; at 50k requests/s, 160 ms of a stalled destination).
const QUEUED_LINES: usize = 8 * 1024;

/// Bytes the writer thread gathers before writing (it also writes whenever the queue empties).
const WRITE_BUFFER: usize = 64 * 1024;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Keeps the writer thread; dropping it writes out what is queued.
#[derive(Debug)]
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(#[allow(dead_code)] WorkerGuard);

/// Send `tracing` output (filtered by `RUST_LOG`, `info` by default) to stderr through the
/// writer thread.
pub fn init() -> LogGuard {
    let stderr = std::io::stderr();
    let ansi = std::io::IsTerminal::is_terminal(&stderr);
    let destination: Box<dyn Write + Send> = match stderr.as_fd().try_clone_to_owned() {
        // Its own descriptor, so the buffer is not undone by stderr's per-write flushing.
        Ok(fd) => Box::new(BufWriter::with_capacity(
            WRITE_BUFFER,
            std::fs::File::from(fd),
        )),
        Err(_) => Box::new(stderr),
    };
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(true)
        .thread_name("lbx-log")
        .finish(destination);
    let _ = DROPPED.set(writer.error_counter());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .init();
    LogGuard(guard)
}

/// Lines dropped because the destination could not keep up (0 before [`init`]).
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

/// Encodes `lbx_log_lines_dropped_total` on every scrape.
#[derive(Debug)]
pub struct DroppedLinesCollector;

impl Collector for DroppedLinesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metric = encoder.encode_descriptor(
            "log_lines_dropped",
            "Log lines dropped because the log destination could not keep up",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(dropped_lines()).encode(metric)
    }
}
