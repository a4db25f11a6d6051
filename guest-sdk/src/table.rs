//! What a router knows about the backends between two `backends-changed` calls: ids,
//! addresses and labels, and lookups by id and by label.

use crate::BackendInfo;

/// The backend set as of the last [`Router::backends_changed`](crate::Router::backends_changed).
/// A backend's position is its index in `choose`.
///
/// ```
/// use lbx_guest::BackendTable;
/// use lbx_guest::testkit::labeled;
///
/// let mut table = BackendTable::default();
/// table.update(&[
///     labeled("web-1", &[("pool", "web")]),
///     labeled("api-1", &[("pool", "api")]),
///     labeled("api-2", &[("pool", "api"), ("version", "canary")]),
/// ]);
/// assert_eq!(table.index_of("api-1"), Some(1));
/// assert_eq!(table.label(2, "version"), Some("canary"));
/// let selector = [("pool".to_string(), "api".to_string())];
/// assert_eq!(table.matching(&selector).collect::<Vec<_>>(), [1, 2]);
/// ```
#[derive(Debug, Default, Clone)]
pub struct BackendTable {
    backends: Vec<BackendInfo>,
}

impl BackendTable {
    /// Replace the table with the host's new list.
    pub fn update(&mut self, backends: &[BackendInfo]) {
        self.backends = backends.to_vec();
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether the table is empty (before the first `backends-changed`).
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// The backend at `index`.
    pub fn get(&self, index: usize) -> Option<&BackendInfo> {
        self.backends.get(index)
    }

    /// The index of the backend with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.backends.iter().position(|b| b.id == id)
    }

    /// The value of label `key` on backend `index`.
    pub fn label(&self, index: usize, key: &str) -> Option<&str> {
        self.backends
            .get(index)?
            .labels
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v.as_str()))
    }

    /// Indexes of the backends carrying every `key = value` pair of `selector` (all backends
    /// for an empty selector).
    pub fn matching<'a>(
        &'a self,
        selector: &'a [(String, String)],
    ) -> impl Iterator<Item = usize> + 'a {
        (0..self.backends.len()).filter(move |&index| {
            selector
                .iter()
                .all(|(key, value)| self.label(index, key) == Some(value.as_str()))
        })
    }
}
