//! Reading a field out of the request's body prefix ([`Request::body_prefix`](crate::Request::body_prefix)):
//! the first bytes of a JSON body, possibly cut off at the configured limit, where an LLM
//! router finds the `model` of a chat completion.
//!
//! serde_json reads the prefix as a stream and the scan stops at the wanted field, so the part
//! of the body after it (cut off or not) is never needed. Only plugins that call
//! [`json_string_field`] link serde_json's parser for it.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The value of the top-level string field `key` of the JSON object at the start of `prefix`.
///
/// `None` when `prefix` does not start with a JSON object, when the object has no such field
/// before the prefix ends or turns invalid, or when the field's value is not a string (or is
/// cut off). Escapes are decoded (`"caf\u00e9"` gives `café`); with a repeated key, the first
/// one counts. Fields inside nested objects are never matched.
///
/// ```
/// use lbx_guest::json_string_field;
///
/// let body = br#"{"messages":[{"role":"user","model":"no"}],"model":"llama-3-8b","stream":tr"#;
/// // The body was cut at the prefix limit; the field came before the cut.
/// assert_eq!(json_string_field(body, "model").as_deref(), Some("llama-3-8b"));
/// assert_eq!(json_string_field(body, "stream"), None); // after the cut
/// assert_eq!(json_string_field(br#"{"model": 7}"#, "model"), None); // not a string
/// assert_eq!(json_string_field(b"[1, 2]", "model"), None); // not an object
/// ```
pub fn json_string_field(prefix: &[u8], key: &str) -> Option<String> {
    let mut found = None;
    let mut json = serde_json::Deserializer::from_slice(prefix);
    // Stopping at the field leaves the object unfinished, which serde_json reports as an error
    // once the visitor returns: the answer is what the visitor saw, not the parse's result.
    let _ = json.deserialize_map(TopLevelField {
        key,
        found: &mut found,
    });
    found
}

/// Walks the members of the top-level object until `key`, skipping other values whole.
struct TopLevelField<'a> {
    key: &'a str,
    found: &'a mut Option<String>,
}

impl<'de> Visitor<'de> for TopLevelField<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<(), A::Error> {
        while let Some(is_wanted) = members.next_key_seed(KeyIs(self.key))? {
            if is_wanted {
                *self.found = Some(members.next_value::<String>()?);
                return Ok(());
            }
            members.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// Deserializes a member name into whether it is the wanted one, without keeping it.
struct KeyIs<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, name: D) -> Result<bool, D::Error> {
        name.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<bool, E> {
        Ok(name == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::json_string_field;

    fn field(body: &str, key: &str) -> Option<String> {
        json_string_field(body.as_bytes(), key)
    }

    #[test]
    fn escapes_in_names_and_values_are_decoded() {
        assert_eq!(
            field(r#"{"mod\u0065l":"caf\u00e9 \"x\""}"#, "model").as_deref(),
            Some("café \"x\"")
        );
    }

    #[test]
    fn nested_fields_and_strings_that_look_like_fields_are_not_matched() {
        let body = r#"{"a":{"model":"inner"},"b":"\"model\":\"fake\"","c":[{"model":"x"}]}"#;
        assert_eq!(field(body, "model"), None);
        let body = r#"{"a":{"model":"inner"},"model":"outer"}"#;
        assert_eq!(field(body, "model").as_deref(), Some("outer"));
    }

    #[test]
    fn the_first_of_repeated_keys_counts() {
        assert_eq!(field(r#"{"m":"1","m":"2"}"#, "m").as_deref(), Some("1"));
    }

    #[test]
    fn a_value_cut_off_by_the_prefix_is_not_returned() {
        assert_eq!(field(r#"{"model":"llama-3-8"#, "model"), None);
        assert_eq!(field(r#"{"model""#, "model"), None);
        assert_eq!(field("", "model"), None);
    }

    #[test]
    fn whitespace_and_an_empty_value_are_fine() {
        assert_eq!(
            field(" {\n \"model\" : \"\" } ", "model").as_deref(),
            Some("")
        );
    }

    #[test]
    fn invalid_json_before_the_field_stops_the_scan() {
        assert_eq!(field(r#"{"a":nope,"model":"x"}"#, "model"), None);
        assert_eq!(field(r#"{"a":1 "model":"x"}"#, "model"), None);
    }
}
