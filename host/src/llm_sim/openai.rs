//! What clients send, as vLLM's OpenAI-compatible server reads it: the requests it accepts
//! (`/v1/chat/completions`, `/v1/completions`), the prompt text each one gives the model, and
//! the errors that refuse one (`{"error": {"message", "type", "param", "code"}}`, vLLM's
//! `ErrorResponse`). What the replica answers is in `answer.rs`.
//!
//! Requests are read leniently where OpenAI clients vary (unknown fields are ignored, `model`
//! may be left out for the first served model, `content` may be a string or a list of text
//! parts) and strictly where the simulation needs a number: a wrong type is refused with 400
//! naming its path (`messages[1].content: invalid type: integer ...`).
//!
//! **Chat template**: Llama 3's, without the system message it adds by default:
//! `<|begin_of_text|>` then, per message,
//! `<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>`, then the generation
//! prompt `<|start_header_id|>assistant<|end_header_id|>\n\n`. Content is not trimmed (Llama's
//! template trims it), so a reply sent back in the next turn keeps the tokens it was generated
//! as, and the conversation's blocks stay shared.

use serde::Deserialize;
use serde_json::{Value, json};

/// The two generation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/completions`.
    Completion,
}

/// A refused request: its status and vLLM's error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// 400, 404, 413 or 503.
    pub status: u16,
    /// What is wrong, for a person.
    pub message: String,
    /// The request field at fault, if one is.
    pub param: Option<&'static str>,
}

impl ApiError {
    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self {
            status: 400,
            message: message.into(),
            param,
        }
    }

    /// The JSON body vLLM answers with.
    pub fn body(&self) -> Value {
        let kind = match self.status {
            404 => "NotFoundError",
            413 => "RequestEntityTooLarge",
            503 => "ServiceUnavailableError",
            _ => "BadRequestError",
        };
        json!({
            "error": {
                "message": self.message,
                "type": kind,
                "param": self.param,
                "code": self.status,
            }
        })
    }
}

/// What a generation request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    /// The model named, if any.
    pub model: Option<String>,
    /// The text the model is given (after the chat template, for chat).
    pub prompt: String,
    /// `max_tokens` (or `max_completion_tokens`), if set.
    pub max_tokens: Option<u64>,
    /// Answer as Server-Sent Events.
    pub stream: bool,
    /// With `stream`, end with a chunk carrying `usage`.
    pub include_usage: bool,
}

#[derive(Deserialize)]
struct ChatBody {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<ChatMessage>,
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<Value>,
}

#[derive(Deserialize)]
struct CompletionBody {
    #[serde(default)]
    model: Option<String>,
    prompt: Value,
}

/// The fields both endpoints share, read from the same object (not `#[serde(flatten)]`, which
/// would lose the path of a field of the wrong type).
#[derive(Deserialize)]
struct Common {
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    n: Option<u64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    /// vLLM's default when `stream_options` is given.
    #[serde(default = "yes")]
    include_usage: Option<bool>,
}

fn yes() -> Option<bool> {
    Some(true)
}

/// Read a request body for `endpoint`.
pub fn parse(endpoint: Endpoint, body: &[u8]) -> Result<GenerationRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}"), None))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the body must be a JSON object",
            None,
        ));
    }
    let common: Common = decode(value.clone())?;
    match endpoint {
        Endpoint::Chat => {
            let body: ChatBody = decode(value)?;
            if body.messages.is_empty() {
                return Err(ApiError::bad_request(
                    "messages must hold at least one message",
                    Some("messages"),
                ));
            }
            let prompt = chat_prompt(&body.messages)?;
            request(body.model, prompt, common)
        }
        Endpoint::Completion => {
            let body: CompletionBody = decode(value)?;
            let prompt = completion_prompt(&body.prompt)?;
            request(body.model, prompt, common)
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        };
        ApiError::bad_request(message, None)
    })
}

fn request(
    model: Option<String>,
    prompt: String,
    common: Common,
) -> Result<GenerationRequest, ApiError> {
    if common.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request(
            "n must be 1: the simulator generates one choice per request",
            Some("n"),
        ));
    }
    let stream = common.stream.unwrap_or(false);
    Ok(GenerationRequest {
        model,
        prompt,
        max_tokens: common.max_completion_tokens.or(common.max_tokens),
        stream,
        include_usage: stream
            && common
                .stream_options
                .is_some_and(|o| o.include_usage.unwrap_or(false)),
    })
}

/// The chat template applied to `messages`.
fn chat_prompt(messages: &[ChatMessage]) -> Result<String, ApiError> {
    let mut prompt = String::from("<|begin_of_text|>");
    for (i, message) in messages.iter().enumerate() {
        let content = match &message.content {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => text_parts(i, parts)?,
            Some(_) => {
                return Err(ApiError::bad_request(
                    format!("messages[{i}].content must be a string or a list of content parts"),
                    Some("messages"),
                ));
            }
        };
        prompt.push_str("<|start_header_id|>");
        prompt.push_str(&message.role);
        prompt.push_str("<|end_header_id|>\n\n");
        prompt.push_str(&content);
        prompt.push_str("<|eot_id|>");
    }
    prompt.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
    Ok(prompt)
}

/// The text parts of a message's content, joined by newlines as vLLM joins them; parts of other
/// types (images, audio) carry no text here.
fn text_parts(message: usize, parts: &[Value]) -> Result<String, ApiError> {
    let mut texts = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => match part.get("text").and_then(Value::as_str) {
                Some(text) => texts.push(text),
                None => {
                    return Err(ApiError::bad_request(
                        format!("messages[{message}].content[{j}].text must be a string"),
                        Some("messages"),
                    ));
                }
            },
            Some(_) => {}
            None => {
                return Err(ApiError::bad_request(
                    format!("messages[{message}].content[{j}] has no \"type\""),
                    Some("messages"),
                ));
            }
        }
    }
    Ok(texts.join("\n"))
}

/// A completion's `prompt`: a string, or a list holding one string.
fn completion_prompt(prompt: &Value) -> Result<String, ApiError> {
    match prompt {
        Value::String(text) => Ok(text.clone()),
        Value::Array(items) if items.len() == 1 && items[0].is_string() => {
            Ok(items[0].as_str().unwrap_or_default().to_string())
        }
        _ => Err(ApiError::bad_request(
            "prompt must be a string (or a list holding one string)",
            Some("prompt"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<GenerationRequest, ApiError> {
        parse(Endpoint::Chat, body.as_bytes())
    }

    #[test]
    fn a_chat_request_becomes_the_templated_conversation() {
        let request = chat(
            r#"{"messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": [{"type": "text", "text": "Hi"},
                                                          {"type": "image_url", "image_url": {}},
                                                          {"type": "text", "text": "there"}]}],
                "model": "m", "max_tokens": 7, "stream": true,
                "stream_options": {"include_usage": true}, "temperature": 0.2}"#,
        )
        .unwrap();
        assert_eq!(
            request.prompt,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\
             <|start_header_id|>user<|end_header_id|>\n\nHi\nthere<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        assert_eq!(request.model.as_deref(), Some("m"));
        assert_eq!(request.max_tokens, Some(7));
        assert!(request.stream && request.include_usage);
    }

    #[test]
    fn a_completion_takes_a_string_or_one_string_in_a_list() {
        let a = parse(Endpoint::Completion, br#"{"prompt": "abc"}"#).unwrap();
        let b = parse(
            Endpoint::Completion,
            br#"{"prompt": ["abc"], "max_tokens": 3}"#,
        )
        .unwrap();
        assert_eq!((a.prompt.as_str(), a.model, a.stream), ("abc", None, false));
        assert_eq!((b.prompt.as_str(), b.max_tokens), ("abc", Some(3)));
        assert!(!b.include_usage);
    }

    #[test]
    fn malformed_bodies_are_refused_naming_the_problem() {
        for (endpoint, body, says) in [
            (Endpoint::Chat, "{", "not JSON"),
            (Endpoint::Chat, "[1]", "JSON object"),
            (Endpoint::Chat, "{}", "missing field `messages`"),
            (Endpoint::Chat, r#"{"messages": []}"#, "at least one"),
            (
                Endpoint::Chat,
                r#"{"messages": [{"role": "user", "content": 3}]}"#,
                "messages[0].content",
            ),
            (
                Endpoint::Chat,
                r#"{"messages": [{"content": "x"}]}"#,
                "messages[0]: missing field `role`",
            ),
            (
                Endpoint::Chat,
                r#"{"messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}"#,
                "max_tokens: invalid type",
            ),
            (
                Endpoint::Chat,
                r#"{"messages": [{"role": "user", "content": "x"}], "n": 2}"#,
                "n must be 1",
            ),
            (
                Endpoint::Completion,
                r#"{"prompt": [1, 2]}"#,
                "prompt must be",
            ),
            (
                Endpoint::Completion,
                r#"{"prompt": "x", "stream": "yes"}"#,
                "stream",
            ),
        ] {
            let error = parse(endpoint, body.as_bytes()).unwrap_err();
            assert_eq!(error.status, 400, "{body}");
            assert!(error.message.contains(says), "{body}: {}", error.message);
            assert_eq!(error.body()["error"]["code"], 400);
            assert_eq!(error.body()["error"]["type"], "BadRequestError");
        }
    }
}
