//! Keeping a node's copy of the fleet's keys in step with the store: list the prefix at a
//! revision R, hand the whole over, then watch from R + 1 and apply each watch batch whole —
//! never half of a transaction. A compacted watch, a lost one (a member died or went silent)
//! or a store whose revision went backwards (restored from a backup) leads to a new listing;
//! the listing is handed over only when the shared part differs from what was handed before,
//! so a re-list after a blip costs no rebuild (the re-list storms of apisix#12167).
//!
//! Status keys are kept apart: nodes rewrite theirs every few seconds, and a node's routing
//! must not be rebuilt because another node said it is alive. They are published on their
//! own channel for the fleet view and for waiting until every node applied a revision.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::layout::{Entry, Layout};
use super::store::{Change, Revision, Store, WatchBatch, WatchEvent};

/// The shared part of the prefix as of one revision: what a node applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The store revision it was read at (a listing's) or brought to (a batch's): the state is
    /// the shared state as of this revision.
    pub revision: Revision,
    /// The revision of the last change to the shared state in it (a listing: the newest of
    /// its keys' last changes; a batch: the batch's), which every node sees alike whenever it
    /// listed — what a node's applied revision is compared with to tell whether it is behind.
    pub changed_at: Revision,
    /// Every key of the shared state and its value, sorted by key (status keys excluded).
    pub kvs: Vec<(String, Vec<u8>)>,
}

/// Every node's status value by node id, as of the follower's revision.
pub type Statuses = Arc<BTreeMap<String, Vec<u8>>>;

/// Whether the follower reaches the store, for the node's status and `/admin/fleet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Not yet listed.
    Starting,
    /// Listed and watching.
    Watching,
    /// The last listing or watch failed: why, as the store said.
    Lost(String),
}

/// Longest wait between two attempts to reach the store.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// First wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Follows the keys of one fleet.
pub struct Follower<S> {
    store: Arc<S>,
    layout: Layout,
    /// The shared keys as of `revision`.
    shared: BTreeMap<String, Vec<u8>>,
    /// The status keys as of `revision`, by node id.
    statuses: BTreeMap<String, Vec<u8>>,
    revision: Revision,
    /// The revision of the last change to the shared keys.
    changed_at: Revision,
    /// The last view handed over, to hand over only what differs after a re-list.
    handed: Option<BTreeMap<String, Vec<u8>>>,
    statuses_out: watch::Sender<Statuses>,
    connection: watch::Sender<Connection>,
}

impl<S: Store> Follower<S> {
    /// A follower of the keys under `layout`'s prefix in `store`.
    pub fn new(store: Arc<S>, layout: Layout) -> Self {
        Self {
            store,
            layout,
            shared: BTreeMap::new(),
            statuses: BTreeMap::new(),
            revision: 0,
            changed_at: 0,
            handed: None,
            statuses_out: watch::Sender::new(Arc::default()),
            connection: watch::Sender::new(Connection::Starting),
        }
    }

    /// Every node's status, kept current while [`Follower::run`] runs.
    pub fn statuses(&self) -> watch::Receiver<Statuses> {
        self.statuses_out.subscribe()
    }

    /// Whether the store is reached, kept current while [`Follower::run`] runs.
    pub fn connection(&self) -> watch::Receiver<Connection> {
        self.connection.subscribe()
    }

    /// Follow the store until `stop`: `apply` gets the shared state after the first listing
    /// and again each time it changed. It is awaited before the next batch is read, so views
    /// arrive in revision order and one at a time.
    pub async fn run<F, Fut>(mut self, mut apply: F, stop: CancellationToken)
    where
        F: FnMut(View) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut backoff = FIRST_BACKOFF;
        let root = self.layout.root();
        while !stop.is_cancelled() {
            match self.list(&root).await {
                Ok(Some(view)) => apply(view).await,
                Ok(None) => {}
                Err(error) => {
                    self.lost(&error, backoff);
                    if pause(&stop, &mut backoff).await {
                        return;
                    }
                    continue;
                }
            }
            let mut watch = match self.store.watch(&root, self.revision + 1).await {
                Ok(watch) => watch,
                Err(error) => {
                    self.lost(&error, backoff);
                    if pause(&stop, &mut backoff).await {
                        return;
                    }
                    continue;
                }
            };
            self.connection.send_replace(Connection::Watching);
            backoff = FIRST_BACKOFF;
            loop {
                let event = tokio::select! {
                    () = stop.cancelled() => return,
                    event = watch.next() => event,
                };
                match event {
                    Some(WatchEvent::Batch(batch)) => {
                        if let Some(view) = self.apply_batch(&batch) {
                            apply(view).await;
                        }
                    }
                    Some(WatchEvent::Compacted { compact_revision }) => {
                        tracing::info!(
                            revision = self.revision,
                            compact_revision,
                            "fleet store compacted past this node's revision: listing again"
                        );
                        break;
                    }
                    Some(WatchEvent::Lost(error)) => {
                        self.lost(&error, backoff);
                        if pause(&stop, &mut backoff).await {
                            return;
                        }
                        break;
                    }
                    // Ended without saying why: list again, after the same pause.
                    None => {
                        if pause(&stop, &mut backoff).await {
                            return;
                        }
                        break;
                    }
                }
            }
        }
    }

    /// List the prefix; the view to hand over when its shared part differs from the last one
    /// handed over (always after the first listing).
    async fn list(&mut self, root: &str) -> Result<Option<View>, super::store::StoreError> {
        let snapshot = self.store.list(root).await?;
        if snapshot.revision < self.revision {
            tracing::warn!(
                store_revision = snapshot.revision,
                node_revision = self.revision,
                "the fleet store's revision went backwards (restored from a backup?): taking \
                 its state as it is now"
            );
        }
        self.shared.clear();
        self.statuses.clear();
        let mut changed_at = 0;
        for entry in snapshot.kvs {
            if !matches!(self.layout.entry(&entry.key), Some(Entry::Status(_)) | None) {
                changed_at = changed_at.max(entry.mod_revision);
            }
            self.put(entry.key, entry.value);
        }
        // A deletion leaves no key behind: keep the newer of the two.
        self.changed_at = changed_at.max(self.changed_at.min(snapshot.revision));
        self.revision = snapshot.revision;
        self.publish_statuses();
        Ok(self.view_if_changed())
    }

    /// Apply one watch batch whole; the view to hand over if it changed the shared part.
    fn apply_batch(&mut self, batch: &WatchBatch) -> Option<View> {
        for change in &batch.changes {
            if !matches!(
                self.layout.entry(change.key()),
                Some(Entry::Status(_)) | None
            ) {
                self.changed_at = batch.revision;
            }
            match change {
                Change::Put(entry) => self.put(entry.key.clone(), entry.value.clone()),
                Change::Delete { key, .. } => self.delete(key),
            }
        }
        self.revision = batch.revision;
        self.publish_statuses();
        self.view_if_changed()
    }

    fn put(&mut self, key: String, value: Vec<u8>) {
        match self.layout.entry(&key) {
            Some(Entry::Status(node)) => {
                self.statuses.insert(node.to_string(), value);
            }
            Some(_) => {
                self.shared.insert(key, value);
            }
            None => {}
        }
    }

    fn delete(&mut self, key: &str) {
        match self.layout.entry(key) {
            Some(Entry::Status(node)) => {
                self.statuses.remove(node);
            }
            _ => {
                self.shared.remove(key);
            }
        }
    }

    fn view_if_changed(&mut self) -> Option<View> {
        if self.handed.as_ref() == Some(&self.shared) {
            return None;
        }
        self.handed = Some(self.shared.clone());
        Some(View {
            revision: self.revision,
            changed_at: self.changed_at,
            kvs: self
                .shared
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    fn publish_statuses(&self) {
        self.statuses_out.send_if_modified(|current| {
            let changed = **current != self.statuses;
            if changed {
                *current = Arc::new(self.statuses.clone());
            }
            changed
        });
    }

    fn lost(&self, error: &super::store::StoreError, retry_in: Duration) {
        tracing::warn!(%error, retry_in = ?retry_in, revision = self.revision,
            "fleet store not reached: serving the last applied state");
        self.connection
            .send_replace(Connection::Lost(error.to_string()));
    }
}

/// Wait out the backoff (doubling it up to [`MAX_BACKOFF`]); true when stopped meanwhile.
async fn pause(stop: &CancellationToken, backoff: &mut Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(wait) => false,
    }
}
