//! Inputs for the differential test: a first request built from a grammar that concentrates on
//! framing (`Content-Length`, `Transfer-Encoding`, both, their spellings and line forms; valid
//! and broken chunked bodies), an optional pipelined second request that shows where each
//! implementation thinks the first one ended, and optionally a few random byte mutations.

use proptest::prelude::*;
use proptest::sample::{Index, select};

/// One generated connection's bytes, kept structured so that proptest shrinks it to a small,
/// readable input.
#[derive(Debug, Clone)]
pub struct Case {
    method: &'static str,
    target: &'static str,
    version: &'static str,
    fields: Vec<Line>,
    body: BodySpec,
    next: &'static str,
    /// Each applied to the whole input or (true) only after the first head.
    mutations: Vec<(Mutation, bool)>,
}

/// A field line, in one of the spellings a smuggler tries.
#[derive(Debug, Clone)]
struct Line {
    field: Field,
    name_case: NameCase,
    /// Between the name and the value: `": "`, `":"`, a tab, a space before the colon...
    colon: &'static str,
    /// After the value, before the line end.
    trailing: &'static str,
    /// `"\r\n"` or a bare `"\n"`.
    eol: &'static str,
    /// Whether the value is split over two lines (obs-fold).
    folded: bool,
}

#[derive(Debug, Clone)]
enum Field {
    /// `Content-Length` with a value relative to the body's real length.
    LengthOfBody(i8),
    ContentLength(&'static str),
    TransferEncoding(&'static str),
    Other(&'static str, &'static str),
}

#[derive(Debug, Clone, Copy)]
enum NameCase {
    Canonical,
    Lower,
    Upper,
}

#[derive(Debug, Clone)]
enum BodySpec {
    None,
    Raw(&'static str),
    Chunked(Vec<Chunk>, &'static str),
}

#[derive(Debug, Clone)]
struct Chunk {
    data: &'static str,
    size: Size,
    extension: &'static str,
    after_size: &'static str,
    after_data: &'static str,
}

#[derive(Debug, Clone)]
enum Size {
    Lower,
    Upper,
    /// The right size after this many zeros.
    Zeros(usize),
    /// Off by this much.
    Wrong(i8),
    Literal(&'static str),
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Duplicate(Index, usize),
    Truncate(Index),
}

/// Pipelined after the first request; the targets are distinct so that a request seen at the
/// wrong place shows.
const NEXT: [&str; 5] = [
    "",
    "GET /second HTTP/1.1\r\nHost: b.example\r\n\r\n",
    "POST /second HTTP/1.1\r\nHost: b.example\r\nContent-Length: 3\r\n\r\nabc",
    "POST /second HTTP/1.1\r\nHost: b.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "GET /sec",
];

const CONTENT_LENGTHS: [&str; 22] = [
    "0",
    "5",
    "005",
    "+5",
    "-5",
    "5, 5",
    "5,5",
    "5, 6",
    "5,",
    ",5",
    "5 5",
    "",
    "0x5",
    "5.0",
    "1e1",
    "99999999999999999999",
    "18446744073709551615",
    "10000000000000000000",
    "0000000000000000000005",
    "9999999999999999999",
    "\"5\"",
    "5;",
];

const TRANSFER_ENCODINGS: [&str; 24] = [
    "chunked",
    "Chunked",
    "CHUNKED",
    "chunked, chunked",
    "gzip, chunked",
    "chunked, gzip",
    "identity",
    "identity, chunked",
    "gzip",
    "chunked,",
    ", chunked",
    "chunked ,",
    "chunked;q=1",
    "chunked ;",
    "chunked\t",
    "\tchunked",
    "xchunked",
    "chunkedx",
    "chunk",
    "",
    "chunked\x0bx",
    "\"chunked\"",
    "chunked, identity",
    "gzip,chunked",
];

const OTHER_FIELDS: [(&str, &str); 5] = [
    ("Connection", "close"),
    ("Connection", "keep-alive"),
    ("Host", "c.example"),
    ("X-Pad", "chunked"),
    ("Content-Type", "text/plain"),
];

const DATA: [&str; 6] = [
    "hello",
    "a",
    "",
    "0\r\n\r\n",
    "GET / HTTP/1.1",
    "0123456789abcdefghij",
];

const SIZE_LITERALS: [&str; 11] = [
    "",
    "g",
    "-1",
    " 5",
    "+5",
    "0x5",
    "ffffffffffffffffff",
    "10000000000000000",
    "0000000000000000005",
    "5 5",
    "\t",
];

const EXTENSIONS: [&str; 9] = [
    "",
    "",
    ";a=b",
    ";a=\"q;x\"",
    " ;a",
    ";",
    ";a\x01b",
    "; a = b",
    ";a\x7fb",
];

const LAST_CHUNKS: [&str; 12] = [
    "0\r\n\r\n",
    "0\r\n\r\n",
    "0;x=y\r\n\r\n",
    "000\r\n\r\n",
    "0\r\nX-T: 1\r\n\r\n",
    "0\r\nX-T: 1\nX-U: 2\r\n\r\n",
    "0\r\nBad Name: x\r\n\r\n",
    "0\r\nX: a\r\n b\r\n\r\n",
    "0\r\n",
    "",
    "0\n\n",
    "0\r\n\n",
];

fn name_case() -> impl Strategy<Value = NameCase> {
    prop_oneof![
        4 => Just(NameCase::Canonical),
        1 => Just(NameCase::Lower),
        1 => Just(NameCase::Upper),
    ]
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        4 => prop_oneof![4 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)].prop_map(Field::LengthOfBody),
        2 => select(&CONTENT_LENGTHS[..]).prop_map(Field::ContentLength),
        3 => Just(Field::TransferEncoding("chunked")),
        3 => select(&TRANSFER_ENCODINGS[..]).prop_map(Field::TransferEncoding),
        1 => select(&OTHER_FIELDS[..]).prop_map(|(n, v)| Field::Other(n, v)),
    ]
}

fn line() -> impl Strategy<Value = Line> {
    (
        field(),
        name_case(),
        prop_oneof![
            24 => Just(": "),
            2 => Just(":"),
            2 => Just(":\t"),
            2 => Just(":  "),
            1 => Just(" : "),
            1 => Just("\t:"),
        ],
        prop_oneof![12 => Just(""), 1 => Just(" "), 1 => Just("\t")],
        prop_oneof![12 => Just("\r\n"), 1 => Just("\n")],
        prop::bool::weighted(0.03),
    )
        .prop_map(|(field, name_case, colon, trailing, eol, folded)| Line {
            field,
            name_case,
            colon,
            trailing,
            eol,
            folded,
        })
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![
        6 => Just(Size::Lower),
        2 => Just(Size::Upper),
        1 => (1usize..=20).prop_map(Size::Zeros),
        1 => prop_oneof![Just(-1i8), Just(1i8)].prop_map(Size::Wrong),
        1 => select(&SIZE_LITERALS[..]).prop_map(Size::Literal),
    ]
}

fn chunk() -> impl Strategy<Value = Chunk> {
    (
        select(&DATA[..]),
        size(),
        select(&EXTENSIONS[..]),
        prop_oneof![12 => Just("\r\n"), 1 => Just("\n"), 1 => Just("\r"), 1 => Just("")],
        prop_oneof![12 => Just("\r\n"), 1 => Just("\n"), 1 => Just(""), 1 => Just("X\r\n")],
    )
        .prop_map(|(data, size, extension, after_size, after_data)| Chunk {
            data,
            size,
            extension,
            after_size,
            after_data,
        })
}

fn body() -> impl Strategy<Value = BodySpec> {
    prop_oneof![
        1 => Just(BodySpec::None),
        2 => select(&DATA[..]).prop_map(BodySpec::Raw),
        4 => (prop::collection::vec(chunk(), 0..3), select(&LAST_CHUNKS[..]))
            .prop_map(|(chunks, last)| BodySpec::Chunked(chunks, last)),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bytes that matter to framing, more often than any other byte.
    let byte = prop_oneof![
        3 => select(&b"\r\n \t:,;0aF\"\x00\x0b\x7f\x80"[..]),
        1 => any::<u8>(),
    ];
    prop_oneof![
        4 => (any::<Index>(), byte.clone()).prop_map(|(at, b)| Mutation::Replace(at, b)),
        2 => (any::<Index>(), byte).prop_map(|(at, b)| Mutation::Insert(at, b)),
        2 => any::<Index>().prop_map(Mutation::Delete),
        1 => (any::<Index>(), 1usize..8).prop_map(|(at, n)| Mutation::Duplicate(at, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

/// The strategy: two cases in three straight from the grammar, the rest mutated.
pub fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            8 => select(&["GET", "POST", "PUT", "HEAD", "DELETE", "PATCH"][..]),
            1 => Just("CONNECT"),
        ],
        prop_oneof![
            8 => select(&["/", "/first", "/a?b=1"][..]),
            1 => select(&["http://a.example/abs", "*", "a.example:443"][..]),
        ],
        prop_oneof![9 => Just("HTTP/1.1"), 1 => Just("HTTP/1.0")],
        prop_oneof![
            1 => prop::collection::vec(line(), 0..=1),
            3 => prop::collection::vec(line(), 1..=2),
            1 => prop::collection::vec(line(), 3..=4),
        ],
        body(),
        select(&NEXT[..]),
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::collection::vec((mutation(), any::<bool>()), 1..4),
        ],
    )
        .prop_map(
            |(method, target, version, fields, body, next, mutations)| Case {
                method,
                target,
                version,
                fields,
                body,
                next,
                mutations,
            },
        )
}

impl Case {
    /// The bytes sent on the connection.
    pub fn bytes(&self) -> Vec<u8> {
        let body = self.body.bytes();
        let mut out = format!(
            "{} {} {}\r\nHost: a.example\r\n",
            self.method, self.target, self.version
        )
        .into_bytes();
        for line in &self.fields {
            line.write(body.len(), &mut out);
        }
        out.extend_from_slice(b"\r\n");
        let head_len = out.len();
        out.extend_from_slice(&body);
        out.extend_from_slice(self.next.as_bytes());
        for (mutation, after_head) in &self.mutations {
            let from = if *after_head { head_len } else { 0 };
            let mut tail = out.split_off(from.min(out.len()));
            mutation.apply(&mut tail);
            out.append(&mut tail);
        }
        out
    }
}

impl Line {
    fn write(&self, body_len: usize, out: &mut Vec<u8>) {
        let length;
        let (name, value) = match &self.field {
            Field::LengthOfBody(delta) => {
                length = (body_len as i64 + i64::from(*delta)).max(0).to_string();
                ("Content-Length", length.as_str())
            }
            Field::ContentLength(value) => ("Content-Length", *value),
            Field::TransferEncoding(value) => ("Transfer-Encoding", *value),
            Field::Other(name, value) => (*name, *value),
        };
        let name = match self.name_case {
            NameCase::Canonical => name.to_string(),
            NameCase::Lower => name.to_ascii_lowercase(),
            NameCase::Upper => name.to_ascii_uppercase(),
        };
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(self.colon.as_bytes());
        match value.split_once(' ').filter(|_| self.folded) {
            Some((first, rest)) => {
                out.extend_from_slice(first.as_bytes());
                out.extend_from_slice(b"\r\n ");
                out.extend_from_slice(rest.as_bytes());
            }
            None if self.folded => {
                out.extend_from_slice(b"\r\n ");
                out.extend_from_slice(value.as_bytes());
            }
            None => out.extend_from_slice(value.as_bytes()),
        }
        out.extend_from_slice(self.trailing.as_bytes());
        out.extend_from_slice(self.eol.as_bytes());
    }
}

impl BodySpec {
    fn bytes(&self) -> Vec<u8> {
        match self {
            BodySpec::None => Vec::new(),
            BodySpec::Raw(data) => data.as_bytes().to_vec(),
            BodySpec::Chunked(chunks, last) => {
                let mut out = Vec::new();
                for chunk in chunks {
                    chunk.write(&mut out);
                }
                out.extend_from_slice(last.as_bytes());
                out
            }
        }
    }
}

impl Chunk {
    fn write(&self, out: &mut Vec<u8>) {
        let len = self.data.len();
        let size = match &self.size {
            Size::Lower => format!("{len:x}"),
            Size::Upper => format!("{len:X}"),
            Size::Zeros(n) => format!("{}{len:x}", "0".repeat(*n)),
            Size::Wrong(delta) => format!("{:x}", (len as i64 + i64::from(*delta)).max(0)),
            Size::Literal(text) => text.to_string(),
        };
        out.extend_from_slice(size.as_bytes());
        out.extend_from_slice(self.extension.as_bytes());
        out.extend_from_slice(self.after_size.as_bytes());
        out.extend_from_slice(self.data.as_bytes());
        out.extend_from_slice(self.after_data.as_bytes());
    }
}

impl Mutation {
    fn apply(&self, bytes: &mut Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        match self {
            Mutation::Replace(at, b) => {
                let i = at.index(bytes.len());
                bytes[i] = *b;
            }
            Mutation::Insert(at, b) => bytes.insert(at.index(bytes.len() + 1), *b),
            Mutation::Delete(at) => {
                bytes.remove(at.index(bytes.len()));
            }
            Mutation::Duplicate(at, n) => {
                let start = at.index(bytes.len());
                let end = (start + n).min(bytes.len());
                let copy = bytes[start..end].to_vec();
                bytes.splice(end..end, copy);
            }
            Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        }
    }
}
