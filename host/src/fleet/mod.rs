//! Fleet mode: many lbx nodes kept in step through a shared store (etcd). What every node must
//! agree on — the backends with their runtime changes, the plugin and its config, the
//! fleet-wide settings — lives under one prefix of the store; listeners, certificates and the
//! store's own settings stay in each node's file.
//!
//! - [`layout`]: which key holds what.
//! - [`shared`]: the shared state read from one listing, checked, compared and laid over a
//!   node's own config.
//! - [`modules`]: the node's checked copies of plugin modules.
//! - [`state_file`]: the last applied state on disk, to start while the store is down.
//! - [`status`]: what each node says of itself (applied revision, plugin, refusals).

pub mod layout;
pub mod modules;
pub mod shared;
pub mod state_file;
pub mod status;
