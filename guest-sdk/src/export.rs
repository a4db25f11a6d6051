//! [`export_router!`](crate::export_router): turns a [`Router`] into the component's `router`
//! export. The macro stays small; the logic lives in the generic functions below so it is
//! compiled (and unit-tested) once, natively too.

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::bindings::exports::lbx::router::router::Features;
use crate::{BackendInfo, Backends, Decision, Outcome, Request, RetryContext, Router};

/// Where the expansion keeps the plugin's router: one per plugin instance (a component instance
/// is single-threaded, so a `thread_local` is the instance's global).
pub type Slot<T> = LocalKey<RefCell<Option<T>>>;

thread_local! {
    /// The instance's view of the backends: signal names from `backends-changed`, refilled by
    /// every `choose` so that unflattening allocates nothing after the first request.
    static BACKENDS: RefCell<Backends> = const { RefCell::new(Backends::new(Vec::new())) };
}

/// `init` export: builds the router and stores it, replacing any earlier one, and answers the
/// features it asks for. On error the slot is left as it was and the message goes back to the
/// host.
pub fn init<T: Router>(slot: &'static Slot<T>, config: String) -> Result<Features, String> {
    route_panics_to_the_host_log();
    // The host sends `{}` for "no configuration"; be lenient with an empty string too.
    let config = if config.trim().is_empty() {
        "{}"
    } else {
        &config
    };
    let router = T::init(config)?;
    let features = if router.wants_outcomes() {
        Features::OUTCOMES
    } else {
        Features::empty()
    };
    slot.with(|cell| *cell.borrow_mut() = Some(router));
    Ok(features)
}

/// A panic message goes to lbx's log through the `log` import. The default hook would write it
/// to stderr, which lbx does not provide to plugins (a write there fails the decision before
/// the panic's own trap could say why).
fn route_panics_to_the_host_log() {
    #[cfg(target_arch = "wasm32")]
    std::panic::set_hook(Box::new(|info| {
        // One line: the default Display puts the message on a line of its own.
        let message = info.payload_as_str().unwrap_or("(no message)");
        let line = match info.location() {
            Some(at) => format!("plugin panicked at {at}: {message}"),
            None => format!("plugin panicked: {message}"),
        };
        crate::log(crate::LogLevel::Error, &line);
    }));
}

/// `backends-changed` export: the signal names are kept for [`Backends`], the backends
/// forwarded to the router; the router part is ignored before `init`.
pub fn backends_changed<T: Router>(
    slot: &'static Slot<T>,
    backends: Vec<BackendInfo>,
    signals: Vec<String>,
) {
    BACKENDS.with(|view| view.borrow_mut().set_signal_names(signals));
    slot.with(|cell| {
        if let Some(router) = cell.borrow_mut().as_mut() {
            router.backends_changed(&backends);
        }
    });
}

/// `choose` export: forwarded to the router with the lifted lists in the instance's
/// [`Backends`] (the stats unflattened into its reused allocation, the signals moved in);
/// `no-opinion` before `init`.
pub fn choose<T: Router>(
    slot: &'static Slot<T>,
    req: &dyn Request,
    stats: Vec<u32>,
    signals: Option<Vec<f64>>,
    retry: Option<RetryContext>,
) -> Decision {
    // A first attempt carries no retry context; plugins always get one (empty: attempt 0).
    let retry = retry.unwrap_or(RetryContext {
        attempt: 0,
        tried: Vec::new(),
    });
    BACKENDS.with(|view| {
        let mut backends = view.borrow_mut();
        backends.refill(&stats, signals.unwrap_or_default());
        slot.with(|cell| match cell.borrow_mut().as_mut() {
            Some(router) => router.choose(req, &backends, &retry),
            None => Decision::NoOpinion,
        })
    })
}

/// `on-outcome` export: forwarded to the router; ignored before `init`. The host calls it only
/// when `init` asked for outcomes.
pub fn on_outcome<T: Router>(slot: &'static Slot<T>, outcome: Outcome) {
    slot.with(|cell| {
        if let Some(router) = cell.borrow_mut().as_mut() {
            router.on_outcome(&outcome);
        }
    });
}

/// Exports a [`Router`](crate::Router) implementation as the plugin's `router` interface.
///
/// Invoke it once, at the top level of the plugin crate (crate type `cdylib`), with the type
/// that implements `Router`. When compiling for `wasm32` it expands to the wit-bindgen export
/// glue:
///
/// - `init` calls [`Router::init`](crate::Router::init), keeps the instance in a
///   `thread_local` `RefCell<Option<T>>` and asks for the `outcomes` feature if
///   [`Router::wants_outcomes`](crate::Router::wants_outcomes) says so;
/// - `backends-changed`, `choose` and `on-outcome` borrow that instance mutably; `choose`
///   before a successful `init` answers `no-opinion`;
/// - the borrowed `request` resource is passed as `&dyn Request`, and the lifted lists as a
///   [`Backends`](crate::Backends) view, without copying.
///
/// On every other target it expands to a compile-time check that the type implements
/// `Router`, so the plugin crate builds and unit-tests natively. The plugin needs no
/// `#[allow(unsafe_code)]`: the unsafe ABI glue is expanded from this crate's macros.
///
/// ```
/// use lbx_guest::{Backends, Decision, Request, RetryContext, Router};
///
/// struct AlwaysReject;
///
/// impl Router for AlwaysReject {
///     fn init(_config: &str) -> Result<Self, String> {
///         Ok(AlwaysReject)
///     }
///
///     fn choose(&mut self, _: &dyn Request, _: &Backends, _: &RetryContext) -> Decision {
///         lbx_guest::reject(503)
///     }
/// }
///
/// lbx_guest::export_router!(AlwaysReject);
/// ```
#[macro_export]
macro_rules! export_router {
    ($router:ty $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct LbxRouterExport;

            ::std::thread_local! {
                static LBX_ROUTER: ::core::cell::RefCell<::core::option::Option<$router>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            impl $crate::bindings::exports::lbx::router::router::Guest for LbxRouterExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<$crate::__private::Features, ::std::string::String>
                {
                    $crate::__private::init(&LBX_ROUTER, config)
                }

                fn backends_changed(
                    backends: ::std::vec::Vec<$crate::BackendInfo>,
                    signals: ::std::vec::Vec<::std::string::String>,
                ) {
                    $crate::__private::backends_changed(&LBX_ROUTER, backends, signals)
                }

                fn choose(
                    req: &$crate::__private::HostRequest,
                    stats: ::std::vec::Vec<u32>,
                    signals: ::core::option::Option<::std::vec::Vec<f64>>,
                    retry: ::core::option::Option<$crate::RetryContext>,
                ) -> $crate::Decision {
                    $crate::__private::choose(&LBX_ROUTER, req, stats, signals, retry)
                }

                fn on_outcome(outcome: $crate::Outcome) {
                    $crate::__private::on_outcome(&LBX_ROUTER, outcome)
                }
            }

    $crate::bindings::export!(LbxRouterExport with_types_in $crate::bindings);
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: fn(&str) -> ::core::result::Result<$router, ::std::string::String> =
            <$router as $crate::Router>::init;
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{FakeRequest, all_healthy, answered, first_attempt};
    use crate::{flatten_stats, no_opinion, pick};

    /// Picks the backend whose index is the number of known backends (from
    /// `backends_changed`), tagged with the first signal of backend 0 and the number of signal
    /// names, so the tests can see that calls reach the stored instance with what the host sent.
    struct Probe {
        known: usize,
        outcomes: Vec<Outcome>,
        wants: bool,
    }

    impl Router for Probe {
        fn init(config: &str) -> Result<Self, String> {
            match config {
                "{}" => Ok(Probe {
                    known: 0,
                    outcomes: Vec::new(),
                    wants: false,
                }),
                "{\"outcomes\":true}" => Ok(Probe {
                    known: 0,
                    outcomes: Vec::new(),
                    wants: true,
                }),
                other => Err(format!("bad config {other}")),
            }
        }

        fn wants_outcomes(&self) -> bool {
            self.wants
        }

        fn backends_changed(&mut self, backends: &[BackendInfo]) {
            self.known = backends.len();
        }

        fn choose(&mut self, _: &dyn Request, backends: &Backends, _: &RetryContext) -> Decision {
            let signal = backends.signal(0, 0).map_or(0, |v| v as u64);
            pick(self.known).tag(signal * 100 + backends.signal_names().len() as u64)
        }

        fn on_outcome(&mut self, outcome: &Outcome) {
            self.outcomes.push(*outcome);
        }
    }

    thread_local! {
        static SLOT: RefCell<Option<Probe>> = const { RefCell::new(None) };
    }

    fn choose_now(signals: Vec<f64>) -> Decision {
        choose(
            &SLOT,
            &FakeRequest::get("/"),
            flatten_stats(&all_healthy(2)),
            Some(signals),
            Some(first_attempt()),
        )
    }

    fn info(id: &str) -> BackendInfo {
        crate::testkit::backend_info(id, "127.0.0.1:80")
    }

    #[test]
    fn glue_follows_the_plugin_lifecycle() {
        // Each test runs on its own thread, so SLOT starts empty.
        assert_eq!(choose_now(Vec::new()), no_opinion(), "choose before init");

        backends_changed(&SLOT, vec![info("ignored")], Vec::new());
        assert_eq!(
            choose_now(Vec::new()),
            no_opinion(),
            "backends_changed before init is ignored"
        );

        assert_eq!(
            init(&SLOT, String::new()),
            Ok(Features::empty()),
            "empty config is passed as {{}}"
        );
        backends_changed(&SLOT, vec![info("a"), info("b")], Vec::new());
        assert_eq!(choose_now(Vec::new()), pick(2));
    }

    #[test]
    fn signal_names_from_backends_changed_label_the_signals_of_each_choose() {
        init(&SLOT, "{}".into()).unwrap();
        backends_changed(
            &SLOT,
            vec![info("a"), info("b")],
            vec!["q".into(), "kv".into()],
        );
        let signals = vec![5.0, 7.0, 1.0, f64::NAN, f64::NAN, f64::NAN];
        assert_eq!(choose_now(signals), pick(2).tag(702));
        // The names stay until the next backends_changed.
        assert_eq!(
            choose_now(vec![0.0, 3.0, 0.0, 0.0, 0.0, 0.0]),
            pick(2).tag(302)
        );
        backends_changed(&SLOT, vec![info("a")], Vec::new());
        assert_eq!(choose_now(Vec::new()), pick(1));
    }

    #[test]
    fn outcomes_are_asked_for_only_when_wanted_and_reach_the_router() {
        assert_eq!(init(&SLOT, "{}".into()), Ok(Features::empty()));
        assert_eq!(
            init(&SLOT, "{\"outcomes\":true}".into()),
            Ok(Features::OUTCOMES)
        );
        on_outcome(&SLOT, answered(1, 503, 2_000));
        SLOT.with(|cell| {
            let router = cell.borrow();
            let outcomes = &router.as_ref().unwrap().outcomes;
            assert_eq!(outcomes.as_slice(), [answered(1, 503, 2_000)]);
        });
    }

    #[test]
    fn an_outcome_before_init_is_ignored() {
        on_outcome(&SLOT, answered(0, 200, 1));
        assert!(SLOT.with(|cell| cell.borrow().is_none()));
    }

    #[test]
    fn failed_init_reports_the_error_and_keeps_the_slot_empty() {
        assert_eq!(
            init(&SLOT, "{\"x\":1}".into()),
            Err("bad config {\"x\":1}".into())
        );
        assert_eq!(choose_now(Vec::new()), no_opinion());
    }
}
