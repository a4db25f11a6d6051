//! Fleet mode: many lbx nodes kept in step through one etcd v3 cluster (see DESIGN.md, "Scaling
//! past one machine"). What must be the same on every node (backends and their runtime changes,
//! the plugin and its config, fleet-wide policies) lives in the store; listeners, certificates
//! and the store's own address stay local.
//!
//! The shape, from APISIX's and Envoy's experience:
//! - a write is one guarded transaction ([`store::Txn`]) that commits whole or not at all; a node
//!   never changes only its local copy, and answers 503 when the store is unreachable;
//! - a node reads a prefix at one revision R ([`store::Store::list`]), validates and swaps the
//!   whole, then watches from R+1 ([`store::Store::watch`]); every watch batch is one etcd
//!   response, so a transaction's changes are applied together; a compacted or lost watch makes
//!   it list again and apply only the difference;
//! - each node's own status lives in keys bound to a lease ([`store::Lease`]) that it keeps
//!   alive, so a node that dies disappears from the fleet view after the lease's TTL.
//!
//! This module owns only the foundation: [`store`] is lbx's own view of the store (a trait and
//! plain types; nothing else in the host names etcd-client types), [`etcd`] implements it with
//! the `etcd-client` crate, and [`members`] keeps requests away from members that stopped
//! answering. Keeping lbx's state in sync on top of it is a separate layer.

pub mod etcd;
mod members;
pub mod store;

pub use etcd::{EtcdSettings, EtcdStore, EtcdTls};
pub use store::{
    Change, CommitOutcome, Entry, Guard, Lease, LeaseId, Revision, Snapshot, Store, StoreError,
    Txn, Watch, WatchBatch, WatchEvent, Write,
};
