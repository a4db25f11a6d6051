//! Sizes in the configuration: a number of bytes (`65536`) or a size with a unit (`"64KiB"`,
//! `"1MiB"`, `"1.5MB"`), parsed by `bytesize`, with an error that says what is expected.

use bytesize::ByteSize;
use serde::{Deserialize, Deserializer};

/// `#[serde(deserialize_with = "size::deserialize")]` for a [`ByteSize`] key.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ByteSize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Bytes(u64),
        Text(String),
    }
    let expected = "a number of bytes or a size such as \"64KiB\" or \"1MiB\"";
    match Written::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom(format!("expected {expected}")))?
    {
        Written::Bytes(bytes) => Ok(ByteSize(bytes)),
        Written::Text(text) => text
            .trim()
            .parse::<ByteSize>()
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not {expected}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "deserialize")]
        size: ByteSize,
    }

    fn parse(value: &str) -> Result<u64, String> {
        toml::from_str::<Holder>(&format!("size = {value}"))
            .map(|h| h.size.as_u64())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_and_units_are_sizes_and_anything_else_says_what_is_expected() {
        assert_eq!(parse("100"), Ok(100));
        assert_eq!(parse("\"64KiB\""), Ok(64 * 1024));
        assert_eq!(parse("\"1MiB\""), Ok(1024 * 1024));
        let err = parse("\"lots\"").unwrap_err();
        assert!(
            err.contains("\"lots\" is not a number of bytes or a size such as"),
            "{err}"
        );
        let err = parse("true").unwrap_err();
        assert!(err.contains("expected a number of bytes"), "{err}");
    }
}
