//! Reading a plugin's configuration: the `[plugin.config]` table of lbx.toml, handed to `init`
//! as JSON, into a typed struct with serde, and the wording of configuration errors.
//!
//! The operator wrote TOML, not the JSON lbx hands over, so an error names the key's path inside
//! `[plugin.config]` (`plugin.config.rules[0]: unknown field ...`) and never a line and column
//! of that JSON. serde_json alone reports only the position; `serde_path_to_error` tracks the
//! path while deserializing (about 10 KB more in a plugin that parses a configuration).

use serde::de::DeserializeOwned;

/// The prefix every configuration error starts with: the table the operator wrote.
const ROOT: &str = "plugin.config";

/// Parse the plugin's configuration into `T`; the error names the key's path inside
/// `[plugin.config]` and the problem, for unknown fields and wrong types alike, and is what lbx
/// prints when it refuses the plugin.
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
/// assert!(err.starts_with("plugin.config: unknown field `cookei`"), "{err}");
/// let err = lbx_guest::parse_config::<Settings>(r#"{"cookie":1}"#).err().unwrap();
/// assert_eq!(err, "plugin.config.cookie: invalid type: integer `1`, expected a string");
/// ```
pub fn parse_config<T: DeserializeOwned>(config: &str) -> Result<T, String> {
    let config = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let mut json = serde_json::Deserializer::from_str(config);
    let value: T = serde_path_to_error::deserialize(&mut json).map_err(describe)?;
    // Trailing characters after the value: never from lbx, which hands over one object.
    json.end().map_err(|e| config_error("", &e.to_string()))?;
    Ok(value)
}

/// A configuration error about the key at `path` inside `[plugin.config]` (`""` for the table
/// itself), worded like [`parse_config`]'s: for checks a plugin makes after parsing.
///
/// ```
/// assert_eq!(
///     lbx_guest::config_error("rules[0]", "percent 150 is not within 0..=100"),
///     "plugin.config.rules[0]: percent 150 is not within 0..=100"
/// );
/// assert_eq!(lbx_guest::config_error("", "expected a table"), "plugin.config: expected a table");
/// ```
pub fn config_error(path: &str, problem: &str) -> String {
    if path.is_empty() {
        format!("{ROOT}: {problem}")
    } else {
        format!("{ROOT}.{path}: {problem}")
    }
}

/// Word a deserialization error as `plugin.config.<path>: <problem>`.
fn describe(error: serde_path_to_error::Error<serde_json::Error>) -> String {
    use serde_path_to_error::Segment;

    let inner = error.inner();
    let message = inner.to_string();
    // The position is in the JSON lbx generated from the operator's TOML: meaningless to them,
    // so it goes for type and field errors. A syntax error keeps it (only a hand-made call to
    // `init` can produce one, and there the position helps).
    let message = if inner.is_data() {
        let position = format!(" at line {} column {}", inner.line(), inner.column());
        message
            .strip_suffix(&position)
            .map(str::to_owned)
            .unwrap_or(message)
    } else {
        message
    };
    let mut segments: Vec<&Segment> = error.path().iter().collect();
    // An unknown field's path ends with that field, which the message names already: point at
    // the table it does not belong in (`rules[0]: unknown field `nonsense``).
    if let Some(Segment::Map { key }) = segments.last()
        && message.starts_with(&format!("unknown field `{key}`"))
    {
        segments.pop();
    }
    let mut path = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Segment::Unknown => path.push_str(if path.is_empty() { "?" } else { ".?" }),
        }
    }
    config_error(&path, &message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        #[serde(default)]
        rules: Vec<Rule>,
        #[serde(default)]
        cookie: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rule {
        #[serde(default)]
        header: Option<String>,
        #[serde(default)]
        group: BTreeMap<String, String>,
    }

    fn error_of(config: &str) -> String {
        parse_config::<Settings>(config).unwrap_err()
    }

    #[test]
    fn unknown_field_in_a_rule_names_the_rule_and_no_json_position() {
        let err = error_of(r#"{"rules":[{"header":"x"},{"nonsense":1}]}"#);
        assert!(
            err.starts_with(
                "plugin.config.rules[1]: unknown field `nonsense`, expected `header` or `group`"
            ),
            "{err}"
        );
        assert!(!err.contains("line"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key_it_is_for() {
        let err = error_of(r#"{"rules":[{"header":1}]}"#);
        assert_eq!(
            err,
            "plugin.config.rules[0].header: invalid type: integer `1`, expected a string"
        );
    }

    #[test]
    fn wrong_type_inside_a_map_names_the_map_key() {
        let err = error_of(r#"{"rules":[{"group":{"pool":true}}]}"#);
        assert_eq!(
            err,
            "plugin.config.rules[0].group.pool: invalid type: boolean `true`, expected a string"
        );
    }

    #[test]
    fn unknown_top_level_field_names_the_table() {
        let err = error_of(r#"{"cookei":"x"}"#);
        assert!(
            err.starts_with("plugin.config: unknown field `cookei`, expected `rules` or `cookie`"),
            "{err}"
        );
    }

    #[test]
    fn empty_and_blank_configurations_parse() {
        for config in ["", " {} "] {
            let settings = parse_config::<Settings>(config).unwrap();
            assert!(settings.rules.is_empty() && settings.cookie.is_empty());
        }
    }

    #[test]
    fn a_valid_configuration_parses_whole() {
        let settings: Settings =
            parse_config(r#"{"cookie":"c","rules":[{"header":"x","group":{"pool":"a"}}]}"#)
                .unwrap();
        assert_eq!(settings.cookie, "c");
        assert_eq!(settings.rules[0].header.as_deref(), Some("x"));
        assert_eq!(settings.rules[0].group["pool"], "a");
    }

    #[test]
    fn malformed_json_says_so_with_its_position() {
        let err = error_of(r#"{"cookie": }"#);
        assert!(err.starts_with("plugin.config"), "{err}");
        assert!(err.contains("line 1 column"), "{err}");
        let err = error_of(r#"{} x"#);
        assert!(err.contains("trailing characters"), "{err}");
    }
}
