//! What one event of an OpenAI-compatible stream says: `[DONE]`; a chunk that carries
//! generated text (or not); the usage chunk (`stream_options.include_usage`) with the server's
//! token counts; or an error the server reported mid-stream (vLLM sends
//! `data: {"error": {...}}` and ends the stream).
//!
//! Generated text is `choices[].delta.content` (chat) or `choices[].text` (completions);
//! `delta.reasoning_content`, which reasoning models stream before the answer, counts too — it
//! is the first token the user waits for. Role-only and empty deltas carry no text.

use serde_json::Value;

/// The server's token counts, from the usage chunk. Each is absent when the server left it out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// `usage.prompt_tokens`.
    pub prompt_tokens: Option<u64>,
    /// `usage.completion_tokens`.
    pub completion_tokens: Option<u64>,
    /// `usage.prompt_tokens_details.cached_tokens`: prompt tokens served from the prefix cache.
    pub cached_tokens: Option<u64>,
}

/// One event, interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// `[DONE]`: the answer is complete.
    Done,
    /// A chunk of the answer.
    Data {
        /// Whether it carries generated text.
        content: bool,
        /// The token counts, if this is the usage chunk.
        usage: Option<Usage>,
    },
    /// The server reported an error instead of the rest of the answer.
    Error(String),
}

/// Interpret one event's data; an error says why it is not an OpenAI chunk.
pub fn interpret(data: &str) -> Result<Chunk, String> {
    if data.trim() == "[DONE]" {
        return Ok(Chunk::Done);
    }
    let value: Value = serde_json::from_str(data)
        .map_err(|e| format!("an event is not JSON ({e}): {}", truncated(data)))?;
    let Some(object) = value.as_object() else {
        return Err(format!(
            "an event is not a JSON object: {}",
            truncated(data)
        ));
    };
    if let Some(error) = object.get("error").filter(|e| !e.is_null()) {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| error.to_string());
        return Ok(Chunk::Error(message));
    }
    let content = object
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|choices| choices.iter().any(carries_text));
    let usage = object
        .get("usage")
        .filter(|u| u.is_object())
        .map(|u| Usage {
            prompt_tokens: u.get("prompt_tokens").and_then(Value::as_u64),
            completion_tokens: u.get("completion_tokens").and_then(Value::as_u64),
            cached_tokens: u
                .get("prompt_tokens_details")
                .and_then(|d| d.get("cached_tokens"))
                .and_then(Value::as_u64),
        });
    Ok(Chunk::Data { content, usage })
}

fn carries_text(choice: &Value) -> bool {
    let non_empty = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    let delta = choice.get("delta");
    non_empty(choice.get("text"))
        || non_empty(delta.and_then(|d| d.get("content")))
        || non_empty(delta.and_then(|d| d.get("reasoning_content")))
}

/// At most the first 200 bytes of `data`, for an error message.
fn truncated(data: &str) -> &str {
    let mut end = data.len().min(200);
    while !data.is_char_boundary(end) {
        end -= 1;
    }
    &data[..end]
}
