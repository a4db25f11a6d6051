//! A planned request as the JSON body of an OpenAI request: always streamed
//! (`"stream": true`), asking for the usage chunk at the end (`stream_options.include_usage`),
//! which carries the server's own token counts and, from vLLM and the simulator, the prompt
//! tokens it found in its prefix cache.
//!
//! `model` comes first and the prompt right after it, so a router that reads only the first
//! few KiB of the body (lbx's `[plugin] body_prefix`) sees the model and as much of the shared
//! prefix as fits; `max_tokens` and the streaming options follow the prompt.

use bytes::Bytes;
use serde::Serialize;

use super::settings::Api;
use super::workload::PlannedRequest;

#[derive(Serialize)]
struct ChatBody<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    max_tokens: u32,
    stream: bool,
    stream_options: StreamOptions,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct CompletionBody<'a> {
    model: &'a str,
    prompt: &'a str,
    max_tokens: u32,
    stream: bool,
    stream_options: StreamOptions,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

const STREAM_OPTIONS: StreamOptions = StreamOptions {
    include_usage: true,
};

/// The request body for `api`.
pub fn render(api: Api, model: &str, request: &PlannedRequest) -> Bytes {
    let json = match api {
        Api::Chat => serde_json::to_vec(&ChatBody {
            model,
            messages: request
                .messages
                .iter()
                .map(|m| ChatMessage {
                    role: m.role.as_str(),
                    content: &m.content,
                })
                .collect(),
            max_tokens: request.max_tokens,
            stream: true,
            stream_options: STREAM_OPTIONS,
        }),
        Api::Completions => serde_json::to_vec(&CompletionBody {
            model,
            prompt: &request.prompt_text(),
            max_tokens: request.max_tokens,
            stream: true,
            stream_options: STREAM_OPTIONS,
        }),
    };
    Bytes::from(json.expect("strings and numbers always serialise"))
}
