"""A simulated vLLM replica (or lbx in front of replicas) called with PyPI's official `openai`
SDK, which parses the Server-Sent Events itself; prints one JSON object with what it saw.

    stream     a streamed chat completion with stream_options.include_usage: each chunk's
               content and finish reason, the usage chunk, and the time to the first content
    whole      the same conversation not streamed, and a text completion
    errors     an unknown model (the SDK's NotFoundError) and the model list

Run: python3 openai_client.py BASE_URL MODEL
"""

import json
import sys
import time

import openai
from openai import OpenAI

BASE_URL, MODEL = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=BASE_URL, api_key="unused", max_retries=0, timeout=30)
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. " * 40},
    {"role": "user", "content": "Tell me about prefix caching."},
]


def stream():
    started = time.monotonic()
    first = None
    contents, finishes, usage, roles = [], [], None, []
    for chunk in client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                first = first if first is not None else time.monotonic() - started
                contents.append(choice.delta.content)
            finishes.append(choice.finish_reason)
    return {
        "contents": contents,
        "finishes": finishes,
        "roles": roles,
        "usage": usage,
        "ttft_ms": (first or 0) * 1000,
    }


def whole():
    chat = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=24)
    text = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    return {
        "chat": chat.choices[0].message.content,
        "chat_finish": chat.choices[0].finish_reason,
        "chat_usage": chat.usage.model_dump(),
        "text": text.choices[0].text,
        "text_usage": text.usage.model_dump(),
    }


def errors():
    try:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
        missing = None
    except openai.NotFoundError as error:
        missing = {"status": error.status_code, "body": error.body}
    return {"missing": missing, "models": [m.id for m in client.models.list()]}


print(json.dumps({"stream": stream(), "whole": whole(), "errors": errors()}))
