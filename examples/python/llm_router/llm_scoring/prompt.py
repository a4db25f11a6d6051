"""The model and the prompt of an OpenAI-style body (`/v1/chat/completions`, `/v1/completions`),
read from the body prefix lbx read ahead, parsed by Python's `json` (`Request.body_json`).

**The prompt stream.** `prompt` (a string, or an array of strings or token ids) gives each
element followed by `PART_END`. Each message of `messages` gives its content (a string, or the
`text` of each part of an array), then `ROLE_START`, its role, `MESSAGE_END`: so a system
prompt and a user message with the same text differ. The same stream as the Rust plugin's
(plugins/llm_router/src/body), as UTF-8 bytes.

**Simplified:** a body cut at the `[plugin] body_prefix` limit is not JSON, so it gives no model
and no prompt: such a request is routed by load alone, without the model filter. (The Rust
plugin streams the cut body and keeps the prompt read so far.) Size `body_prefix` for your
prompts.
"""

from typing import Any, Optional

#: Ends each element of a `prompt` array.
PART_END = "\x1e"
#: Starts the role trailer of a message.
ROLE_START = "\x1f"
#: Ends a message (after its role).
MESSAGE_END = "\x1d"


def read(body: Any) -> tuple[Optional[str], bytes]:
    """The top-level `model` (None unless a string) and the prompt stream of the parsed `body`
    (empty when it has none, or the body is not a JSON object)."""
    if not isinstance(body, dict):
        return None, b""
    model = body.get("model")
    parts: list[str] = []
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        parts.append(prompt)
    elif isinstance(prompt, list):
        for element in prompt:
            # A token id counts as its decimal text; bool is not a token id.
            if isinstance(element, str) or (isinstance(element, int)
                                            and not isinstance(element, bool)):
                parts.append(f"{element}{PART_END}")
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                _message(message, parts)
    return (model if isinstance(model, str) else None), "".join(parts).encode("utf-8", "replace")


def _message(message: dict, parts: list[str]) -> None:
    content = message.get("content")
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
    role = message.get("role")
    parts.append(f"{ROLE_START}{role if isinstance(role, str) else ''}{MESSAGE_END}")
