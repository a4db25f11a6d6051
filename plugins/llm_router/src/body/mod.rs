//! Reading an OpenAI-style request body (`/v1/chat/completions`, `/v1/completions`) for what
//! routing needs: the `model` and the prompt, as one byte stream whose blocks are hashed for
//! prefix affinity.
//!
//! The body is the prefix lbx read ahead, so it is often cut off, and clients order fields as
//! they like (openai-python sends `messages` before `model`). serde_json cannot hand over the
//! part of a string before the cut, and the cut-off last message is exactly the prompt's
//! longest known prefix, so this is a small streaming reader of its own: one pass, left to
//! right, emitting prompt bytes as it decodes them and stopping — never failing — at the first
//! byte it cannot use (the cut, or anything that is not JSON). It validates only what it reads;
//! values it does not need are skipped by bracket counting.
//!
//! **The prompt stream.** `prompt` (a string, or an array of strings or token ids) is emitted
//! as decoded, each array element followed by [`PART_END`]. Each message of `messages`
//! contributes its content (a string, or the `text` of each part of an array), then
//! [`ROLE_START`], its `role`, [`MESSAGE_END`]. The role comes *after* the content and only once
//! the message's object is closed, so that a system prompt and a user message with the same
//! text differ, and so that a body cut anywhere — even inside a message whose `role` comes
//! after its `content` — yields a prefix of the whole body's stream ([`read`]'s guarantee,
//! checked by property tests). Escapes are decoded, so `"\u00e9"` and `"é"` stream the same.

mod scan;

use std::borrow::Cow;

/// Ends each element of a `prompt` array.
pub const PART_END: u8 = 0x1e;
/// Starts the role trailer of a message.
pub const ROLE_START: u8 = 0x1f;
/// Ends a message (after its role).
pub const MESSAGE_END: u8 = 0x1d;

/// Longest role kept; longer ones are cut (consistently, so they still compare equal).
const MAX_ROLE_BYTES: usize = 32;

/// Reads `body`: returns its top-level `model` if a complete string one came before the body
/// ended or turned invalid, and leaves the prompt stream in `prompt` (cleared first).
///
/// Never fails: a body that is not JSON gives no model and an empty prompt. For any `body` and
/// any cut `n`, the prompt of `body[..n]` is a prefix of the prompt of `body`.
pub fn read<'a>(body: &'a [u8], prompt: &mut Vec<u8>) -> Option<Cow<'a, str>> {
    prompt.clear();
    let mut model = None;
    // Stopping is the normal end of a cut-off body: what was read so far is the answer.
    let _ = Reader { bytes: body, at: 0 }.top_level(&mut model, prompt);
    model
}

/// Why reading stopped: the body ended, or the next byte is not what JSON allows there. Both
/// end the read the same way; the reason is kept for tests and debugging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    End,
    Invalid,
}

type Step<T = ()> = Result<T, Stop>;

/// The top-level members the router reads; every other member is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Model,
    Prompt,
    Messages,
    Other,
}

/// A role, kept inline: roles are short, and a message must not allocate.
#[derive(Debug, Clone, Copy)]
struct Role {
    bytes: [u8; MAX_ROLE_BYTES],
    len: usize,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn top_level(&mut self, model: &mut Option<Cow<'a, str>>, prompt: &mut Vec<u8>) -> Step {
        self.object(|reader, name| {
            let member = match &*name {
                b"model" => Member::Model,
                b"prompt" => Member::Prompt,
                b"messages" => Member::Messages,
                _ => Member::Other,
            };
            match member {
                Member::Model if model.is_none() && reader.peek()? == b'"' => {
                    let value = reader.string()?;
                    *model = match value {
                        Cow::Borrowed(bytes) => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
                        Cow::Owned(bytes) => String::from_utf8(bytes).ok().map(Cow::Owned),
                    };
                    Ok(())
                }
                Member::Prompt => reader.prompt(prompt),
                Member::Messages => reader.messages(prompt),
                Member::Model | Member::Other => reader.skip_value(),
            }
        })
    }

    /// `prompt`: a string, or an array of strings or token ids (each followed by `PART_END`).
    fn prompt(&mut self, out: &mut Vec<u8>) -> Step {
        match self.peek()? {
            b'"' => self.string_into(out),
            b'[' => self.array(|reader| match reader.peek()? {
                b'"' => {
                    reader.string_into(out)?;
                    out.push(PART_END);
                    Ok(())
                }
                b'-' | b'0'..=b'9' => {
                    let token = reader.scalar()?;
                    out.extend_from_slice(token);
                    out.push(PART_END);
                    Ok(())
                }
                _ => reader.skip_value(),
            }),
            _ => self.skip_value(),
        }
    }

    /// `messages`: an array of `{role, content}` objects.
    fn messages(&mut self, out: &mut Vec<u8>) -> Step {
        if self.peek()? != b'[' {
            return self.skip_value();
        }
        self.array(|reader| {
            if reader.peek()? != b'{' {
                return reader.skip_value();
            }
            let mut role = Role {
                bytes: [0; MAX_ROLE_BYTES],
                len: 0,
            };
            reader.object(|reader, name| match &*name {
                b"content" => reader.content(out),
                b"role" if reader.peek()? == b'"' => {
                    let value = reader.string()?;
                    role.len = value.len().min(MAX_ROLE_BYTES);
                    role.bytes[..role.len].copy_from_slice(&value[..role.len]);
                    Ok(())
                }
                _ => reader.skip_value(),
            })?;
            // Only a closed message has its role for sure: emitting it here keeps a cut-off
            // body's stream a prefix of the whole body's.
            out.push(ROLE_START);
            out.extend_from_slice(&role.bytes[..role.len]);
            out.push(MESSAGE_END);
            Ok(())
        })
    }

    /// A message's `content`: a string, or an array of parts whose `text` (or plain strings)
    /// are emitted back to back.
    fn content(&mut self, out: &mut Vec<u8>) -> Step {
        match self.peek()? {
            b'"' => self.string_into(out),
            b'[' => self.array(|reader| match reader.peek()? {
                b'"' => reader.string_into(out),
                b'{' => reader.object(|reader, name| match &*name {
                    b"text" if reader.peek()? == b'"' => reader.string_into(out),
                    _ => reader.skip_value(),
                }),
                _ => reader.skip_value(),
            }),
            _ => self.skip_value(),
        }
    }

    /// An object at the current byte: for each member, `member(reader, name)` with the reader
    /// at the member's value, which it must consume.
    fn object(&mut self, mut member: impl FnMut(&mut Self, Cow<'a, [u8]>) -> Step) -> Step {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Ok(());
        }
        loop {
            if self.peek()? != b'"' {
                return Err(Stop::Invalid);
            }
            let name = self.string()?;
            self.expect(b':')?;
            self.peek()?;
            member(self, name)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Invalid),
            }
        }
    }

    /// An array at the current byte: `element(reader)` for each element, which it must consume.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Step) -> Step {
        self.expect(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.peek()?;
            element(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Invalid),
            }
        }
    }

    /// Skips one value of any kind, counting brackets instead of recursing (a hostile body
    /// cannot exhaust the stack). It does not validate what it skips.
    fn skip_value(&mut self) -> Step {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => self.skip_string()?,
                b'{' | b'[' => {
                    self.at += 1;
                    depth += 1;
                    continue;
                }
                b'}' | b']' if depth > 0 => {
                    self.at += 1;
                    depth -= 1;
                }
                b',' | b':' if depth > 0 => {
                    self.at += 1;
                    continue;
                }
                b'}' | b']' | b',' | b':' => return Err(Stop::Invalid),
                _ => {
                    self.scalar()?;
                }
            }
            if depth == 0 {
                return Ok(());
            }
        }
    }

    /// A number or literal: the bytes up to the next delimiter. Reaching the end of the body
    /// is a stop: the scalar may go on after the cut.
    fn scalar(&mut self) -> Step<&'a [u8]> {
        let start = self.at;
        let len = self.bytes[start..]
            .iter()
            .position(|&b| matches!(b, b',' | b'}' | b']' | b':' | b' ' | b'\t' | b'\n' | b'\r'))
            .ok_or(Stop::End)?;
        self.at += len;
        Ok(&self.bytes[start..start + len])
    }

    /// Skips a string at the current byte (its opening quote).
    fn skip_string(&mut self) -> Step {
        self.at += 1;
        loop {
            let rest = &self.bytes[self.at..];
            let found = scan::quote_or_backslash(rest).ok_or(Stop::End)?;
            if rest[found] == b'"' {
                self.at += found + 1;
                return Ok(());
            }
            // An escape: whatever follows the backslash cannot end the string.
            if found + 2 > rest.len() {
                return Err(Stop::End);
            }
            self.at += found + 2;
        }
    }

    /// A string at the current byte, decoded; borrowed when it holds no escape.
    fn string(&mut self) -> Step<Cow<'a, [u8]>> {
        let rest = &self.bytes[self.at + 1..];
        let found = scan::quote_or_backslash(rest).ok_or(Stop::End)?;
        if rest[found] == b'"' {
            self.at += found + 2;
            return Ok(Cow::Borrowed(&rest[..found]));
        }
        let mut decoded = Vec::new();
        self.string_into(&mut decoded)?;
        Ok(Cow::Owned(decoded))
    }

    /// Decodes a string at the current byte (its opening quote) onto `out`. Stopped by the end
    /// of the body, it leaves on `out` everything decoded up to there, and nothing of an
    /// escape sequence the cut went through.
    fn string_into(&mut self, out: &mut Vec<u8>) -> Step {
        self.at += 1;
        loop {
            let rest = &self.bytes[self.at..];
            let Some(found) = scan::quote_or_backslash(rest) else {
                out.extend_from_slice(rest);
                self.at = self.bytes.len();
                return Err(Stop::End);
            };
            out.extend_from_slice(&rest[..found]);
            self.at += found + 1;
            if rest[found] == b'"' {
                return Ok(());
            }
            self.escape(out)?;
        }
    }

    /// Decodes the escape after a backslash (already consumed) onto `out`.
    fn escape(&mut self, out: &mut Vec<u8>) -> Step {
        let byte = *self.bytes.get(self.at).ok_or(Stop::End)?;
        let simple = match byte {
            b'"' | b'\\' | b'/' => Some(byte),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return Err(Stop::Invalid),
        };
        if let Some(decoded) = simple {
            out.push(decoded);
            self.at += 1;
            return Ok(());
        }
        let unit = self.hex4(self.at + 1)?;
        self.at += 5;
        let scalar = match unit {
            0xd800..=0xdbff => {
                // A high surrogate pairs with an escaped low one right after it; decide only
                // once those six bytes are there, so a cut never changes the answer.
                if self.at + 6 > self.bytes.len() {
                    return Err(Stop::End);
                }
                let low = if self.bytes[self.at..].starts_with(b"\\u") {
                    self.hex4(self.at + 2)?
                } else {
                    0
                };
                if (0xdc00..=0xdfff).contains(&low) {
                    self.at += 6;
                    0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                } else {
                    u32::from(char::REPLACEMENT_CHARACTER)
                }
            }
            0xdc00..=0xdfff => u32::from(char::REPLACEMENT_CHARACTER),
            other => other,
        };
        let c = char::from_u32(scalar).unwrap_or(char::REPLACEMENT_CHARACTER);
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }

    /// The four hex digits at `at`, as a number.
    fn hex4(&self, at: usize) -> Step<u32> {
        let digits = self.bytes.get(at..at + 4).ok_or(Stop::End)?;
        digits.iter().try_fold(0u32, |value, &d| {
            let digit = char::from(d).to_digit(16).ok_or(Stop::Invalid)?;
            Ok(value << 4 | digit)
        })
    }

    /// Skips whitespace and returns the next byte without consuming it.
    fn peek(&mut self) -> Step<u8> {
        while let Some(&byte) = self.bytes.get(self.at) {
            if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
                return Ok(byte);
            }
            self.at += 1;
        }
        Err(Stop::End)
    }

    /// Consumes `byte` (after whitespace), or stops.
    fn expect(&mut self, byte: u8) -> Step {
        if self.peek()? == byte {
            self.at += 1;
            Ok(())
        } else {
            Err(Stop::Invalid)
        }
    }
}

#[cfg(test)]
mod tests;
