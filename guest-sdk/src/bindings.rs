//! The one `wit_bindgen::generate!` of the SDK: Rust types and glue for the `plugin` world of
//! `wit/router.wit` (lbx:router@0.2.0).
//!
//! Plugins never name this module: the types they need are re-exported at the crate root and
//! the export glue is produced by [`export_router!`](crate::export_router). It is public only
//! because the macro expands inside the plugin crate and must reach the generated items.

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    // `export!` is used from plugin crates through `export_router!`.
    pub_export_macro: true,
    default_bindings_module: "lbx_guest::bindings",
    // Lets tests compare decisions and outcomes with `assert_eq!`.
    additional_derives: [PartialEq, Eq],
});
