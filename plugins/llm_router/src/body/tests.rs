//! The body reader: examples of each shape a client sends, and property tests over generated
//! chat requests (any field order, whitespace and escaping; any cut) and over arbitrary bytes.

use lbx_guest::FastRng;
use proptest::prelude::*;

use super::{MESSAGE_END, PART_END, ROLE_START, read};

/// `(model, prompt stream)` of `body`.
fn parse(body: &[u8]) -> (Option<String>, Vec<u8>) {
    let mut prompt = Vec::new();
    let model = read(body, &mut prompt).map(|m| m.into_owned());
    (model, prompt)
}

/// The stream of one message.
fn message(role: &str, content: &str) -> Vec<u8> {
    let mut out = content.as_bytes().to_vec();
    out.push(ROLE_START);
    out.extend_from_slice(role.as_bytes());
    out.push(MESSAGE_END);
    out
}

#[test]
fn a_chat_request_gives_its_model_and_each_message_with_its_role() {
    let body = br#"{"model":"llama-3-8b","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"stream":true}"#;
    let (model, prompt) = parse(body);
    assert_eq!(model.as_deref(), Some("llama-3-8b"));
    assert_eq!(
        prompt,
        [message("system", "Be brief."), message("user", "Hi")].concat()
    );
}

#[test]
fn openai_python_order_puts_messages_before_the_model() {
    let body =
        br#"{"messages": [{"content": "Hi", "role": "user"}], "model": "m", "temperature": 0.2}"#;
    let (model, prompt) = parse(body);
    assert_eq!(model.as_deref(), Some("m"));
    assert_eq!(prompt, message("user", "Hi"));
}

#[test]
fn the_same_text_from_another_role_streams_differently() {
    let (_, system) = parse(br#"{"messages":[{"role":"system","content":"x"}]}"#);
    let (_, user) = parse(br#"{"messages":[{"role":"user","content":"x"}]}"#);
    assert_ne!(system, user);
}

#[test]
fn a_completion_prompt_is_a_string_or_an_array_of_strings_or_tokens() {
    let (model, prompt) = parse(br#"{"prompt":"Once upon","model":"gpt"}"#);
    assert_eq!(
        (model.as_deref(), prompt.as_slice()),
        (Some("gpt"), &b"Once upon"[..])
    );
    let (_, prompt) = parse(br#"{"prompt":["a","b"]}"#);
    assert_eq!(prompt, [b'a', PART_END, b'b', PART_END]);
    let (_, prompt) = parse(br#"{"prompt":[101, -7]}"#);
    assert_eq!(prompt, b"101\x1e-7\x1e");
}

#[test]
fn content_parts_stream_their_text_and_skip_images() {
    let body = br#"{"messages":[{"role":"user","content":[{"type":"text","text":"look "},{"type":"image_url","image_url":{"url":"data:x"}},{"type":"text","text":"here"}]}]}"#;
    assert_eq!(parse(body).1, message("user", "look here"));
}

#[test]
fn escapes_decode_to_the_same_stream_as_raw_text() {
    let raw = parse("{\"prompt\":\"caf\u{e9} \u{1f600} \\\"q\\\"\"}".as_bytes());
    let escaped = parse(br#"{"prompt":"caf\u00e9 \ud83d\ude00 \"q\""}"#);
    assert_eq!(raw, escaped);
    assert_eq!(raw.1, "café 😀 \"q\"".as_bytes());
}

#[test]
fn a_lone_surrogate_becomes_the_replacement_character() {
    let (_, prompt) = parse(br#"{"prompt":"a\ud800b\udc00c"}"#);
    assert_eq!(prompt, "a\u{fffd}b\u{fffd}c".as_bytes());
}

#[test]
fn a_body_cut_inside_the_last_message_keeps_its_text_so_far() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"first"},{"role":"assistant","content":"second half"#;
    let (model, prompt) = parse(body);
    assert_eq!(model.as_deref(), Some("m"));
    let mut expected = message("user", "first");
    expected.extend_from_slice(b"second half");
    assert_eq!(prompt, expected);
}

#[test]
fn a_model_cut_off_or_of_another_type_or_nested_is_no_model() {
    assert_eq!(parse(br#"{"model":"llama-3-8"#).0, None);
    assert_eq!(parse(br#"{"model":7,"prompt":"x"}"#), (None, b"x".to_vec()));
    assert_eq!(parse(br#"{"options":{"model":"inner"}}"#).0, None);
    assert_eq!(
        parse(br#"{"model":"a","model":"b"}"#).0.as_deref(),
        Some("a")
    );
    assert_eq!(
        parse(br#"{"mod\u0065l":"escaped name"}"#).0.as_deref(),
        Some("escaped name")
    );
}

#[test]
fn garbage_gives_nothing_and_never_fails() {
    for body in [
        &b""[..],
        b"not json",
        b"[1,2,3]",
        b"{\"model\" \"m\"}",
        b"\xff\xfe{",
        b"{\"prompt\":\"\\x\"}",
        b"{\"messages\":{}}",
        b"{{{{",
    ] {
        let (model, prompt) = parse(body);
        assert_eq!(model, None, "{body:?}");
        assert!(prompt.is_empty(), "{body:?}");
    }
}

#[test]
fn deep_nesting_is_skipped_without_recursion() {
    let mut body = b"{\"tools\":".to_vec();
    body.extend(std::iter::repeat_n(b'[', 1_000_000));
    body.extend(std::iter::repeat_n(b']', 1_000_000));
    body.extend_from_slice(br#","model":"deep"}"#);
    assert_eq!(parse(&body).0.as_deref(), Some("deep"));
}

// ---- property tests ------------------------------------------------------------------------

/// A message as a client builds it: its content a string or text parts.
#[derive(Debug, Clone)]
struct Message {
    role: String,
    parts: Vec<String>,
    as_parts: bool,
    role_first: bool,
}

/// A chat request and how to write it.
#[derive(Debug, Clone)]
struct Chat {
    model: String,
    messages: Vec<Message>,
    /// Where the model goes among the other members (0: first).
    model_at: usize,
    /// Seed of the writer's choices: escaping and whitespace.
    style: u64,
}

impl Chat {
    fn expected_prompt(&self) -> Vec<u8> {
        self.messages
            .iter()
            .flat_map(|m| message(&m.role, &m.parts.concat()))
            .collect()
    }

    fn to_json(&self) -> Vec<u8> {
        let mut w = Writer {
            out: String::new(),
            rng: FastRng::new(self.style),
        };
        let mut members: Vec<Member> = vec![
            Box::new(|w| {
                w.key("stream");
                w.raw("true");
            }),
            Box::new(|w| {
                w.key("tools");
                w.raw(
                    r#"[{"type":"function","function":{"name":"f","parameters":{"model":"no"}}}]"#,
                );
            }),
            Box::new(|w| {
                w.key("messages");
                w.raw("[");
                for (i, m) in self.messages.iter().enumerate() {
                    if i > 0 {
                        w.raw(",");
                    }
                    w.message(m);
                }
                w.raw("]");
            }),
            Box::new(|w| {
                w.key("temperature");
                w.raw("0.7");
            }),
        ];
        let model: Member = Box::new(|w| {
            w.key("model");
            w.string(&self.model);
        });
        members.insert(self.model_at.min(members.len()), model);
        w.raw("{");
        for (i, member) in members.iter().enumerate() {
            if i > 0 {
                w.raw(",");
            }
            member(&mut w);
        }
        w.raw("}");
        w.out.into_bytes()
    }
}

/// Writes one member of the request.
type Member<'a> = Box<dyn Fn(&mut Writer) + 'a>;

/// Writes JSON with random whitespace and a random mix of raw and `\u` escaped characters.
struct Writer {
    out: String,
    rng: FastRng,
}

impl Writer {
    fn space(&mut self) {
        for _ in 0..self.rng.below(3) {
            self.out.push([' ', '\n', '\t', '\r'][self.rng.below(4)]);
        }
    }

    fn raw(&mut self, text: &str) {
        self.space();
        self.out.push_str(text);
        self.space();
    }

    fn key(&mut self, name: &str) {
        self.string(name);
        self.raw(":");
    }

    fn string(&mut self, text: &str) {
        self.space();
        self.out.push('"');
        for c in text.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' if self.rng.below(2) == 0 => self.out.push_str("\\n"),
                c if (c as u32) < 0x20 || self.rng.below(4) == 0 => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        self.out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                '/' if self.rng.below(2) == 0 => self.out.push_str("\\/"),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
        self.space();
    }

    fn message(&mut self, m: &Message) {
        self.raw("{");
        let role = |w: &mut Writer| {
            w.key("role");
            w.string(&m.role);
        };
        if m.role_first {
            role(self);
            self.raw(",");
        }
        self.key("content");
        if m.as_parts {
            self.raw("[");
            for (i, part) in m.parts.iter().enumerate() {
                if i > 0 {
                    self.raw(",");
                }
                self.raw("{");
                self.key("type");
                self.string("text");
                self.raw(",");
                self.key("text");
                self.string(part);
                self.raw("}");
            }
            self.raw("]");
        } else {
            let whole = m.parts.concat();
            self.string(&whole);
        }
        if !m.role_first {
            self.raw(",");
            role(self);
        }
        self.raw("}");
    }
}

fn text() -> impl Strategy<Value = String> {
    // Printable ASCII, quotes, backslashes, controls, accents and characters beyond the BMP.
    proptest::string::string_regex("[ -~\"\\\\\n\t\u{1}é中😀]{0,40}").unwrap()
}

fn chat() -> impl Strategy<Value = Chat> {
    let message = (
        prop_oneof![Just("system"), Just("user"), Just("assistant")],
        proptest::collection::vec(text(), 1..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(role, parts, as_parts, role_first)| Message {
            role: role.to_string(),
            parts,
            as_parts,
            role_first,
        });
    (
        text(),
        proptest::collection::vec(message, 0..5),
        0..5usize,
        any::<u64>(),
    )
        .prop_map(|(model, messages, model_at, style)| Chat {
            model,
            messages,
            model_at,
            style,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_written_chat_request_reads_back_whole(chat in chat()) {
        let body = chat.to_json();
        // The writer's JSON is JSON: serde_json agrees.
        prop_assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
        let (model, prompt) = parse(&body);
        prop_assert_eq!(model, Some(chat.model.clone()));
        prop_assert_eq!(prompt, chat.expected_prompt());
    }

    #[test]
    fn a_chat_request_cut_anywhere_streams_a_prefix_of_the_whole(chat in chat()) {
        let body = chat.to_json();
        let (_, whole) = parse(&body);
        for cut in 0..body.len() {
            let (model, prompt) = parse(&body[..cut]);
            prop_assert!(whole.starts_with(&prompt), "cut at {}: {:?}", cut, String::from_utf8_lossy(&body[..cut]));
            if let Some(model) = model {
                prop_assert_eq!(model, chat.model.clone());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_fail_and_cuts_stream_prefixes(
        body in proptest::collection::vec(
            prop_oneof![
                4 => proptest::sample::select(br#"{}[]",:\u0nr 1"#.to_vec()),
                1 => any::<u8>(),
            ],
            0..200,
        ),
        cut in any::<proptest::sample::Index>(),
    ) {
        let mut framed = br#"{"messages":[{"content":""#.to_vec();
        framed.extend_from_slice(&body);
        for body in [&body, &framed] {
            let (_, whole) = parse(body);
            let cut = cut.index(body.len() + 1);
            let (_, prompt) = parse(&body[..cut]);
            prop_assert!(whole.starts_with(&prompt));
        }
    }
}
