//! Passive health: the one place where a request's outcome is counted against a backend. Only
//! faults that are the backend's reach here (see `error::Fault`); a client can never eject one.

use crate::config::OutlierConfig;
use crate::upstream::{BackendSet, Ejection};

/// Count a failure of the backend at `index` of `set`; eject it if that completes a streak and
/// the max-ejection share allows.
pub fn note_failure(set: &BackendSet, index: usize, outlier: &OutlierConfig) {
    let Some(backend) = set.backends.get(index) else {
        return;
    };
    let may_eject = set.may_eject_another(outlier.max_ejection_percent);
    match backend.stats.record_failure(outlier, may_eject) {
        Ejection::Ejected { failures, duration } => tracing::warn!(
            backend = %backend.spec.id,
            failures,
            ejected_for_secs = duration.as_secs_f64(),
            "backend ejected after consecutive failures"
        ),
        Ejection::Spared { failures } => tracing::warn!(
            backend = %backend.spec.id,
            failures,
            max_ejection_percent = outlier.max_ejection_percent,
            "backend keeps failing but is not ejected: too many backends are already out"
        ),
        Ejection::NotEjected => {}
    }
}
