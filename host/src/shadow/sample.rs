//! What a shadow needs to decide as the live plugin did, taken on the request path when a
//! request is sampled: the request's metadata, the backend set and the statistics the live
//! plugin saw, the backend signals in force, and what the live side chose. Built once per
//! sampled request and per shadow; nothing in it refers back to the request.

use std::sync::Arc;

use crate::plugin::{RequestMeta, Route};
use crate::signals::Signals;
use crate::upstream::BackendSet;

/// Where the live side sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Choice {
    /// To the backend at this index of the set.
    Backend(usize),
    /// Answered by lbx with this status (the plugin's `reject`).
    Reject(u16),
}

impl Choice {
    /// The choice a route stands for; `None` when nothing could be chosen (no usable backend),
    /// which is not a decision worth comparing.
    pub fn of(route: &Route) -> Option<Self> {
        match route {
            Route::Forward { index } => Some(Choice::Backend(*index)),
            Route::Reject(status) => Some(Choice::Reject(status.as_u16())),
            Route::NoUsableBackend => None,
        }
    }

    /// How the admin API and metrics name it: the backend's id, or `reject 429`.
    pub fn describe(self, set: &BackendSet) -> String {
        match self {
            Choice::Backend(index) => set
                .backends
                .get(index)
                .map_or_else(|| format!("#{index}"), |b| b.spec.id.clone()),
            Choice::Reject(status) => format!("reject {status}"),
        }
    }
}

/// One sampled request, as the live plugin saw it.
#[derive(Debug)]
pub struct Sample {
    /// The request's metadata (head, authority, client, body prefix).
    pub meta: RequestMeta,
    /// The backend set it was decided on.
    pub set: Arc<BackendSet>,
    /// The backend statistics at that moment, flattened as plugins receive them.
    pub stats: Arc<[u32]>,
    /// The backend signals in force then, when lbx scrapes any.
    pub signals: Option<Arc<Signals>>,
    /// Where the live side sent it.
    pub live: Choice,
}
