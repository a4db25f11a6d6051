//! What the replica answers, in the shapes vLLM's OpenAI-compatible server writes: a whole chat
//! or text completion, the chunks of a stream (the chat's opening role chunk, one chunk per
//! token, the usage chunk), and the model list. Fields are written in vLLM's order.

use serde::Serialize;
use serde_json::{Value, json};

use super::engine::Usage;
use super::openai::Endpoint;

/// The identity of one answer, repeated in each of its chunks.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Which endpoint it answers.
    pub endpoint: Endpoint,
    /// `chatcmpl-…` or `cmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model as the request named it.
    pub model: String,
}

impl Answer {
    /// A new answer; `unique` makes its id.
    pub fn new(endpoint: Endpoint, unique: &str, created: u64, model: String) -> Self {
        let prefix = match endpoint {
            Endpoint::Chat => "chatcmpl",
            Endpoint::Completion => "cmpl",
        };
        Self {
            endpoint,
            id: format!("{prefix}-{unique}"),
            created,
            model,
        }
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completion, _) => "text_completion",
        }
    }

    fn write<C: Serialize>(&self, chunk: bool, choices: C, usage: Option<Usage>) -> String {
        let envelope = Envelope {
            id: &self.id,
            object: self.object(chunk),
            created: self.created,
            model: &self.model,
            choices,
            usage: usage.map(UsageBody::from),
        };
        serde_json::to_string(&envelope).expect("plain data serialises")
    }

    /// The chunk a chat stream starts with (the assistant's role); none for completions.
    pub fn opening_chunk(&self) -> Option<String> {
        (self.endpoint == Endpoint::Chat).then(|| {
            let delta = Delta {
                role: Some("assistant"),
                content: "",
            };
            self.write(true, [ChunkChoice::chat(delta, None)], None)
        })
    }

    /// The chunk carrying `token`; the last one carries the finish reason.
    pub fn token_chunk(&self, token: &str, last: bool) -> String {
        let finish = last.then_some("length");
        match self.endpoint {
            Endpoint::Chat => {
                let delta = Delta {
                    role: None,
                    content: token,
                };
                self.write(true, [ChunkChoice::chat(delta, finish)], None)
            }
            Endpoint::Completion => self.write(true, [TextChoice::new(token, finish)], None),
        }
    }

    /// The stream's last chunk when usage was asked for: no choices, the usage.
    pub fn usage_chunk(&self, usage: Usage) -> String {
        self.write(true, [(); 0], Some(usage))
    }

    /// The whole answer, not streamed.
    pub fn complete(&self, text: &str, usage: Usage) -> String {
        match self.endpoint {
            Endpoint::Chat => {
                let choice = MessageChoice {
                    index: 0,
                    message: Message {
                        role: "assistant",
                        content: text,
                    },
                    logprobs: (),
                    finish_reason: "length",
                    stop_reason: (),
                };
                self.write(false, [choice], Some(usage))
            }
            Endpoint::Completion => {
                self.write(false, [TextChoice::new(text, Some("length"))], Some(usage))
            }
        }
    }
}

// The answers' shapes, fields in vLLM's order (`()` is written as null).

#[derive(Serialize)]
struct Envelope<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: C,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageBody>,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    content: &'a str,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: (),
    finish_reason: Option<&'static str>,
}

impl<'a> ChunkChoice<'a> {
    fn chat(delta: Delta<'a>, finish_reason: Option<&'static str>) -> Self {
        Self {
            index: 0,
            delta,
            logprobs: (),
            finish_reason,
        }
    }
}

#[derive(Serialize)]
struct TextChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: (),
    finish_reason: Option<&'static str>,
    stop_reason: (),
}

impl<'a> TextChoice<'a> {
    fn new(text: &'a str, finish_reason: Option<&'static str>) -> Self {
        Self {
            index: 0,
            text,
            logprobs: (),
            finish_reason,
            stop_reason: (),
        }
    }
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct MessageChoice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: (),
    finish_reason: &'static str,
    stop_reason: (),
}

#[derive(Serialize)]
struct UsageBody {
    prompt_tokens: usize,
    total_tokens: usize,
    completion_tokens: usize,
    prompt_tokens_details: CachedTokens,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: usize,
}

impl From<Usage> for UsageBody {
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
            completion_tokens: usage.completion_tokens,
            prompt_tokens_details: CachedTokens {
                cached_tokens: usage.cached_tokens,
            },
        }
    }
}

/// `GET /v1/models`: every served name, each `max_model_len` long.
pub fn model_list(models: &[String], created: u64, max_model_len: usize) -> Value {
    let data: Vec<Value> = models
        .iter()
        .map(|id| {
            json!({
                "id": id,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": models[0],
                "parent": null,
                "max_model_len": max_model_len,
            })
        })
        .collect();
    json!({"object": "list", "data": data})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: String) -> Value {
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn chunks_have_openais_shape() {
        let answer = Answer::new(Endpoint::Chat, "1", 5, "m".into());
        let opening = answer.opening_chunk().unwrap();
        assert!(
            opening.starts_with(r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#),
            "{opening}"
        );
        let opening = value(opening);
        assert_eq!(opening["object"], "chat.completion.chunk");
        assert_eq!(opening["choices"][0]["delta"]["role"], "assistant");
        let last = value(answer.token_chunk(" the", true));
        assert_eq!(last["choices"][0]["delta"]["content"], " the");
        assert_eq!(last["choices"][0]["finish_reason"], "length");
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 2,
            cached_tokens: 8,
        };
        let chunk = value(answer.usage_chunk(usage));
        assert_eq!(chunk["choices"], json!([]));
        assert_eq!(chunk["usage"]["total_tokens"], 12);
        assert_eq!(chunk["usage"]["prompt_tokens_details"]["cached_tokens"], 8);
        let whole =
            value(Answer::new(Endpoint::Completion, "2", 5, "m".into()).complete("ab", usage));
        assert_eq!(whole["id"], "cmpl-2");
        assert_eq!(whole["object"], "text_completion");
        assert_eq!(whole["choices"][0]["text"], "ab");
    }
}
