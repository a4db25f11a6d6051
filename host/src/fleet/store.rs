//! lbx's own view of the fleet store: a consistent read of a prefix at one revision, guarded
//! transactions, watches delivered one store response at a time, and leases. Plain types only,
//! so the layers above (and their tests) never depend on the etcd client; [`super::etcd`] is the
//! implementation.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// A store revision: etcd's cluster-wide counter, raised by every committed transaction.
pub type Revision = i64;

/// One key as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of the transaction that last wrote this key (what [`Guard::ModRevision`]
    /// compares against).
    pub mod_revision: Revision,
}

/// Every key under a prefix, as of one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The store's revision the read was made at; a watch from `revision + 1` misses nothing.
    pub revision: Revision,
    /// Sorted by key.
    pub kvs: Vec<Entry>,
}

/// What must hold for a transaction to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// The key was last written at exactly this revision (so nobody changed it since it was read).
    ModRevision { key: String, revision: Revision },
    /// The key does not exist.
    Absent { key: String },
}

/// One change a transaction makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put {
        key: String,
        value: Vec<u8>,
        /// Bind the key to a lease: it is deleted when the lease expires or is revoked.
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
    },
    /// Delete every key under a prefix.
    DeletePrefix {
        prefix: String,
    },
}

/// Writes that commit together if every guard holds, or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub guards: Vec<Guard>,
    pub writes: Vec<Write>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }

    /// Commit only if `key` was last written at `revision`.
    pub fn if_unchanged(mut self, key: impl Into<String>, revision: Revision) -> Self {
        self.guards.push(Guard::ModRevision {
            key: key.into(),
            revision,
        });
        self
    }

    /// Commit only if `key` does not exist.
    pub fn if_absent(mut self, key: impl Into<String>) -> Self {
        self.guards.push(Guard::Absent { key: key.into() });
        self
    }

    pub fn put(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.writes.push(Write::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        });
        self
    }

    pub fn put_with_lease(
        mut self,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        lease: LeaseId,
    ) -> Self {
        self.writes.push(Write::Put {
            key: key.into(),
            value: value.into(),
            lease: Some(lease),
        });
        self
    }

    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.writes.push(Write::Delete { key: key.into() });
        self
    }

    pub fn delete_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.writes.push(Write::DeletePrefix {
            prefix: prefix.into(),
        });
        self
    }
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Every write was applied, as the store's revision `revision`.
    Committed { revision: Revision },
    /// A guard did not hold; nothing was written. The caller re-reads and decides again.
    Conflict,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put(Entry),
    Delete { key: String, revision: Revision },
}

impl Change {
    pub fn key(&self) -> &str {
        match self {
            Change::Put(entry) => &entry.key,
            Change::Delete { key, .. } => key,
        }
    }

    pub fn revision(&self) -> Revision {
        match self {
            Change::Put(entry) => entry.mod_revision,
            Change::Delete { revision, .. } => *revision,
        }
    }
}

/// The changes of one store watch response, to be applied whole: etcd never splits one
/// transaction's changes across responses, so applying batch by batch never shows half of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchBatch {
    /// The newest revision among `changes`: once applied, the caller is at this revision.
    pub revision: Revision,
    /// In revision order.
    pub changes: Vec<Change>,
}

/// What a watch delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Batch(WatchBatch),
    /// The revision asked for is gone (compacted up to `compact_revision`): list again. Ends the
    /// watch.
    Compacted {
        compact_revision: Revision,
    },
    /// The watch stopped (its store member died, hung, lost its leader, or refused): list again
    /// and watch from the snapshot. Ends the watch.
    Lost(StoreError),
}

/// A running watch; dropping it cancels it.
#[derive(Debug)]
pub struct Watch {
    events: mpsc::Receiver<WatchEvent>,
}

impl Watch {
    /// A watch fed by `events` (the implementation's task sends into it and stops when the
    /// receiver is dropped).
    pub fn from_channel(events: mpsc::Receiver<WatchEvent>) -> Self {
        Self { events }
    }

    /// The next event; `None` after the [`WatchEvent::Compacted`] or [`WatchEvent::Lost`] that
    /// ended it.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        self.events.recv().await
    }
}

/// A lease's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(pub i64);

/// A granted lease, kept alive in the background while this value lives. Dropping it stops the
/// keep-alive (the keys bound to it disappear once its TTL passes); [`Store::revoke`] removes
/// them at once.
#[derive(Debug)]
pub struct Lease {
    id: LeaseId,
    ttl: Duration,
    alive: watch::Receiver<bool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// A lease kept alive by `keeper`, which sets `alive` to false once it knows the lease expired.
    pub fn new(
        id: LeaseId,
        ttl: Duration,
        alive: watch::Receiver<bool>,
        keeper: tokio::task::JoinHandle<()>,
    ) -> Self {
        Self {
            id,
            ttl,
            alive,
            keeper,
        }
    }

    pub fn id(&self) -> LeaseId {
        self.id
    }

    /// The TTL the store granted.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// False once the keep-alive learned that the store let the lease expire (its keys are gone).
    pub fn is_alive(&self) -> bool {
        *self.alive.borrow()
    }

    /// Resolves when the lease is known to have expired.
    pub async fn expired(&mut self) {
        let _ = self.alive.wait_for(|alive| !alive).await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Why a store operation failed. Messages name the store's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No member answered in time, or the connection broke (the caller answers 503 and retries
    /// later). For a commit, the transaction may or may not have been applied: re-read.
    #[error("etcd at {endpoints} is unreachable: {detail}")]
    Unreachable { endpoints: String, detail: String },
    /// The store answered and refused (bad request, permission, lease not found...).
    #[error("etcd at {endpoints} rejected the request: {detail}")]
    Rejected { endpoints: String, detail: String },
    /// The store answered something lbx cannot use (a key that is not UTF-8, a missing header).
    #[error("etcd at {endpoints} gave an answer lbx cannot use: {detail}")]
    BadAnswer { endpoints: String, detail: String },
    /// The settings cannot work (a malformed endpoint, an unreadable TLS file).
    #[error("etcd settings: {0}")]
    Settings(String),
}

impl StoreError {
    /// True when the caller should answer 503 and try again later.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Unreachable { .. })
    }
}

/// The store as lbx uses it. Implemented by [`super::etcd::EtcdStore`].
pub trait Store: Send + Sync {
    /// Every key under `prefix` at one revision (linearizable: nothing older than the newest
    /// commit the cluster acknowledged).
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;

    /// Apply `txn` if all its guards hold.
    fn commit(&self, txn: Txn) -> impl Future<Output = Result<CommitOutcome, StoreError>> + Send;

    /// Changes under `prefix` from revision `from` on (inclusive; 0 means from now), batch by
    /// batch. After a [`Store::list`] at revision R, watch from R + 1.
    fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> impl Future<Output = Result<Watch, StoreError>> + Send;

    /// A lease of (at least) `ttl`, kept alive in the background while the returned value lives.
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<Lease, StoreError>> + Send;

    /// Write `key` bound to `lease`; returns the revision of the write.
    fn put_with_lease(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: &Lease,
    ) -> impl Future<Output = Result<Revision, StoreError>> + Send;

    /// End `lease` now: its keys are deleted.
    fn revoke(&self, lease: Lease) -> impl Future<Output = Result<(), StoreError>> + Send;
}
