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
//!
//! Every line follows `[log] format` ([`set_format`], on start and on config reload): text, or
//! one JSON object per line (`timestamp`, `level`, `target`, `message` and the event's fields
//! at the top level, as access lines have them), so a log shipper parses the whole log one way.

use std::io::{BufWriter, Write};
use std::os::fd::AsFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::format::{Format, Full, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Lines that may wait for the writer thread before new ones are dropped (~2 MB of access
/// lines; at 50k requests/s, 160 ms of a stalled destination).
const QUEUED_LINES: usize = 8 * 1024;

/// Bytes the writer thread gathers before writing (it also writes whenever the queue empties).
const WRITE_BUFFER: usize = 64 * 1024;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// The writer thread's queue, for lines formatted outside `tracing` (access lines).
static WRITER: OnceLock<NonBlocking> = OnceLock::new();

/// Whether lines are JSON (`[log] format = "json"`) rather than text.
static JSON_LINES: AtomicBool = AtomicBool::new(false);

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
    let _ = WRITER.set(writer.clone());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .event_format(Layout::default())
        .init();
    LogGuard(guard)
}

/// Write every line from now on as `format` says (text until the config is read).
pub fn set_format(format: LogFormat) {
    JSON_LINES.store(format == LogFormat::Json, Ordering::Relaxed);
}

/// `tracing`'s own text and JSON layouts, chosen per line by [`set_format`]: a reload switches
/// the format without rebuilding the subscriber (whose writer thread holds queued lines).
struct Layout {
    text: Format<Full>,
    json: Format<Json>,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            text: Format::default(),
            // Fields beside `message` at the top level, as in access lines; lbx opens no spans.
            json: Format::default()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for Layout
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if JSON_LINES.load(Ordering::Relaxed) {
            self.json.format_event(context, writer, event)
        } else {
            self.text.format_event(context, writer, event)
        }
    }
}

/// Whether [`init`] set up the writer thread (an embedding process may log its own way).
pub fn is_initialised() -> bool {
    WRITER.get().is_some()
}

/// Queue one whole line (ending in `\n`) for the writer thread; dropped and counted if the
/// queue is full, ignored before [`init`].
pub fn write_line(line: &[u8]) {
    if let Some(writer) = WRITER.get() {
        // One queued message per call: the non-blocking writer never splits a write.
        let _ = writer.clone().write(line);
    }
}

/// Append now, as `tracing`'s default formatter writes it: `2026-11-21T23:59:10.123456Z`. The
/// part up to the second is formatted once per second per thread.
pub fn write_timestamp(out: &mut Vec<u8>) {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((u64::MAX, String::new()))
        };
    }
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(cached, prefix)| {
        if *cached != secs {
            *cached = secs;
            *prefix = utc_to_the_second(secs);
        }
        out.extend_from_slice(prefix.as_bytes());
        // Writing to a Vec cannot fail.
        let _ = write!(out, ".{:06}Z", since_epoch.subsec_micros());
    });
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC for seconds since the Unix epoch (days to a civil date by
/// Howard Hinnant's `civil_from_days`).
fn utc_to_the_second(secs: u64) -> String {
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        in_day / 3_600,
        in_day % 3_600 / 60,
        in_day % 60
    )
}

/// Lines dropped because the destination could not keep up (0 before [`init`]).
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

/// The log writer's metrics: `lbx_log_lines_dropped_total`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogMetrics;

impl crate::metrics::RegisterMetrics for LogMetrics {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(DroppedLinesCollector));
    }
}

/// Encodes `lbx_log_lines_dropped_total` on every scrape.
#[derive(Debug)]
struct DroppedLinesCollector;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_since_the_epoch_become_utc_dates() {
        assert_eq!(utc_to_the_second(0), "1970-01-01T00:00:00");
        assert_eq!(utc_to_the_second(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(utc_to_the_second(1_709_251_199), "2024-02-29T23:59:59");
        assert_eq!(utc_to_the_second(1_795_219_200), "2026-11-21T00:00:00");
        assert_eq!(utc_to_the_second(4_102_444_800), "2100-01-01T00:00:00");
    }

    #[test]
    fn the_timestamp_has_microseconds_and_a_zone() {
        let mut now = Vec::new();
        write_timestamp(&mut now);
        let now = String::from_utf8(now).unwrap();
        assert_eq!(now.len(), "2026-11-21T23:59:10.123456Z".len(), "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[19] == b'.', "{now}");
    }
}
