//! Server-sent events framing: bytes as they arrive (split anywhere, even inside a line) in,
//! each complete event's `data` out.
//!
//! Only what an OpenAI-compatible stream uses is decoded: `data:` lines (one optional space
//! after the colon; several in one event are joined with `\n`), lines ending in `\n` or `\r\n`,
//! a blank line ending the event. Comments (`:` lines) and other fields (`event:`, `id:`,
//! `retry:`) are skipped. That is the whole of the format a client of these servers needs, so
//! it is decoded here rather than through a general event-source crate.

/// Incremental decoder of one event stream.
#[derive(Debug, Default)]
pub struct EventDecoder {
    /// Bytes of the line not yet ended.
    line: Vec<u8>,
    /// `data` of the event not yet ended.
    data: Vec<u8>,
    /// Whether the event not yet ended had a `data` line (an empty one counts).
    has_data: bool,
}

impl EventDecoder {
    /// Feed the next bytes of the stream; `on_event` gets the data of each event they complete,
    /// in order.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_event: impl FnMut(&str)) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&bytes[..end]);
            bytes = &bytes[end + 1..];
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.end_line(&line, &mut on_event);
            // Reuse the allocation for the next line.
            line.clear();
            self.line = line;
        }
        self.line.extend_from_slice(bytes);
    }

    /// The stream has ended: the data of an event the server did not close with a blank line,
    /// if there is one.
    pub fn finish(&mut self) -> Option<String> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.end_line(&line, &mut |_: &str| {});
        }
        self.has_data.then(|| self.take_event())
    }

    fn end_line(&mut self, line: &[u8], on_event: &mut impl FnMut(&str)) {
        if line.is_empty() {
            if self.has_data {
                let event = self.take_event();
                on_event(&event);
            }
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
    }

    fn take_event(&mut self) -> String {
        self.has_data = false;
        let data = std::mem::take(&mut self.data);
        String::from_utf8(data).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }
}
