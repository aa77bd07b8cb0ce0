"""Building a chat completions request: the speech system prompt, the heard history with each
interrupted reply marked, and the SDK arguments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from bargein.engines.openai_compat._client import Endpoint
from bargein.runtime.history import ChatMessage

__all__ = ["INTERRUPTED_MARKER", "SPEECH_SYSTEM_PROMPT", "build_messages", "request_args"]

INTERRUPTED_MARKER = "[interrupted by the user]"

SPEECH_SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Everything you write is spoken aloud by a speech "
    "synthesizer, so answer in short, plain, conversational sentences. Never use markdown, "
    "lists, headings, emoji, code or links; say numbers and symbols the way a person would. "
    f"An assistant message ending in {INTERRUPTED_MARKER} was cut off by the user: they heard "
    "only the words before the marker, so do not assume they heard the rest. Never write that "
    "marker yourself."
)


def build_messages(
    history: Sequence[ChatMessage], system_prompt: str | None, interrupted_marker: str
) -> list[ChatCompletionMessageParam]:
    """Our speech prompt, then the heard history, with each interrupted assistant reply
    (already cut to what was heard) marked as such."""
    messages: list[ChatCompletionMessageParam] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for message in history:
        if message.role == "assistant":
            content = message.content
            if message.interrupted:
                content = f"{content} {interrupted_marker}".lstrip()
            messages.append({"role": "assistant", "content": content})
        elif message.role == "user":
            messages.append({"role": "user", "content": message.content})
        else:
            messages.append({"role": "system", "content": message.content})
    return messages


def request_args(
    endpoint: Endpoint,
    messages: list[ChatCompletionMessageParam],
    *,
    tools: Sequence[ChatCompletionFunctionToolParam],
    allow_tools: bool,
    temperature: float | None,
    max_tokens: int | None,
) -> dict[str, Any]:
    """Keyword arguments for ``chat.completions.create`` (streamed, with usage)."""
    args: dict[str, Any] = {
        "model": endpoint.model,
        # The SDK walks every message against its TypedDicts before sending (~0.1 ms per
        # message, so a long conversation adds milliseconds to every turn); ours are plain
        # JSON already, so they go in `extra_body`, which is sent as is and sets the same key.
        "messages": [],
        "extra_body": {"messages": messages},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if temperature is not None:
        args["temperature"] = temperature
    if max_tokens is not None:
        args["max_tokens"] = max_tokens
    if tools:
        args["tools"] = list(tools)
        if not allow_tools:
            args["tool_choice"] = "none"
    return args
