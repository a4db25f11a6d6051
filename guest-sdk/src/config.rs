//! Reading a plugin's configuration: the `[plugin.config]` table of lbx.toml, handed to `init`
//! as JSON, into a typed struct with serde.

use serde::de::DeserializeOwned;

/// Parse the plugin's configuration into `T`; the error names the problem and where, and is
/// what lbx prints when it refuses the plugin.
///
/// `{}` (no configuration) must parse: give `T`'s fields defaults (`#[serde(default)]`).
/// Unknown keys are rejected when `T` says `#[serde(deny_unknown_fields)]`, which catches typos.
///
/// ```
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Settings {
///     #[serde(default = "default_cookie")]
///     cookie: String,
/// }
/// fn default_cookie() -> String { "lbx".into() }
///
/// let s: Settings = lbx_guest::parse_config("{}").unwrap();
/// assert_eq!(s.cookie, "lbx");
/// let err = lbx_guest::parse_config::<Settings>(r#"{"cookei":"x"}"#).err().unwrap();
/// assert!(err.contains("unknown field `cookei`"), "{err}");
/// ```
pub fn parse_config<T: DeserializeOwned>(config: &str) -> Result<T, String> {
    let config = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    serde_json::from_str(config).map_err(|e| format!("invalid plugin config: {e}"))
}
