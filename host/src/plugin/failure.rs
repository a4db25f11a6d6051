//! How a plugin can fail, and how each failure is told: loading errors for the operator, and
//! failed calls classified for metrics (a trap, the deadline, the memory cap) with a one-line
//! reason for the log.

use std::path::PathBuf;

use super::options::{Limits, SETUP_DEADLINE};
use super::reason::one_line;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read plugin {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// The bytes are not a Wasm component wasmtime can compile.
    #[error("plugin {name} is not a valid WebAssembly component: {reason}")]
    Compile {
        /// File name or label of the plugin.
        name: String,
        /// The compiler's explanation.
        reason: String,
    },
    /// The component does not fit the `lbx:router/plugin` world.
    #[error("plugin {name} does not implement the lbx:router@0.1.0 `plugin` world: {reason}")]
    WrongWorld {
        /// File name or label of the plugin.
        name: String,
        /// What is missing or mismatched.
        reason: String,
    },
    /// Instantiation or `init` trapped.
    #[error("plugin {name} failed to start: {reason}")]
    Trap {
        /// File name or label of the plugin.
        name: String,
        /// The trap.
        reason: String,
    },
    /// The plugin's `init` rejected its configuration.
    #[error("plugin {name} rejected its configuration: {message}")]
    ConfigRejected {
        /// File name or label of the plugin.
        name: String,
        /// The plugin's own message.
        message: String,
    },
    /// The trial decision on a synthetic request failed.
    #[error("plugin {name} failed its trial decision: {reason}")]
    TrialDecision {
        /// File name or label of the plugin.
        name: String,
        /// Why.
        reason: String,
    },
}

/// What kind of failure a failed call was, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The plugin trapped (panic, unreachable, out-of-bounds access…).
    Trap,
    /// The call ran past its deadline.
    Timeout,
    /// The plugin tried to grow its memory past the cap.
    Memory,
    /// No instance could be created or told about the backends.
    Setup,
    /// The plugin answered something unusable (index out of range, a down backend…).
    InvalidAnswer,
}

impl FailureKind {
    /// Label value for metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::Memory => "memory",
            FailureKind::Setup => "setup",
            FailureKind::InvalidAnswer => "invalid_answer",
        }
    }

    /// Every kind, for pre-registering metric series.
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Trap,
        FailureKind::Timeout,
        FailureKind::Memory,
        FailureKind::Setup,
        FailureKind::InvalidAnswer,
    ];
}

/// A call into the plugin that failed: the request gets the fallback instead.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct CallError {
    /// What went wrong, for metrics.
    pub kind: FailureKind,
    /// One line for the log.
    pub reason: String,
}

/// Turn a failed `choose` into a kind for metrics and a one-line reason an operator can act on.
pub(super) fn describe_failure(error: &wasmtime::Error, limits: Limits) -> CallError {
    let kind = classify(error);
    let reason = match kind {
        FailureKind::Timeout => format!("decision exceeded its {:?} deadline", limits.deadline),
        FailureKind::Memory => format!(
            "plugin hit its memory limit of {} MiB",
            limits.memory_bytes / (1024 * 1024)
        ),
        FailureKind::Trap if error.is::<wasmtime::Trap>() => {
            format!("plugin trapped: {}", one_line(error))
        }
        _ => format!("plugin call failed: {}", one_line(error)),
    };
    CallError { kind, reason }
}

/// Why instantiation or `init` failed, in one line: a trap or the memory cap by name.
pub(super) fn start_failure(error: &wasmtime::Error, limits: Limits) -> String {
    match classify(error) {
        FailureKind::Memory => format!(
            "init hit the memory limit of {} MiB",
            limits.memory_bytes / (1024 * 1024)
        ),
        FailureKind::Timeout => format!("init ran past its {SETUP_DEADLINE:?} deadline"),
        _ => one_line(error),
    }
}

pub(super) fn classify(error: &wasmtime::Error) -> FailureKind {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => FailureKind::Timeout,
        _ => classify_message(&format!("{error:#}")),
    }
}

/// The memory limiter reports a refused growth as an error whose text is the only marker.
pub(super) fn classify_message(message: &str) -> FailureKind {
    if message.contains("growing memory") || message.contains("memory growth") {
        FailureKind::Memory
    } else if message.contains("interrupt") {
        FailureKind::Timeout
    } else {
        FailureKind::Trap
    }
}
