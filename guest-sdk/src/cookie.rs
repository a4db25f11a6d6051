//! Parsing of a raw `Cookie` request header.

/// The value of the cookie `name` in a raw `Cookie` header value such as `a=1; b=2`.
///
/// Pairs are separated by `;`; spaces and tabs around names and values are ignored; the name
/// match is exact (cookie names are case-sensitive); the first match wins; a value wrapped in
/// double quotes (RFC 6265 `DQUOTE *cookie-octet DQUOTE`) is returned without them, as lbx's
/// host does. Pairs without `=` are skipped.
///
/// The host's [`Request::cookie`](crate::Request::cookie) answers from all `Cookie` headers;
/// this helper is for a plugin that already holds one header value, and backs the test kit's
/// [`FakeRequest`](crate::testkit::FakeRequest).
///
/// ```
/// use lbx_guest::cookie_value;
///
/// let raw = r#"theme=dark; session=abc123; empty=; quoted="v1""#;
/// assert_eq!(cookie_value(raw, "session"), Some("abc123"));
/// assert_eq!(cookie_value(raw, "quoted"), Some("v1"));
/// assert_eq!(cookie_value(raw, "empty"), Some(""));
/// assert_eq!(cookie_value(raw, "Session"), None);
/// ```
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (trim(key) == name).then(|| unquote(trim(value)))
    })
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::cookie_value;

    #[test]
    fn first_cookie_with_the_name_wins() {
        assert_eq!(cookie_value("a=1; a=2", "a"), Some("1"));
    }

    #[test]
    fn whitespace_around_pairs_is_ignored() {
        assert_eq!(cookie_value(" a = 1 ;\tb=2\t", "b"), Some("2"));
        assert_eq!(cookie_value(" a = 1 ;\tb=2\t", "a"), Some("1"));
    }

    #[test]
    fn value_may_contain_equals_signs() {
        assert_eq!(cookie_value("token=abc==; x=1", "token"), Some("abc=="));
    }

    #[test]
    fn pairs_without_equals_and_empty_headers_are_skipped() {
        assert_eq!(cookie_value("flag; a=1", "flag"), None);
        assert_eq!(cookie_value("flag; a=1", "a"), Some("1"));
        assert_eq!(cookie_value("", "a"), None);
    }

    #[test]
    fn surrounding_quotes_are_removed() {
        assert_eq!(cookie_value(r#"q="abc"; r=""; s=""#, "q"), Some("abc"));
        assert_eq!(cookie_value(r#"q="abc"; r=""; s=""#, "r"), Some(""));
        assert_eq!(cookie_value(r#"q="abc"; r=""; s=""#, "s"), Some("\""));
    }
}
