"""How the local OpenAI server frames its responses: SSE chat streams, JSON bodies, errors.

Pure helpers and the `_ChatStream` writer, all driven through a `send(event)` callable that
hands h11 events to the connection (see `openai_server.OpenAIServer._respond`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import h11
import numpy as np
import trio

from bargein.testing.openai_script import ChatReply, RecordedRequest

SPEECH_RATE = 24_000


class _Dropped(Exception):
    """Raised by a handler to close the connection abruptly (fault injection)."""


_Send = Callable[[h11.Event], Any]


class _ChatStream:
    """One streamed chat completion, framed as OpenAI frames it."""

    def __init__(
        self,
        notify: Callable[[], None],
        request: RecordedRequest,
        reply: ChatReply,
        model: str,
        send: _Send,
    ) -> None:
        self.notify = notify  # wakes the server's waiters after each token
        self.request = request
        self.reply = reply
        self.model = model
        self.send = send
        self.id = _completion_id(request.index)
        self.created = _created(request.index)

    def _frame(self, payload: dict[str, Any]) -> h11.Data:
        return h11.Data(data=b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> h11.Data:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._frame(self._envelope([choice]))

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_bargein_local",
            "choices": choices,
        }

    async def _token(self, delta: dict[str, Any], delay: float) -> None:
        reply = self.reply
        await trio.sleep(delay)
        await self.send(self._chunk(delta))
        request = self.request
        if request.first_token_at is None:
            request.first_token_at = trio.current_time()
        request.tokens_sent += 1
        self.notify()
        if request.tokens_sent == reply.fault_after_tokens:
            await self._fault()

    async def _fault(self) -> None:
        if self.reply.fault == "stall_after_first_token":
            await trio.sleep_forever()
        if self.reply.fault == "drop_mid_stream":
            raise _Dropped

    async def run(self, include_usage: bool) -> None:
        reply = self.reply
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("transfer-encoding", "chunked"),
        ]
        await self.send(h11.Response(status_code=200, headers=headers))
        await self.send(self._chunk({"role": "assistant", "content": ""}))
        if reply.fault == "stall_before_first_token":
            await trio.sleep_forever()
        tokens = _tokens(reply.text)
        for i, token in enumerate(tokens):
            delay = reply.first_token_delay if i == 0 else reply.token_delay
            await self._token({"content": token}, delay)
        for i, call in enumerate(reply.tool_calls):
            delay = reply.tool_call_delay if i == 0 else reply.token_delay
            if not tokens and i == 0:
                delay += reply.first_token_delay
            args = call.arguments_json()
            head = {
                "index": i,
                "id": call.call_id(self.request.index, i),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            await self._token({"tool_calls": [head]}, delay)
            half = len(args) // 2
            for piece in (args[:half], args[half:]):
                if piece:
                    part = {"index": i, "function": {"arguments": piece}}
                    await self._token({"tool_calls": [part]}, reply.token_delay)
        if reply.fault in ("stall_after_first_token", "drop_mid_stream"):
            await self._fault()  # fewer tokens than fault_after_tokens: fault at the end
        finish = "tool_calls" if reply.tool_calls else "stop"
        await self.send(self._chunk({}, finish))
        if include_usage:
            prompt = sum(len(str(m.get("content") or "").split()) for m in self.request.messages)
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": self.request.tokens_sent,
                "total_tokens": prompt + self.request.tokens_sent,
            }
            await self.send(self._frame({**self._envelope([]), "usage": usage}))
        await self.send(h11.Data(data=b"data: [DONE]\n\n"))
        await self.send(h11.EndOfMessage())


# -- helpers ---------------------------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    """Word-sized tokens that keep their leading spaces, as BPE tokens usually do."""
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


def _model_entry(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "bargein"}


def _json_body(request: RecordedRequest) -> Any:
    """The request's JSON body, or None if it is not JSON (the caller answers 400)."""
    try:
        return request.json
    except ValueError:
        return None


def _completion_id(index: int) -> str:
    return f"chatcmpl-local-{index}"


def _created(index: int) -> int:
    return 1_700_000_000 + index


def _completion(index: int, model: str, reply: ChatReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.call_id(index, i),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for i, call in enumerate(reply.tool_calls)
        ]
    finish = "tool_calls" if reply.tool_calls else "stop"
    return {
        "id": _completion_id(index),
        "object": "chat.completion",
        "created": _created(index),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


async def _send_json(send: _Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
    await send(h11.Response(status_code=status, headers=headers))
    await send(h11.Data(data=data))
    await send(h11.EndOfMessage())


async def _send_error(send: _Send, status: int, message: str) -> None:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    error = {"message": message, "type": kind, "param": None, "code": None}
    await _send_json(send, status, {"error": error})


def _parse_multipart(content_type: str, body: bytes) -> dict[str, str | bytes]:
    """Fields of a multipart/form-data body: files as bytes, other fields as text."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return {}
    fields: dict[str, str | bytes] = {}
    for part in body.split(b"--" + match.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', disposition)
        if name is None:
            continue
        is_file = "filename=" in disposition
        fields[name.group(1)] = content if is_file else content.decode("utf-8", "replace")
    return fields


def _speech_pcm(text: str, seconds_per_char: float) -> np.ndarray[Any, np.dtype[np.int16]]:
    """A voiced-sounding tone, one syllable-like burst per word, as long as the text 'takes'."""
    n = max(1, int(len(text) * seconds_per_char * SPEECH_RATE))
    t = np.arange(n) / SPEECH_RATE
    envelope = 0.55 + 0.45 * np.sin(2 * math.pi * 3.5 * t)
    signal = 0.25 * envelope * np.sin(2 * math.pi * 180.0 * t)
    return (signal * 32767).astype("<i2")
