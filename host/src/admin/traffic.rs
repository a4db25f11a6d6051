//! The traffic figures the admin API adds to its JSON (the dashboard reads them): per backend
//! in `GET /admin/backends` (`traffic`), and the router's decisions in `GET /admin/plugin`
//! (`decided_by`, `decision_seconds_sum`, `decision_count`). The same counters `/metrics`
//! exposes, read at request time.

use serde_json::{Value, json};

use crate::plugin::DecisionMetrics;
use crate::upstream::{LiveStats, STATUS_CLASSES};

/// A backend's `traffic` object.
pub fn backend_traffic(stats: &LiveStats) -> Value {
    let figures = stats.traffic().snapshot();
    let responses: serde_json::Map<String, Value> = STATUS_CLASSES
        .iter()
        .zip(figures.responses)
        .map(|(class, count)| (class.to_string(), json!(count)))
        .collect();
    json!({
        "responses": responses,
        "backend_errors": figures.backend_errors,
        "retries": figures.retries,
        "ejections": figures.ejections,
        "health_transitions": figures.health_transitions,
        "bytes_in": figures.request_body_bytes,
        "bytes_out": figures.response_body_bytes,
        "latency_bounds_seconds": figures.latency_bounds_seconds,
        "upstream_latency_counts": figures.upstream_latency_counts,
        "total_latency_counts": figures.total_latency_counts,
    })
}

/// Add the decision figures to the plugin status object `status`.
pub fn add_decisions(status: &mut Value, metrics: &DecisionMetrics) {
    let Some(object) = status.as_object_mut() else {
        return;
    };
    let decided_by: serde_json::Map<String, Value> = metrics
        .decided_counts()
        .iter()
        .map(|(by, count)| (by.as_str().to_string(), json!(count)))
        .collect();
    object.insert("decided_by".into(), Value::Object(decided_by));
    object.insert(
        "decision_seconds_sum".into(),
        json!(metrics.plugin_latency.sum_seconds()),
    );
    object.insert(
        "decision_count".into(),
        json!(metrics.plugin_latency.count()),
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plugin::DecidedBy;

    #[test]
    fn the_traffic_object_has_the_contracts_fields() {
        let stats = LiveStats::default();
        stats.traffic().responded(http::StatusCode::OK);
        stats
            .traffic()
            .observe_upstream_latency(Duration::from_millis(1));
        let traffic = backend_traffic(&stats);
        assert_eq!(traffic["responses"]["2xx"], 1);
        assert_eq!(traffic["responses"]["5xx"], 0);
        let bounds = traffic["latency_bounds_seconds"].as_array().unwrap().len();
        let counts = traffic["upstream_latency_counts"].as_array().unwrap();
        assert_eq!(counts.len(), bounds + 1);
        assert_eq!(counts[1], 1, "1 ms is in the second bucket");
        for key in [
            "backend_errors",
            "retries",
            "ejections",
            "health_transitions",
            "bytes_in",
            "bytes_out",
            "total_latency_counts",
        ] {
            assert!(traffic.get(key).is_some(), "{key} missing: {traffic}");
        }
    }

    #[test]
    fn decisions_are_added_by_who_made_them() {
        let metrics = DecisionMetrics::default();
        metrics.decided(DecidedBy::FallbackNoOpinion);
        metrics.plugin_latency.observe(Duration::from_micros(5));
        let mut status = json!({ "state": "none" });
        add_decisions(&mut status, &metrics);
        assert_eq!(status["decided_by"]["fallback_no_opinion"], 1);
        assert_eq!(status["decided_by"]["builtin"], 0);
        assert_eq!(status["decided_by"]["fallback_after_error"], 0);
        assert_eq!(status["decision_count"], 1);
        assert!(status["decision_seconds_sum"].as_f64().unwrap() > 0.0);
    }
}
