//! The last reloads and runtime backend changes, newest first, for `GET /admin/reloads` and the
//! dashboard: when, what, whether it was applied, and the detail logged with it. Both `reload`
//! and `runtime_backends` record here, so it belongs to neither.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

/// Entries kept; older ones are dropped.
pub const KEPT: usize = 50;

/// One reload or change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it finished.
    pub at: SystemTime,
    /// `config`, `plugin`, `certificates`, `backends` or `shadow`.
    pub what: &'static str,
    /// Put in force (`true`) or refused.
    pub applied: bool,
    /// What was applied, or why it was refused.
    pub detail: String,
}

/// A bounded, newest-first record of reloads.
#[derive(Debug, Default)]
pub struct ReloadHistory {
    entries: Mutex<VecDeque<Entry>>,
}

impl ReloadHistory {
    /// Record one outcome.
    pub fn record(&self, what: &'static str, applied: bool, detail: String) {
        let mut entries = self.entries.lock().expect("history lock");
        if entries.len() == KEPT {
            entries.pop_back();
        }
        entries.push_front(Entry {
            at: SystemTime::now(),
            what,
            applied,
            detail,
        });
    }

    /// The entries, newest first.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries
            .lock()
            .expect("history lock")
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_entries_first() {
        let history = ReloadHistory::default();
        for i in 0..KEPT + 5 {
            history.record("plugin", i % 2 == 0, format!("#{i}"));
        }
        let entries = history.entries();
        assert_eq!(entries.len(), KEPT);
        assert_eq!(entries[0].detail, format!("#{}", KEPT + 4));
        assert_eq!(entries[KEPT - 1].detail, "#5");
    }
}
