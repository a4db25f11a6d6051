//! `[log]`: the format of every log line, and the access log's — one line per request — own
//! on/off switch.
//!
//! Both settings are applied on config reload (they only change how the next line is written).
//! Lines written before the config is read (a config that does not parse) are text.
//! The switch is separate from `RUST_LOG`: `access = false` silences access lines while reload,
//! health and error lines still appear; access lines are written when `access` is on *and*
//! `RUST_LOG` enables the `lbx::access` target (it does by default, at `info`).
//!
//! Everything is checked while parsing: an unknown key or format is an error naming it.

use serde::Deserialize;

/// `[log]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// How every line is written.
    #[serde(default)]
    pub format: LogFormat,
    /// Write an access line per request.
    #[serde(default = "super::yes")]
    pub access: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            access: true,
        }
    }
}

/// The layout of every log line, access lines and the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Timestamp, level and target, then the message and `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the fields.
    Json,
}

impl LogFormat {
    /// Its name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, None)
    }

    #[test]
    fn the_access_log_is_on_in_text_by_default() {
        let config = parse("").unwrap();
        assert_eq!(config.log, super::LogConfig::default());
        assert!(config.log.access);
        assert_eq!(config.log.format, super::LogFormat::Text);
    }

    #[test]
    fn json_and_the_switch_parse() {
        let config = parse("[log]\nformat = \"json\"\naccess = false\n").unwrap();
        assert_eq!(config.log.format, super::LogFormat::Json);
        assert!(!config.log.access);
    }

    #[test]
    fn an_unknown_format_or_key_is_refused_by_name() {
        let error = parse("[log]\nformat = \"xml\"\n").unwrap_err().to_string();
        assert!(error.contains("xml") && error.contains("format"), "{error}");
        let error = parse("[log]\nacess = false\n").unwrap_err().to_string();
        assert!(error.contains("acess"), "{error}");
    }
}
