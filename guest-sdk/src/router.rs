//! The [`Router`] trait a plugin implements, and helpers for its configuration.

use crate::{BackendInfo, Backends, Decision, Outcome, Request, RetryContext};

/// A routing plugin: state created by [`init`](Router::init), asked to
/// [`choose`](Router::choose) a backend for each request, and optionally told how each attempt
/// went ([`on_outcome`](Router::on_outcome)).
///
/// Export the implementing type with [`export_router!`](crate::export_router). One instance
/// lives per plugin instance in the host; calls never overlap, so `&mut self` needs no locking.
///
/// # Example
///
/// ```
/// use lbx_guest::{Backends, Decision, Request, RetryContext, Router};
///
/// /// Sends everything to the first healthy backend.
/// #[derive(Default)]
/// struct FirstHealthy;
///
/// impl Router for FirstHealthy {
///     fn init(config: &str) -> Result<Self, String> {
///         lbx_guest::init_default(config)
///     }
///
///     fn choose(&mut self, _: &dyn Request, backends: &Backends, _: &RetryContext) -> Decision {
///         lbx_guest::healthy_indices(backends)
///             .next()
///             .map_or_else(lbx_guest::no_opinion, lbx_guest::pick)
///     }
/// }
///
/// lbx_guest::export_router!(FirstHealthy);
/// ```
pub trait Router: Sized + 'static {
    /// Whether the plugin wants [`on_outcome`](Router::on_outcome) calls: `init` then asks the
    /// host for the `outcomes` feature. Off by default, and then feedback costs nothing. For a
    /// choice that depends on the configuration, override [`wants_outcomes`](Router::wants_outcomes).
    ///
    /// ```
    /// # use lbx_guest::{Backends, Decision, Outcome, Request, RetryContext, Router};
    /// struct Learner { answers: u64 }
    ///
    /// impl Router for Learner {
    ///     const OUTCOMES: bool = true;
    ///
    ///     fn init(_: &str) -> Result<Self, String> { Ok(Learner { answers: 0 }) }
    ///
    ///     fn choose(&mut self, _: &dyn Request, _: &Backends, _: &RetryContext) -> Decision {
    ///         lbx_guest::no_opinion()
    ///     }
    ///
    ///     fn on_outcome(&mut self, outcome: &Outcome) {
    ///         self.answers += u64::from(outcome.status.is_some());
    ///     }
    /// }
    ///
    /// let mut learner = Learner::init("{}").unwrap();
    /// assert!(learner.wants_outcomes());
    /// assert!(lbx_guest::testkit::deliver(&mut learner, &lbx_guest::testkit::answered(0, 200, 900)));
    /// assert_eq!(learner.answers, 1);
    /// ```
    const OUTCOMES: bool = false;

    /// Creates the plugin's state from its configuration, given as JSON text (`{}` when the
    /// operator gave none).
    ///
    /// Returning `Err` refuses the plugin: lbx reports the message and does not use it. A plugin
    /// without configuration can delegate to [`init_default`].
    fn init(config: &str) -> Result<Self, String>;

    /// Whether this instance wants [`on_outcome`](Router::on_outcome) calls, asked once right
    /// after [`init`](Router::init). Defaults to [`OUTCOMES`](Router::OUTCOMES); override it
    /// when the configuration decides.
    ///
    /// ```
    /// # use lbx_guest::{Backends, Decision, Request, RetryContext, Router};
    /// struct Audited { audit: bool }
    ///
    /// impl Router for Audited {
    ///     fn init(config: &str) -> Result<Self, String> {
    ///         Ok(Audited { audit: config.contains("\"audit\":true") })
    ///     }
    ///
    ///     fn wants_outcomes(&self) -> bool {
    ///         self.audit
    ///     }
    ///
    ///     fn choose(&mut self, _: &dyn Request, _: &Backends, _: &RetryContext) -> Decision {
    ///         lbx_guest::no_opinion()
    ///     }
    /// }
    ///
    /// assert!(Audited::init(r#"{"audit":true}"#).unwrap().wants_outcomes());
    /// assert!(!Audited::init("{}").unwrap().wants_outcomes());
    /// ```
    fn wants_outcomes(&self) -> bool {
        Self::OUTCOMES
    }

    /// Called before the first [`choose`](Router::choose) and whenever the backend set changes.
    /// A backend's position in `backends` is the index used by `choose`. The names of the
    /// backend signals arrive with the same call; the SDK keeps them for
    /// [`Backends::signal_names`] and [`Backends::signal_slot`].
    ///
    /// The default does nothing: most routers need only the per-request numbers.
    fn backends_changed(&mut self, backends: &[BackendInfo]) {
        let _ = backends;
    }

    /// Chooses a backend for one request.
    ///
    /// `backends` has one entry per backend, in the order of the last
    /// [`backends_changed`](Router::backends_changed) (it dereferences to `[BackendStats]`, and
    /// carries the backend signals); `retry` says which of them already failed this request.
    /// Return [`pick`](crate::pick) (with options such as
    /// [`fallbacks`](Decision::fallbacks) chained on it), [`reject`](crate::reject) or
    /// [`no_opinion`](crate::no_opinion) (the host's built-in fallback then decides).
    fn choose(&mut self, req: &dyn Request, backends: &Backends, retry: &RetryContext) -> Decision;

    /// How one attempt went: called after the attempt is over, only if the plugin
    /// [wants outcomes](Router::wants_outcomes), and on an instance that may not be the one
    /// that decided (match the pick by [`Outcome::tag`]; the backend set may have changed since).
    /// A panic here counts against the plugin like one in `choose`.
    ///
    /// The default does nothing.
    fn on_outcome(&mut self, outcome: &Outcome) {
        let _ = outcome;
    }
}

/// Whether a configuration is empty: blank, or a JSON object without members (`{}`, `{ }`).
///
/// ```
/// assert!(lbx_guest::config_is_empty("{}"));
/// assert!(lbx_guest::config_is_empty(" { \n } "));
/// assert!(lbx_guest::config_is_empty(""));
/// assert!(!lbx_guest::config_is_empty(r#"{"seed": 1}"#));
/// ```
pub fn config_is_empty(config: &str) -> bool {
    let mut rest = config.chars().filter(|c| !c.is_whitespace());
    match rest.next() {
        None => true,
        Some('{') => rest.next() == Some('}') && rest.next().is_none(),
        Some(_) => false,
    }
}

/// [`Router::init`] for a plugin that takes no configuration: returns `T::default()` when the
/// configuration [is empty](config_is_empty), and refuses any other configuration so that a
/// typo in the operator's file is reported instead of silently ignored.
///
/// ```
/// #[derive(Default)]
/// struct Counter(u64);
///
/// assert!(lbx_guest::init_default::<Counter>("{}").is_ok());
/// assert!(lbx_guest::init_default::<Counter>(r#"{"step": 2}"#).is_err());
/// ```
pub fn init_default<T: Default>(config: &str) -> Result<T, String> {
    if config_is_empty(config) {
        Ok(T::default())
    } else {
        Err(format!(
            "this plugin takes no configuration, got `{}`",
            config.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_with_whitespace_is_empty_config() {
        assert!(config_is_empty("\t{\r\n}\n"));
    }

    #[test]
    fn anything_after_the_object_is_not_empty_config() {
        assert!(!config_is_empty("{}}"));
        assert!(!config_is_empty("{}x"));
        assert!(!config_is_empty("null"));
        assert!(!config_is_empty("{"));
    }

    #[test]
    fn init_default_error_quotes_the_configuration() {
        let err = init_default::<()>(r#" {"a": 1} "#).unwrap_err();
        assert_eq!(err, r#"this plugin takes no configuration, got `{"a": 1}`"#);
    }
}
