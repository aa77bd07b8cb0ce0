"""A Realtime response in progress, the server events it produces, and a model request.

Pure functions over `Response` and `Item`: the conversation (conversation.py) decides when a
response opens, grows and ends; these say what each step sends and what the model is asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bargein.dsp import Resampler, alaw_encode, ulaw_encode
from bargein.runtime.events import Event, EventType
from bargein.runtime.history import ChatMessage, newest_within
from bargein.transports.realtime.client_events import ResponseOptions
from bargein.transports.realtime.config import FORMAT_RATES, RealtimeSettings, Tool
from bargein.transports.realtime.items import Item, ServerEvent, new_id


@dataclass(slots=True, eq=False)
class Response:
    id: str
    modalities: tuple[str, ...]
    instructions: str
    tools: tuple[Tool, ...]
    tool_choice: str
    max_output_tokens: int | None
    metadata: dict[str, str] | None
    output_format: str
    turn: int | None = None
    status: str = "in_progress"
    details: dict[str, Any] | None = None
    output: list[Item] = field(default_factory=list)
    message: Item | None = None
    # Set once the runtime decided to stop it (barge-in/cancel): nothing more is emitted.
    stopping: str | None = None
    deltas: int = 0
    resampler: Resampler | None = None

    @property
    def audio(self) -> bool:
        return "audio" in self.modalities

    def to_json(self, conversation_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "realtime.response",
            "status": self.status,
            "status_details": self.details,
            "output": [item.to_json() for item in self.output],
            "conversation_id": conversation_id,
            "output_modalities": list(self.modalities),
            "max_output_tokens": "inf" if self.max_output_tokens is None
            else self.max_output_tokens,
            "audio": {"output": {"format": _fmt(self.output_format)}},
            "metadata": self.metadata,
            "usage": None,
        }


def _fmt(f: str) -> dict[str, Any]:
    return {"type": f, "rate": 24000} if f == "audio/pcm" else {"type": f}


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """What the planner wrapper asks the model for one response."""

    messages: tuple[ChatMessage, ...]
    tools: tuple[Tool, ...]
    tool_choice: str
    max_output_tokens: int | None
    items: tuple[dict[str, Any], ...]



def new_response(s: RealtimeSettings, o: ResponseOptions, turn: int, out_rate: int) -> Response:
    """The response `turn` opens: the options given, else the session's settings."""
    r = Response(
        new_id("resp"),
        o.output_modalities or s.output_modalities,
        s.instructions if o.instructions is None else o.instructions,
        s.tools if o.tools is None else o.tools,
        o.tool_choice or s.tool_choice,
        o.max_output_tokens if o.max_output_tokens_given else s.max_output_tokens,
        o.metadata,
        s.output_format,
        turn=turn,
    )
    if r.audio and r.output_format != "audio/pcm":
        r.resampler = Resampler(out_rate, FORMAT_RATES[r.output_format])
    return r


def message_events(r: Response, item: Item, added: list[ServerEvent]) -> list[ServerEvent]:
    """The response's assistant message `item`, just appended to `r.output` (`added`: its
    conversation events)."""
    index = len(r.output) - 1
    part = {"type": "audio", "transcript": ""} if r.audio else {"type": "text", "text": ""}
    return [{"type": "response.output_item.added", "response_id": r.id,
             "output_index": index, "item": item.to_json()}, *added,
            {"type": "response.content_part.added", "response_id": r.id, "item_id": item.id,
             "output_index": index, "content_index": 0, "part": part}]


def where(r: Response, item: Item) -> dict[str, Any]:
    return {"response_id": r.id, "item_id": item.id, "output_index": r.output.index(item),
            "content_index": 0}


def function_call_events(r: Response, item: Item, added: list[ServerEvent]) -> list[ServerEvent]:
    """A `function_call` item just appended to `r.output` (`added`: its conversation events)."""
    index = len(r.output) - 1
    at = {"response_id": r.id, "item_id": item.id, "output_index": index,
          "call_id": item.call_id}
    in_progress = item.to_json() | {"status": "in_progress", "arguments": ""}
    return [
        {"type": "response.output_item.added", "response_id": r.id, "output_index": index,
         "item": in_progress},
        *added,
        {"type": "response.function_call_arguments.delta", **at, "delta": item.arguments},
        {"type": "response.function_call_arguments.done", **at, "name": item.name,
         "arguments": item.arguments},
        {"type": "response.output_item.done", "response_id": r.id, "output_index": index,
         "item": item.to_json()},
        {"type": "conversation.item.done", "item": item.to_json()},
    ]


def encode_audio(r: Response, pcm: np.ndarray) -> bytes:
    """An output frame's samples in the response's output format."""
    if r.resampler is not None:
        pcm = r.resampler.process_int16(pcm)
        return (ulaw_encode(pcm) if r.output_format == "audio/pcmu"
                else alaw_encode(pcm)).tobytes()
    return np.ascontiguousarray(pcm, dtype="<i2").tobytes()


def finish(r: Response, event: Event, conversation_id: str) -> list[ServerEvent]:
    """`r`'s turn completed or was cancelled (`event`): its status and closing events."""
    d = event.data
    reason = str(d.get("reason", ""))
    if event.type is EventType.TURN_COMPLETED:
        r.status, r.details = "completed", None
    elif reason in ("error", "deadline"):
        r.status = "failed"
        r.details = {"type": "failed", "error": {"type": "server_error", "code": reason,
                                                 "message": f"the response {reason}"}}
    else:
        r.status = "cancelled"
        r.details = {"type": "cancelled",
                     "reason": "turn_detected" if reason == "barge_in" else "client_cancelled"}
    events: list[ServerEvent] = []
    item = r.message
    if item is not None:
        # What the user heard is what the conversation keeps (OpenAI keeps everything
        # generated unless the client truncates; docs/realtime.md).
        if r.audio and item.heard is None:
            heard = str(d.get("heard_text", "")) if r.status != "completed" else None
            item.heard = heard
        item.status = "completed" if r.status == "completed" else "incomplete"
        at = where(r, item)
        if r.audio:
            events += [
                {"type": "response.output_audio.done", **at},
                {"type": "response.output_audio_transcript.done", **at,
                 "transcript": item.transcript},
                {"type": "response.content_part.done", **at,
                 "part": {"type": "audio", "transcript": item.transcript}},
            ]
        else:
            events += [
                {"type": "response.output_text.done", **at, "text": item.transcript},
                {"type": "response.content_part.done", **at,
                 "part": {"type": "text", "text": item.transcript}},
            ]
        events += [
            {"type": "response.output_item.done", "response_id": r.id,
             "output_index": at["output_index"], "item": item.to_json()},
            {"type": "conversation.item.done", "item": item.to_json()},
        ]
    done = r.to_json(conversation_id)
    out_tokens = int(d.get("tokens", r.deltas) or 0)
    done["usage"] = {
        "total_tokens": out_tokens, "input_tokens": 0, "output_tokens": out_tokens,
        "input_token_details": {"text_tokens": 0, "audio_tokens": 0, "cached_tokens": 0},
        "output_token_details": {"text_tokens": out_tokens, "audio_tokens": 0},
    }
    events += [{"type": "response.done", "response": done},
               {"type": "rate_limits.updated", "rate_limits": []}]
    return events


def model_request(items: Iterable[Item], r: Response | None, s: RealtimeSettings,
                  history_chars: int | None) -> ModelRequest:
    """The context of `r` (or of a turn that is no response): instructions, then every item
    before it, within `history_chars`."""
    instructions = s.instructions if r is None else r.instructions
    messages = [ChatMessage("system", instructions)] if instructions else []
    seen = []
    for item in items:
        if r is not None and item.response_id == r.id:
            continue
        m = item.model_message()
        if m is not None:
            messages.append(m)
        seen.append(item.to_json())
    messages = _within(messages, bool(instructions), history_chars)
    tools = s.tools if r is None else r.tools
    choice = s.tool_choice if r is None else r.tool_choice
    if choice == "none":
        tools = ()
    elif choice not in ("auto", "required"):
        tools = tuple(t for t in tools if t.name == choice)
    return ModelRequest(tuple(messages), tools, choice,
                        s.max_output_tokens if r is None else r.max_output_tokens,
                        tuple(seen))


def _within(messages: list[ChatMessage], keep_first: bool,
            budget: int | None) -> list[ChatMessage]:
    """The instructions, then the newest messages whose contents fit in `budget` characters
    (`newest_within`, as `History.window`), keeping mid-conversation system messages
    (function outputs)."""
    if budget is None:
        return messages
    head, rest = (messages[:1], messages[1:]) if keep_first else ([], messages)
    return head + newest_within(rest, budget)

