//! A backend's `signals` object in `GET /admin/backends` (present only with `[signals]`
//! configured): what the plugin is handed, as an operator reads it.
//!
//! `{"age_ms": 120.5, "values": {"<selector>": 3.0, "<other>": null}, "scrapes_ok": 41,
//! "scrapes_failed": 2, "last_error": null}` — `age_ms` is null before the first successful
//! scrape, a value null while missing (never scraped, or no matching series in the last good
//! scrape; also NaN and infinities, which JSON cannot write), `last_error` why the latest
//! scrape failed (null once one succeeds).

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::signals::{Signals, age_ms};
use crate::upstream::SignalReadings;

/// The `signals` object of a backend with these `readings`, or `None` when no signals are
/// configured.
pub fn backend_signals(signals: &Signals, readings: &SignalReadings) -> Option<Value> {
    if !signals.is_enabled() {
        return None;
    }
    let reading = signals.reading(readings);
    let values: Map<String, Value> = signals
        .names()
        .iter()
        .enumerate()
        .map(|(slot, name)| {
            let value = reading
                .as_ref()
                .map(|r| r.values[slot])
                .filter(|v| v.is_finite())
                .map_or(Value::Null, Value::from);
            (name.clone(), value)
        })
        .collect();
    Some(json!({
        "age_ms": reading.as_ref().map(|r| age_ms(Instant::now(), r.at)),
        "values": values,
        "scrapes_ok": readings.scrapes_ok(),
        "scrapes_failed": readings.scrapes_failed(),
        "last_error": readings.last_error(),
    }))
}
