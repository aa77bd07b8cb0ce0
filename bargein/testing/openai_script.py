"""The local OpenAI server's scripts: what it is told to answer, and what it records.

`ServerConfig` holds the scripted replies (`ChatReply`, transcripts) and faults; every request
the server receives becomes a `RecordedRequest`. `load_script` reads a config from JSON for the
standalone demo server. The HTTP side lives in `openai_server` (connections) and
`openai_wire` (response framing).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Fault = Literal[
    "drop_before_headers",  # close the connection without any response
    "stall_before_headers",  # accept the request, never answer
    "stall_before_first_token",  # send headers and the role chunk, then nothing
    "stall_after_first_token",  # stall after `fault_after_tokens` tokens
    "drop_mid_stream",  # close the connection after `fault_after_tokens` tokens
]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the scripted model makes; `arguments` is sent as its JSON text."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)

    def call_id(self, request: int, position: int) -> str:
        return self.id or f"call_{request}_{position}"


@dataclass(frozen=True, slots=True)
class ChatReply:
    """One scripted response to a chat completion request.

    Text streams first (one token per word), then tool calls (name, then arguments in pieces).
    `status` other than 200 answers with an OpenAI-style error body instead.
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    first_token_delay: float = 0.0
    token_delay: float = 0.0
    tool_call_delay: float = 0.0  # pause between the text and the tool-call deltas
    status: int = 200
    fault: Fault | None = None
    fault_after_tokens: int = 1
    usage: bool = True  # send the usage chunk when the client asks for it (stream_options)


ChatScript = Sequence["ChatReply | str"] | Callable[["RecordedRequest"], "ChatReply | str"]
TextScript = Sequence[str] | Callable[["RecordedRequest"], str]


@dataclass(slots=True)
class ServerConfig:
    # Replies to chat requests in order (or a function of the request); when a list runs out,
    # `default_chat` answers, or, if None, an echo of the last user message.
    chat: ChatScript = ()
    default_chat: ChatReply | None = None
    default_token_delay: float = 0.0  # for echo replies
    transcripts: TextScript = ()
    default_transcript: str = ""
    transcription_status: int = 200
    speech_status: int = 200
    speech_seconds_per_char: float = 1 / 14  # audio length proportional to the text
    speech_chunk_bytes: int = 4800  # 100 ms of PCM16 at 24 kHz; odd values test re-framing
    speech_first_chunk_delay: float = 0.0
    speech_chunk_delay: float = 0.0
    model: str = "bargein-local"


@dataclass(slots=True)
class RecordedRequest:
    """A request as the server received it, and what became of its response."""

    index: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # trio time the whole request had arrived
    first_token_at: float | None = None
    tokens_sent: int = 0
    completed_at: float | None = None  # response fully sent
    closed_at: float | None = None  # client closed the connection before the response ended
    form: dict[str, str | bytes] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        body = self.json
        return list(body.get("messages", [])) if isinstance(body, dict) else []


def _echo(request: RecordedRequest) -> str:
    users = [m for m in request.messages if m.get("role") == "user"]
    said = str(users[-1].get("content") or "").strip() if users else ""
    return f"You said: {said}" if said else "Hello. I am a local test server."


def _reply_from_json(item: Any) -> ChatReply | str:
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        raise ValueError(f"a chat script item must be a string or an object, not {item!r}")
    calls = tuple(ToolCall(**call) for call in item.get("tool_calls", ()))
    return ChatReply(**{**item, "tool_calls": calls})


def load_script(path: str) -> ServerConfig:
    """A config from a JSON file: ``{"chat": [...], "transcripts": [...], ...}``.

    Chat items are strings or objects with ChatReply's fields (tool_calls as objects with
    name/arguments/id). Other keys are ServerConfig fields (e.g. "default_token_delay").
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError("the script must be a JSON object")
    chat = [_reply_from_json(item) for item in data.pop("chat", [])]
    transcripts = [str(t) for t in data.pop("transcripts", [])]
    return ServerConfig(chat=chat, transcripts=transcripts, **data)
