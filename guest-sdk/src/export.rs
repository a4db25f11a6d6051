//! [`export_router!`](crate::export_router): turns a [`Router`] into the component's `router`
//! export. The macro stays small; the logic lives in the generic functions below so it is
//! compiled (and unit-tested) once, natively too.

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::{BackendInfo, BackendStats, Decision, Request, RetryContext, Router};

/// Where the expansion keeps the plugin's router: one per plugin instance (a component instance
/// is single-threaded, so a `thread_local` is the instance's global).
pub type Slot<T> = LocalKey<RefCell<Option<T>>>;

/// `init` export: builds the router and stores it, replacing any earlier one. On error the slot
/// is left as it was and the message goes back to the host.
pub fn init<T: Router>(slot: &'static Slot<T>, config: String) -> Result<(), String> {
    route_panics_to_the_host_log();
    // The host sends `{}` for "no configuration"; be lenient with an empty string too.
    let config = if config.trim().is_empty() {
        "{}"
    } else {
        &config
    };
    let router = T::init(config)?;
    slot.with(|cell| *cell.borrow_mut() = Some(router));
    Ok(())
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

/// `backends-changed` export: forwarded to the router; ignored before `init`.
pub fn backends_changed<T: Router>(slot: &'static Slot<T>, backends: Vec<BackendInfo>) {
    slot.with(|cell| {
        if let Some(router) = cell.borrow_mut().as_mut() {
            router.backends_changed(&backends);
        }
    });
}

/// `choose` export: forwarded to the router, borrowing the lifted lists (no copy); `no-opinion`
/// before `init`.
pub fn choose<T: Router>(
    slot: &'static Slot<T>,
    req: &dyn Request,
    stats: Vec<u32>,
    retry: Option<RetryContext>,
) -> Decision {
    // A first attempt carries no retry context; plugins always get one (empty: attempt 0).
    let retry = retry.unwrap_or(RetryContext {
        attempt: 0,
        tried: Vec::new(),
    });
    thread_local! {
        // Reused across calls: unflattening allocates nothing after the first request.
        static BACKENDS: RefCell<Vec<BackendStats>> = const { RefCell::new(Vec::new()) };
    }
    BACKENDS.with(|backends| {
        let mut backends = backends.borrow_mut();
        crate::unflatten_stats(&stats, &mut backends);
        slot.with(|cell| match cell.borrow_mut().as_mut() {
            Some(router) => router.choose(req, &backends, &retry),
            None => Decision::NoOpinion,
        })
    })
}

/// Exports a [`Router`](crate::Router) implementation as the plugin's `router` interface.
///
/// Invoke it once, at the top level of the plugin crate (crate type `cdylib`), with the type
/// that implements `Router`. When compiling for `wasm32` it expands to the wit-bindgen export
/// glue:
///
/// - `init` calls [`Router::init`](crate::Router::init) and keeps the instance in a
///   `thread_local` `RefCell<Option<T>>`;
/// - `backends-changed` and `choose` borrow that instance mutably; `choose` before a
///   successful `init` answers `no-opinion`;
/// - the borrowed `request` resource is passed as `&dyn Request`, and the lifted lists as
///   slices, without copying.
///
/// On every other target it expands to a compile-time check that the type implements
/// `Router`, so the plugin crate builds and unit-tests natively. The plugin needs no
/// `#[allow(unsafe_code)]`: the unsafe ABI glue is expanded from this crate's macros.
///
/// ```
/// use lbx_guest::{BackendStats, Decision, Request, RetryContext, Router};
///
/// struct AlwaysReject;
///
/// impl Router for AlwaysReject {
///     fn init(_config: &str) -> Result<Self, String> {
///         Ok(AlwaysReject)
///     }
///
///     fn choose(&mut self, _: &dyn Request, _: &[BackendStats], _: &RetryContext) -> Decision {
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
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::init(&LBX_ROUTER, config)
                }

                fn backends_changed(backends: ::std::vec::Vec<$crate::BackendInfo>) {
                    $crate::__private::backends_changed(&LBX_ROUTER, backends)
                }

                fn choose(
                    req: &$crate::__private::HostRequest,
                    stats: ::std::vec::Vec<u32>,
                    retry: ::core::option::Option<$crate::RetryContext>,
                ) -> $crate::Decision {
                    $crate::__private::choose(&LBX_ROUTER, req, stats, retry)
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
    use crate::testkit::{FakeRequest, all_healthy, first_attempt};
    use crate::{no_opinion, pick};

    /// Picks the backend whose index is the number of known backends (from
    /// `backends_changed`), so the tests can see that calls reach the stored instance.
    struct Probe {
        known: usize,
    }

    impl Router for Probe {
        fn init(config: &str) -> Result<Self, String> {
            match config {
                "{}" => Ok(Probe { known: 0 }),
                other => Err(format!("bad config {other}")),
            }
        }

        fn backends_changed(&mut self, backends: &[BackendInfo]) {
            self.known = backends.len();
        }

        fn choose(&mut self, _: &dyn Request, _: &[BackendStats], _: &RetryContext) -> Decision {
            pick(self.known)
        }
    }

    thread_local! {
        static SLOT: RefCell<Option<Probe>> = const { RefCell::new(None) };
    }

    fn choose_now() -> Decision {
        choose(
            &SLOT,
            &FakeRequest::get("/"),
            crate::flatten_stats(&all_healthy(2)),
            Some(first_attempt()),
        )
    }

    fn info(id: &str) -> BackendInfo {
        crate::testkit::backend_info(id, "127.0.0.1:80")
    }

    #[test]
    fn glue_follows_the_plugin_lifecycle() {
        // Each test runs on its own thread, so SLOT starts empty.
        assert_eq!(choose_now(), no_opinion(), "choose before init");

        backends_changed(&SLOT, vec![info("ignored")]);
        assert_eq!(
            choose_now(),
            no_opinion(),
            "backends_changed before init is ignored"
        );

        assert_eq!(
            init(&SLOT, String::new()),
            Ok(()),
            "empty config is passed as {{}}"
        );
        backends_changed(&SLOT, vec![info("a"), info("b")]);
        assert_eq!(choose_now(), pick(2));
    }

    #[test]
    fn failed_init_reports_the_error_and_keeps_the_slot_empty() {
        assert_eq!(
            init(&SLOT, "{\"x\":1}".into()),
            Err("bad config {\"x\":1}".into())
        );
        assert_eq!(choose_now(), no_opinion());
    }
}
