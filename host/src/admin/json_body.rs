//! JSON request bodies of the admin API, decoded so that one answer names every problem: each
//! wrong type, unknown field and missing field with its path (`weight`, `labels.pool`,
//! `health.rise`), not only the first one serde meets.
//!
//! serde stops at the first error, so the body is parsed once into a [`Value`] and decoded
//! from it again after each error: the error's path names the offending key, which is recorded
//! and taken out of the value before the next try. What is left decodes, with defaults where
//! keys were taken out, so the caller can also check the values whose types were right (a
//! backend's URL scheme, a zero weight) and report those problems in the same answer. A body
//! is at most [`MAX_BODY`] bytes with a handful of keys, so the retries cost nothing that
//! matters.

use std::collections::BTreeSet;

use http::Request;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::config::Problem;

/// Largest request body the backend endpoints read.
pub const MAX_BODY: usize = 64 * 1024;

/// The field name for a problem of the body as a whole (not JSON, not an object).
const WHOLE_BODY: &str = ".";

/// Read a body of at most [`MAX_BODY`] bytes as JSON.
pub async fn read(request: Request<Incoming>) -> Result<Value, ReadError> {
    let body = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| ReadError::TooLarge)?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| {
        ReadError::Invalid(Problem {
            key: WHOLE_BODY.into(),
            message: format!("the body is not JSON: {e}"),
        })
    })
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Over [`MAX_BODY`] (413).
    #[error("the body must be JSON of at most {MAX_BODY} bytes")]
    TooLarge,
    /// Not JSON (422, naming the whole body).
    #[error("{0}")]
    Invalid(Problem),
}

/// The top-level keys of an object body.
pub fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default()
}

/// Decode `value` as a `T`, taking out of it each key that does not decode. Returns the value
/// (unless a required field is missing or the body is not an object) and one problem per key
/// taken out or missing.
pub fn decode<T: DeserializeOwned>(value: &mut Value) -> (Option<T>, Vec<Problem>) {
    let mut problems = Vec::new();
    // serde would take an array for a struct, its fields in order: not what anyone posts.
    if !value.is_object() {
        problems.push(Problem {
            key: WHOLE_BODY.into(),
            message: "the body must be a JSON object".into(),
        });
        return (None, problems);
    }
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(decoded) => return (Some(decoded), problems),
            Err(error) => error,
        };
        let path: Vec<Segment> = error.path().iter().cloned().collect();
        let message = error.into_inner().to_string();
        if let Some(name) = missing_field(&message) {
            // Missing fields are reported after every other key was read; one taken out for
            // its type is already named.
            let key = join(&path, Some(&name));
            if !problems.iter().any(|p: &Problem| p.key == key) {
                problems.push(Problem { key, message });
            }
            return (None, problems);
        }
        problems.push(Problem {
            key: join(&path, None),
            message,
        });
        if !take_out(value, &path) {
            return (None, problems);
        }
    }
}

/// Whether a problem with this key is, or lies under or over, one of `named`: `labels` and
/// `labels.pool` are the same field for the operator reading the answer.
pub fn is_named(named: &[Problem], key: &str) -> bool {
    named.iter().any(|p| {
        p.key == key
            || key.starts_with(&format!("{}.", p.key))
            || p.key.starts_with(&format!("{key}."))
    })
}

/// `labels.pool`, from the path's map keys and array indices.
fn join(path: &[Segment], last: Option<&str>) -> String {
    let mut names: Vec<String> = path
        .iter()
        .filter_map(|segment| match segment {
            Segment::Map { key } => Some(key.clone()),
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    names.extend(last.map(str::to_string));
    if names.is_empty() {
        WHOLE_BODY.into()
    } else {
        names.join(".")
    }
}

/// Remove the key the path ends at (or, inside an array, the key holding the array: taking
/// out one element would shift the paths of the next). False if there is no such key.
fn take_out(value: &mut Value, path: &[Segment]) -> bool {
    let Some(last_key) = path.iter().rposition(|s| matches!(s, Segment::Map { .. })) else {
        return false;
    };
    let mut node = value;
    for segment in &path[..last_key] {
        node = match (segment, node) {
            (Segment::Map { key }, Value::Object(object)) => match object.get_mut(key) {
                Some(child) => child,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(array)) => match array.get_mut(*index) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match (&path[last_key], node) {
        (Segment::Map { key }, Value::Object(object)) => object.remove(key).is_some(),
        _ => false,
    }
}

/// The field a "missing field `x`" message names.
fn missing_field(message: &str) -> Option<String> {
    if !message.starts_with("missing field") {
        return None;
    }
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
        #[serde(default)]
        size: u32,
        #[serde(default)]
        tags: BTreeMap<String, String>,
        #[serde(default)]
        inner: Inner,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        a: u32,
        #[serde(default)]
        b: u32,
    }

    fn fields(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn every_wrong_type_and_unknown_key_is_named_and_the_rest_decodes() {
        let mut value = serde_json::json!({
            "name": "x", "size": "big", "sise": 2,
            "tags": {"a": "1", "b": 2, "c": false},
            "inner": {"a": "one", "b": 2, "z": 0},
        });
        let (decoded, problems) = decode::<Body>(&mut value);
        assert_eq!(
            fields(&problems),
            ["inner.a", "inner.z", "sise", "size", "tags.b", "tags.c"]
        );
        let decoded = decoded.expect("what is left decodes");
        assert_eq!((decoded.size, decoded.inner.b), (0, 2));
        assert_eq!(decoded.tags.len(), 1);
    }

    #[test]
    fn a_missing_field_is_named_once_even_when_its_value_was_the_problem() {
        let (decoded, problems) = decode::<Body>(&mut serde_json::json!({"size": 1}));
        assert_eq!((decoded, fields(&problems)), (None, vec!["name"]));
        let mut value = serde_json::json!({"name": 5, "size": "x"});
        let (decoded, problems) = decode::<Body>(&mut value);
        assert_eq!((decoded, fields(&problems)), (None, vec!["name", "size"]));
        assert!(
            problems[0].message.contains("expected a string"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_one_problem() {
        let (decoded, problems) = decode::<Body>(&mut serde_json::json!([1, 2]));
        assert_eq!((decoded, fields(&problems)), (None, vec![WHOLE_BODY]));
    }

    #[test]
    fn a_problem_under_a_named_field_is_the_same_field() {
        let named = [Problem {
            key: "labels".into(),
            message: String::new(),
        }];
        assert!(is_named(&named, "labels.pool"));
        assert!(is_named(&named, "labels"));
        assert!(!is_named(&named, "label"));
    }

    #[test]
    fn a_missing_field_is_read_from_serdes_message() {
        assert_eq!(
            missing_field("missing field `url` at line 1 column 11").as_deref(),
            Some("url")
        );
        assert_eq!(
            missing_field("invalid type: string \"x\", expected u32"),
            None
        );
    }
}
