//! Comparing lbx's outcome with hyper's, and the allow-list: the differences lbx means to
//! have, each a named rule that matches narrowly and gives the RFC text behind it.
//!
//! What is never allowed: both implementations accept a request and disagree on its body or
//! on where the next request starts (a different request, or none, seen next). That is the
//! shape of request smuggling, and no rule can explain it: the comparison fails before any
//! rule is consulted. Rules only explain a *refusal* on one side (a head or a body) where the
//! other side accepted; after it the connection is closed, so nothing later is compared.

use super::peers::{Body, End, LbxRun, Outcome, Seen, request_line, uri_text};
use crate::http1::BodyError;
use crate::http1::parse::RequestError;

/// A difference a rule may explain. `head` is the input from where the head starts.
#[derive(Debug)]
pub enum Difference<'a> {
    /// lbx refused a head that hyper accepted.
    LbxRefusedHead {
        error: &'a RequestError,
        head: &'a [u8],
    },
    /// hyper refused (with `error`) a head that lbx accepted.
    HyperRefusedHead { error: &'a str, head: &'a [u8] },
    /// Both read the same head; lbx refused the body that hyper read whole. `at` is the input
    /// from where lbx stopped (the line it refused, for a chunk-size line).
    LbxFailedBody {
        error: &'a BodyError,
        body: &'a [u8],
        at: &'a [u8],
    },
    /// Both read the same head; hyper failed the body that lbx read whole.
    HyperFailedBody { body: &'a [u8] },
}

impl Difference<'_> {
    fn describe(&self) -> String {
        match self {
            Difference::LbxRefusedHead { error, .. } => {
                format!("lbx refused a head hyper accepted ({error:?})")
            }
            Difference::HyperRefusedHead { error, .. } => {
                format!("hyper refused a head lbx accepted ({error})")
            }
            Difference::LbxFailedBody { error, .. } => {
                format!("lbx failed a body hyper read ({error:?})")
            }
            Difference::HyperFailedBody { .. } => "hyper failed a body lbx read".into(),
        }
    }
}

/// One accepted difference.
#[derive(Debug)]
pub struct Rule {
    /// Reads as a sentence, like a test name.
    pub name: &'static str,
    /// Why lbx is right to differ: the RFC section.
    pub reason: &'static str,
    pub applies: fn(&Difference<'_>) -> bool,
}

/// Every accepted difference between lbx and hyper. Each checks the input itself for what it
/// is about, not only lbx's or hyper's error message.
pub const RULES: &[Rule] = &[
    Rule {
        name: "lbx_refuses_content_length_with_transfer_encoding",
        reason: "RFC 9112 §6.1: a server MAY reject a request that has both Content-Length and \
                 Transfer-Encoding (§6.3 rule 3: it ought to be handled as an error; §11.2: \
                 smuggling). hyper frames by Transfer-Encoding and closes after; it does not \
                 even parse a Content-Length that follows, so lbx's refusal may name either",
        applies: |d| {
            let Difference::LbxRefusedHead {
                error: RequestError::Bad(message),
                head,
            } = d
            else {
                return false;
            };
            let about_length = [
                "both Content-Length and Transfer-Encoding",
                "invalid Content-Length",
                "empty Content-Length",
                "conflicting Content-Length values",
            ];
            about_length.contains(message)
                && count(head, "content-length") > 0
                && count(head, "transfer-encoding") > 0
        },
    },
    Rule {
        name: "lbx_refuses_a_transfer_coding_other_than_one_chunked",
        reason: "RFC 9112 §6.1: a transfer coding the server does not understand SHOULD be \
                 answered 501 (lbx decodes only chunked; hyper passes `gzip, chunked` on \
                 undecoded), and §7: chunked MUST NOT be applied more than once",
        applies: |d| {
            let Difference::LbxRefusedHead { error, head } = d else {
                return false;
            };
            let codings = codings(head);
            matches!(
                error,
                RequestError::UnsupportedTransferCoding
                    | RequestError::Bad("Transfer-Encoding does not end in a single chunked")
            ) && codings.len() > 1
                && codings
                    .last()
                    .is_some_and(|c| c.eq_ignore_ascii_case("chunked"))
        },
    },
    Rule {
        name: "lbx_refuses_an_empty_transfer_encoding_line",
        reason: "RFC 9110 §5.6.1.1: a sender MUST NOT generate empty list elements, and a \
                 Transfer-Encoding line that names no coding says nothing about the framing: \
                 lbx refuses it rather than guess (hyper looks at the last line only)",
        applies: |d| {
            let Difference::LbxRefusedHead {
                error: RequestError::Bad("Transfer-Encoding does not end in a single chunked"),
                head,
            } = d
            else {
                return false;
            };
            values(head, "transfer-encoding")
                .iter()
                .any(|v| v.split(',').all(|c| c.trim_ascii().is_empty()))
        },
    },
    Rule {
        name: "lbx_answers_connect_501",
        reason: "RFC 9110 §9.3.6: CONNECT asks for a tunnel, which lbx (not a forward proxy) \
                 does not offer; §15.6.2: 501 for a method the server does not support",
        applies: |d| {
            let Difference::LbxRefusedHead {
                error: RequestError::Connect,
                head,
            } = d
            else {
                return false;
            };
            request_line(head).is_some_and(|(method, _)| method == "CONNECT")
        },
    },
    Rule {
        name: "lbx_requires_one_valid_host",
        reason: "RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host, \
                 with more than one Host line, or with an invalid Host value (hyper leaves Host \
                 to the application)",
        applies: |d| {
            let Difference::LbxRefusedHead {
                error: RequestError::Bad(message),
                head,
            } = d
            else {
                return false;
            };
            match *message {
                "more than one Host field" => count(head, "host") > 1,
                "HTTP/1.1 request without Host" => count(head, "host") == 0,
                "invalid Host field" => count(head, "host") == 1,
                _ => false,
            }
        },
    },
    Rule {
        name: "lbx_refuses_a_target_form_it_does_not_serve",
        reason: "RFC 9112 §3.2.3 and §3.2.4: authority-form is only for CONNECT and \
                 asterisk-form only for OPTIONS; absolute-form for a scheme other than http(s) \
                 asks for a forward proxy",
        applies: |d| {
            let Difference::LbxRefusedHead {
                error: RequestError::Bad(message),
                head,
            } = d
            else {
                return false;
            };
            message.contains("target")
                && request_line(head).is_some_and(|(_, target)| !target.starts_with(b"/"))
        },
    },
    Rule {
        name: "lbx_refuses_a_target_that_is_not_visible_ascii",
        reason: "RFC 9112 §3.2 with RFC 3986 §2: a request-target is ASCII, anything else \
                 percent-encoded; §3: an invalid request-line SHOULD be answered 400 (hyper's \
                 Uri takes bytes above 0x7F)",
        applies: |d| {
            let Difference::LbxRefusedHead {
                error: RequestError::Bad("request target is not visible ASCII"),
                head,
            } = d
            else {
                return false;
            };
            request_line(head).is_some_and(|(_, target)| !target.iter().all(u8::is_ascii_graphic))
        },
    },
    Rule {
        name: "lbx_bounds_content_length_at_19_digits",
        reason: "RFC 9110 §8.6: a recipient MUST anticipate large numerals and prevent overflow; \
                 lbx refuses more than 19 digits (hyper takes leading zeros without bound)",
        applies: |d| {
            let Difference::LbxRefusedHead {
                error: RequestError::Bad("invalid Content-Length"),
                head,
            } = d
            else {
                return false;
            };
            values(head, "content-length").iter().any(|v| {
                let v = v.trim_ascii();
                v.len() > 19 && v.bytes().all(|b| b.is_ascii_digit())
            })
        },
    },
    Rule {
        name: "lbx_bounds_a_chunk_size_at_16_hex_digits",
        reason: "RFC 9112 §7.1: recipients MUST anticipate large hexadecimal numerals and \
                 prevent overflow; lbx refuses more than 16 digits (hyper takes leading zeros \
                 without bound)",
        applies: |d| {
            let Difference::LbxFailedBody {
                error: BodyError::Malformed("chunk size too large"),
                at,
                ..
            } = d
            else {
                return false;
            };
            at.iter().take_while(|b| b.is_ascii_hexdigit()).count() > 16
        },
    },
    Rule {
        name: "lbx_refuses_control_characters_in_a_chunk_extension",
        reason: "RFC 9112 §7.1.1: chunk-ext is tokens and quoted-strings, which hold no control \
                 characters but HTAB (hyper skips any byte but CR and LF)",
        applies: |d| {
            let Difference::LbxFailedBody {
                error: BodyError::Malformed("control character in chunk extension"),
                at,
                ..
            } = d
            else {
                return false;
            };
            let line = at.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        },
    },
    Rule {
        name: "lbx_refuses_a_trailer_section_a_bare_lf_ends_early",
        reason: "RFC 9112 §2.2: to a recipient that takes a bare LF as a line end (httparse \
                 does) `0\\r\\n\\nGET /x ...` ends the body at that LF and `GET /x` is the next \
                 request; hyper reads on to the next CRLF CRLF and discards what lies between as \
                 trailers. lbx refuses the ambiguity (§7.1.2, §11.2)",
        applies: |d| {
            let Difference::LbxFailedBody {
                error: BodyError::Malformed("invalid trailer field"),
                body,
                ..
            } = d
            else {
                return false;
            };
            trailer_section(body).is_some_and(|section| {
                let mut fields = [httparse::EMPTY_HEADER; 64];
                matches!(
                    httparse::parse_headers(section, &mut fields),
                    Ok(httparse::Status::Complete((n, _))) if n < section.len()
                )
            })
        },
    },
    Rule {
        name: "lbx_reads_a_bare_lf_in_the_trailer_section_as_a_line_end",
        reason: "RFC 9112 §2.2: a recipient MAY recognize a single LF as a line terminator (as \
                 httparse does for heads, and for trailers on both sides); hyper counts trailer \
                 lines by CRLF only and gives httparse too few slots for `A: 1\\nB: 2\\r\\n`",
        applies: |d| {
            let Difference::HyperFailedBody { body } = d else {
                return false;
            };
            trailer_section(body).is_some_and(|section| {
                (0..section.len())
                    .any(|i| section[i] == b'\n' && (i == 0 || section[i - 1] != b'\r'))
            })
        },
    },
    Rule {
        name: "lbx_relays_a_visible_ascii_target_that_rfc_3986_forbids",
        reason: "not framing, a known leniency: RFC 9112 §3 says an invalid request-line SHOULD \
                 (not MUST) be answered 400; lbx relays any visible-ASCII target as nginx does, \
                 hyper's Uri refuses `<`, `>` and backquote in a path and `\"`, `<`, `>` in a \
                 query. Both find the end of the head with the same httparse",
        applies: |d| {
            let Difference::HyperRefusedHead {
                error: "invalid URI",
                head,
            } = d
            else {
                return false;
            };
            request_line(head).is_some_and(|(_, target)| {
                target.iter().all(u8::is_ascii_graphic)
                    && target.iter().any(|b| b"<>`\"".contains(b))
                    && http::Uri::try_from(target.as_slice()).is_err()
            })
        },
    },
    Rule {
        name: "lbx_accepts_a_content_length_list_of_one_value",
        reason: "RFC 9110 §8.6: for `Content-Length: 42, 42` a recipient MAY reject or replace \
                 it with the single value; lbx replaces (and sends its own Content-Length \
                 upstream, proxy/headers.rs), hyper rejects",
        applies: |d| {
            let Difference::HyperRefusedHead {
                error: "invalid content-length parsed",
                head,
            } = d
            else {
                return false;
            };
            let values = values(head, "content-length");
            let numbers: Vec<Option<u64>> = values
                .iter()
                .flat_map(|v| v.split(','))
                .map(str::trim_ascii)
                .filter(|m| !m.is_empty())
                .map(|m| {
                    m.bytes()
                        .all(|b| b.is_ascii_digit())
                        .then(|| m.parse().ok())?
                })
                .collect();
            values.iter().any(|v| v.contains(','))
                && numbers.first().is_some_and(Option::is_some)
                && numbers.iter().all(|n| *n == numbers[0])
        },
    },
    Rule {
        name: "lbx_ignores_empty_elements_of_transfer_encoding",
        reason: "RFC 9110 §5.6.1.2: a recipient MUST parse and ignore a reasonable number of \
                 empty list elements (`chunked,`); hyper looks at the last element only",
        applies: |d| {
            let Difference::HyperRefusedHead {
                error: "invalid transfer-encoding parsed",
                head,
            } = d
            else {
                return false;
            };
            is_one_chunked(&codings(head))
                && values(head, "transfer-encoding")
                    .iter()
                    .any(|v| v.split(',').any(|m| m.trim_ascii().is_empty()))
        },
    },
    Rule {
        name: "lbx_reads_chunked_with_a_parameter_as_chunked",
        reason: "RFC 9112 §7 (transfer-coding = token *( OWS \";\" OWS transfer-parameter )): \
                 lbx compares the coding's name, hyper the whole element; lbx decodes the body \
                 itself and frames it anew upstream, so the parameter reaches no one",
        applies: |d| {
            let Difference::HyperRefusedHead {
                error: "invalid transfer-encoding parsed",
                head,
            } = d
            else {
                return false;
            };
            match codings(head).as_slice() {
                [only] => {
                    let (name, _parameters) = only.split_once(';').unwrap_or((only, ""));
                    only.contains(';') && name.trim_ascii().eq_ignore_ascii_case("chunked")
                }
                _ => false,
            }
        },
    },
];

/// The verdict on one input: `Ok(None)` same behaviour, `Ok(Some(rule))` a difference the
/// rule explains, `Err(why)` a failure.
pub fn compare(
    input: &[u8],
    lbx: &LbxRun,
    hyper: &Outcome,
) -> Result<Option<&'static Rule>, String> {
    let explain = |difference: Difference<'_>| {
        RULES
            .iter()
            .find(|rule| (rule.applies)(&difference))
            .ok_or_else(|| format!("unexplained difference: {}", difference.describe()))
            .map(Some)
    };
    let ours = &lbx.outcome;
    for i in 0.. {
        let head = |i: usize| &input[lbx.head_at[i]..];
        match (ours.seen.get(i), hyper.seen.get(i)) {
            (Some(l), Some(h)) => {
                if (&l.method, &l.target) != (&h.method, &h.target) {
                    return Err(format!(
                        "request {i} differs (a different place in the input): lbx {l:?}, hyper {h:?}"
                    ));
                }
                match (&l.body, &h.body) {
                    (Body::Complete(a), Body::Complete(b)) if a == b => {}
                    (Body::Complete(_), Body::Complete(_)) => {
                        return Err(format!("request {i}: both read a body, not the same one"));
                    }
                    (Body::Failed(_), Body::Failed(_)) => return Ok(None),
                    (Body::Failed(_), Body::Complete(_)) => {
                        let (error, at) = lbx.body_error.as_ref().expect("lbx's body error");
                        return explain(Difference::LbxFailedBody {
                            error,
                            body: &input[lbx.body_at[i]..],
                            at: &input[*at..],
                        });
                    }
                    (Body::Complete(_), Body::Failed(_)) => {
                        return explain(Difference::HyperFailedBody {
                            body: &input[lbx.body_at[i]..],
                        });
                    }
                }
            }
            (None, Some(h)) => {
                // hyper read a request where lbx refused a head: only a rule can explain it,
                // and only if hyper's request is the head lbx refused (same place).
                let Some(error) = lbx.refusal.as_ref() else {
                    return Err(format!(
                        "hyper read request {i} ({h:?}), lbx: {:?}",
                        ours.end
                    ));
                };
                if !is_head_of(head(i), h) {
                    return Err(format!(
                        "lbx refused request {i} ({error}) and hyper read another one: {h:?}"
                    ));
                }
                return explain(Difference::LbxRefusedHead {
                    error,
                    head: head(i),
                });
            }
            (Some(l), None) => {
                let End::Refused(error) = &hyper.end else {
                    return Err(format!(
                        "lbx read request {i} ({l:?}), hyper: {:?}",
                        hyper.end
                    ));
                };
                return explain(Difference::HyperRefusedHead {
                    error,
                    head: head(i),
                });
            }
            (None, None) if ours.end == hyper.end => return Ok(None),
            (None, None) => match (&ours.end, &hyper.end) {
                (End::Refused(_), End::Refused(_)) => return Ok(None),
                (l, h) => {
                    return Err(format!(
                        "after {i} requests the connections end differently: lbx {l:?}, hyper {h:?}"
                    ));
                }
            },
        }
    }
    unreachable!("the loop returns")
}

/// Whether hyper's request `h` is the one whose head starts `head`.
fn is_head_of(head: &[u8], h: &Seen) -> bool {
    request_line(head)
        .is_some_and(|(method, target)| method == h.method && uri_text(&target) == h.target)
}

/// The fields of the head at the start of `head` (as httparse, which both sides use, reads
/// them), lowercase names.
fn fields(head: &[u8]) -> Vec<(String, String)> {
    let mut fields = [httparse::EMPTY_HEADER; 256];
    let mut request = httparse::Request::new(&mut fields);
    if request.parse(head).is_err() {
        return Vec::new();
    }
    request
        .headers
        .iter()
        .map(|f| {
            (
                f.name.to_ascii_lowercase(),
                String::from_utf8_lossy(f.value).into_owned(),
            )
        })
        .collect()
}

fn values(head: &[u8], name: &str) -> Vec<String> {
    fields(head)
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v)
        .collect()
}

fn count(head: &[u8], name: &str) -> usize {
    values(head, name).len()
}

/// The non-empty transfer codings of every Transfer-Encoding line, in order.
fn codings(head: &[u8]) -> Vec<String> {
    values(head, "transfer-encoding")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|c| c.trim_ascii().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

fn is_one_chunked(codings: &[String]) -> bool {
    matches!(codings, [only] if only.eq_ignore_ascii_case("chunked"))
}

/// The trailer section of a chunked `body` (after the last chunk, up to and including the
/// blank line that ends it), found by walking well-formed chunks; `None` if the chunks are not
/// well-formed. Only locates the section for the rules: it does not judge it.
fn trailer_section(mut body: &[u8]) -> Option<&[u8]> {
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let digits = body[..line_end]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        let size = usize::from_str_radix(std::str::from_utf8(&body[..digits]).ok()?, 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            if body.starts_with(b"\r\n") {
                return Some(&body[..2]);
            }
            let end = body.windows(4).position(|w| w == b"\r\n\r\n")?;
            return Some(&body[..end + 4]);
        }
        body = body.get(size + 2..)?;
    }
}
