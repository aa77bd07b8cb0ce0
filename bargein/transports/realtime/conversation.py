"""The Realtime conversation: items, the response in progress and what was heard.

Pure and synchronous: the adapter (server.py) feeds it the session's events, output frames and
the client's commands; each call returns the server events to send (without `event_id`, which
the encoder stamps). The model's context is built from these items (`model_request`), so
deleting, truncating or adding items changes what the next response sees.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bargein.dsp import Resampler, alaw_encode, ulaw_encode
from bargein.runtime.events import Event, EventType
from bargein.runtime.history import ChatMessage
from bargein.runtime.messages import OutFrame, WordMark
from bargein.transports.realtime.client_events import NewItem, ResponseOptions
from bargein.transports.realtime.config import FORMAT_RATES, RealtimeSettings, Tool
from bargein.transports.realtime.errors import (
    ACTIVE_RESPONSE,
    AUDIO_END_BEYOND,
    INVALID_VALUE,
    ITEM_NOT_FOUND,
    NO_ACTIVE_RESPONSE,
    RATE_LIMITED,
    SERVER_ERROR,
    RealtimeInvalid,
    error_event,
)

ServerEvent = dict[str, Any]
# The text a `response.create` pushes into the session to open a turn: the planner wrapper
# builds the model's context from the items instead, so the model never sees it.
RESPONSE_TRIGGER = "(response.create)"
# The items a conversation keeps (the oldest go first; the model window is bounded anyway).
MAX_ITEMS = 1024


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


@dataclass(slots=True, eq=False)
class Item:
    id: str
    type: str  # message | function_call | function_call_output
    role: str | None = None
    status: str = "completed"
    content: list[dict[str, Any]] = field(default_factory=list)
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    response_id: str | None = None
    # Assistant audio: what was sent (samples at 24 kHz), its word marks, what was heard.
    audio_samples: int = 0
    marks: list[WordMark] = field(default_factory=list)
    generated: str = ""
    heard: str | None = None
    # User audio awaiting its transcript.
    transcribing: bool = False

    @property
    def transcript(self) -> str:
        return self.generated if self.heard is None else self.heard

    def model_message(self) -> ChatMessage | None:
        """The item as the planner sees it (None: nothing to say, e.g. no transcript)."""
        if self.type == "function_call":
            return ChatMessage("assistant", f"[called {self.name}({self.arguments})]")
        if self.type == "function_call_output":
            return ChatMessage("system", f"[function call {self.call_id} returned: "
                                         f"{self.output}]")
        if self.role == "assistant":
            text = self.transcript
            return ChatMessage("assistant", text, self.status == "incomplete") if text else None
        texts = [str(p.get("text") or p.get("transcript") or "") for p in self.content]
        text = " ".join(t for t in texts if t)
        if not text:
            return None
        return ChatMessage("system" if self.role == "system" else "user", text)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "object": "realtime.item", "type": self.type,
                               "status": self.status}
        if self.type == "message":
            out["role"] = self.role
            content = []
            for part in self.content:
                part = dict(part)
                if part.get("type") == "output_audio":
                    part["transcript"] = self.transcript
                elif part.get("type") == "output_text":
                    part["text"] = self.transcript
                content.append(part)
            out["content"] = content
        elif self.type == "function_call":
            out.update(call_id=self.call_id, name=self.name, arguments=self.arguments)
        else:
            out.update(call_id=self.call_id, output=self.output)
        return out


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


class RealtimeConversation:
    def __init__(self, session_id: str, settings: RealtimeSettings | None = None,
                 out_rate: int = 24000) -> None:
        self.session_id = session_id
        self.conversation_id = "conv_" + session_id.removeprefix("sess_")
        self.settings = settings or RealtimeSettings()
        self.out_rate = out_rate
        # The context budget of a model request (characters, as `SessionConfig.history_chars`).
        self.history_chars: int | None = 24000
        self.items: dict[str, Item] = {}
        self.response: Response | None = None
        self.requested: deque[ResponseOptions] = deque()
        self._awaiting: deque[str] = deque()  # VAD items waiting for the session's transcript
        self._speech_item: str | None = None
        self._partial: dict[str, str] = {}
        self._responses_of_turn: dict[int, Response] = {}
        self._suppressed: set[int] = set()
        self.counts: dict[str, int] = {}
        # Input media time (ms) as far as the VAD's events tell.
        self.media_ms = 0
        self._ids = itertools.count()

    # -- session ---------------------------------------------------------------------------

    def session_created(self) -> list[ServerEvent]:
        return [
            {"type": "session.created", "session": self.settings.to_json(self.session_id)},
            {"type": "conversation.created",
             "conversation": {"id": self.conversation_id, "object": "realtime.conversation"}},
        ]

    def session_updated(self, settings: RealtimeSettings) -> list[ServerEvent]:
        self.settings = settings
        return [{"type": "session.updated", "session": settings.to_json(self.session_id)}]

    # -- items -----------------------------------------------------------------------------

    def _last_id(self) -> str | None:
        return next(reversed(self.items), None)

    def _add(self, item: Item, previous: str | None = None) -> list[ServerEvent]:
        """Append `item` (or insert it after `previous`); `conversation.item.added`."""
        after = self._last_id() if previous is None else previous
        if previous is not None and previous != self._last_id():
            ordered = list(self.items.items())
            at = [k for k, _ in ordered].index(previous) + 1
            ordered.insert(at, (item.id, item))
            self.items = dict(ordered)
        else:
            self.items[item.id] = item
        while len(self.items) > MAX_ITEMS:
            self.items.pop(next(iter(self.items)))
        return [{"type": "conversation.item.added", "previous_item_id": after,
                 "item": item.to_json()}]

    def create_item(self, new: NewItem, previous: str | None) -> list[ServerEvent]:
        if previous is not None and previous != "root" and previous not in self.items:
            raise RealtimeInvalid(ITEM_NOT_FOUND, f"no item {previous!r}",
                                  param="previous_item_id")
        item_id = new.id or new_id("item")
        if item_id in self.items:
            raise RealtimeInvalid(INVALID_VALUE, f"item {item_id!r} exists already",
                                  param="item.id")
        content = [dict(p) for p in new.content]
        for part in content:  # an assistant text item is heard as text
            if part["type"] == "text":
                part["type"] = "output_text"
        item = Item(item_id, new.type, role=new.role, content=content, call_id=new.call_id,
                    name=new.name, arguments=new.arguments, output=new.output)
        if new.role == "assistant":
            item.generated = " ".join(str(p.get("text", "")) for p in content)
        if previous == "root":
            self.items = {item_id: item, **self.items}
            added: list[ServerEvent] = [{"type": "conversation.item.added",
                                         "previous_item_id": None, "item": item.to_json()}]
        else:
            added = self._add(item, previous)
        created = {"type": "conversation.item.created",
                   "previous_item_id": added[0]["previous_item_id"], "item": item.to_json()}
        return [*added, {"type": "conversation.item.done", "item": item.to_json()}, created]

    def _find(self, item_id: str) -> Item:
        item = self.items.get(item_id)
        if item is None:
            raise RealtimeInvalid(ITEM_NOT_FOUND, f"no item {item_id!r}", param="item_id")
        return item

    def retrieve(self, item_id: str) -> list[ServerEvent]:
        return [{"type": "conversation.item.retrieved", "item": self._find(item_id).to_json()}]

    def delete(self, item_id: str) -> list[ServerEvent]:
        item = self._find(item_id)
        if self.response is not None and item in self.response.output:
            raise RealtimeInvalid(INVALID_VALUE, "the item belongs to the response in progress",
                                  param="item_id")
        del self.items[item_id]
        return [{"type": "conversation.item.deleted", "item_id": item_id}]

    def truncate(self, item_id: str, audio_end_ms: int) -> tuple[list[ServerEvent],
                                                                 tuple[int, int] | None]:
        """The client played `audio_end_ms` of the item (inclusive): what is heard of it now.
        Returns the events and, if its response is still running, (turn, samples) to report
        as played."""
        item = self._find(item_id)
        if item.role != "assistant" or not any(
                p.get("type") == "output_audio" for p in item.content):
            raise RealtimeInvalid(INVALID_VALUE, "only an assistant audio item can be truncated",
                                  param="item_id")
        sent_ms = 1000 * item.audio_samples / self.out_rate
        if audio_end_ms > sent_ms:
            raise RealtimeInvalid(AUDIO_END_BEYOND, f"audio_end_ms {audio_end_ms} is beyond the "
                                  f"item's audio ({sent_ms:.0f} ms)", param="audio_end_ms")
        end = audio_end_ms * self.out_rate // 1000
        item.heard = _words_within(item.marks, end)
        report = None
        response = self.response
        if response is not None and response.message is item and response.turn is not None:
            report = (response.turn, end)
        return [{"type": "conversation.item.truncated", "item_id": item_id, "content_index": 0,
                 "audio_end_ms": audio_end_ms}], report

    def commit_audio(self, item_id: str | None = None) -> tuple[str, list[ServerEvent]]:
        """A user audio item whose transcript is on its way (`transcribed` completes it)."""
        item_id = item_id or new_id("item")
        item = Item(item_id, "message", role="user", transcribing=True,
                    content=[{"type": "input_audio", "transcript": None}])
        previous = self._last_id()
        events: list[ServerEvent] = [{"type": "input_audio_buffer.committed",
                                      "item_id": item_id, "previous_item_id": previous}]
        return item_id, events + self._add(item)

    def transcribed(self, item_id: str, text: str, seconds: float) -> list[ServerEvent]:
        item = self.items.get(item_id)
        if item is None:  # deleted meanwhile
            return []
        item.transcribing = False
        item.content[0]["transcript"] = text
        return [
            {"type": "conversation.item.input_audio_transcription.completed",
             "item_id": item_id, "content_index": 0, "transcript": text,
             "usage": {"type": "duration", "seconds": round(seconds, 3)}},
            {"type": "conversation.item.done", "item": item.to_json()},
        ]

    def transcription_failed(self, item_id: str, message: str) -> list[ServerEvent]:
        item = self.items.get(item_id)
        if item is None:
            return []
        item.transcribing = False
        item.content[0]["transcript"] = ""
        return [{"type": "conversation.item.input_audio_transcription.failed",
                 "item_id": item_id, "content_index": 0,
                 "error": {"type": "transcription_error", "code": SERVER_ERROR,
                           "message": message[:500], "param": None}}]

    def idle_timeout(self, idle_ms: int) -> list[ServerEvent]:
        """server_vad's `idle_timeout_ms` passed with no speech and no response: an empty user
        audio item; the adapter then opens a response (the model prompts the user)."""
        item_id, events = self.commit_audio()
        start = self.media_ms
        self.media_ms += idle_ms
        item = self.items[item_id]
        item.transcribing = False
        item.content[0]["transcript"] = ""
        triggered = {"type": "input_audio_buffer.timeout_triggered", "item_id": item_id,
                     "audio_start_ms": start, "audio_end_ms": self.media_ms}
        return [triggered, *events, {"type": "conversation.item.done", "item": item.to_json()}]

    @property
    def idle(self) -> bool:
        """No user speech and no response in progress or requested."""
        return self._speech_item is None and self.response is None and not self.requested

    def pending_transcripts(self) -> list[str]:
        return [i.id for i in self.items.values() if i.transcribing]

    # -- responses -------------------------------------------------------------------------

    def request_response(self, options: ResponseOptions) -> None:
        """`response.create`: the next turn the session opens is this response."""
        if self.response is not None or self.requested:
            raise RealtimeInvalid(ACTIVE_RESPONSE, "a response is in progress already")
        self.requested.append(options)

    def cancel(self, response_id: str | None) -> int:
        """`response.cancel`: the turn to interrupt."""
        r = self.response
        if r is None or r.turn is None or (response_id is not None and response_id != r.id):
            raise RealtimeInvalid(NO_ACTIVE_RESPONSE, "no such response in progress",
                                  param="response_id" if response_id else None)
        return r.turn

    def _open(self, turn: int, options: ResponseOptions | None) -> list[ServerEvent]:
        s = self.settings
        o = options or ResponseOptions()
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
            r.resampler = Resampler(self.out_rate, FORMAT_RATES[r.output_format])
        self.response = self._responses_of_turn[turn] = r
        return [{"type": "response.created", "response": r.to_json(self.conversation_id)}]

    def _message(self, r: Response) -> list[ServerEvent]:
        """The response's assistant message, on its first text or audio."""
        if r.message is not None:
            return []
        part_type = "output_audio" if r.audio else "output_text"
        item = Item(new_id("item"), "message", role="assistant", status="in_progress",
                    content=[{"type": part_type}], response_id=r.id)
        r.message = item
        r.output.append(item)
        index = len(r.output) - 1
        part = {"type": "audio", "transcript": ""} if r.audio else {"type": "text", "text": ""}
        return [{"type": "response.output_item.added", "response_id": r.id,
                 "output_index": index, "item": item.to_json()}, *self._add(item),
                {"type": "response.content_part.added", "response_id": r.id, "item_id": item.id,
                 "output_index": index, "content_index": 0, "part": part}]

    def _where(self, r: Response, item: Item) -> dict[str, Any]:
        return {"response_id": r.id, "item_id": item.id, "output_index": r.output.index(item),
                "content_index": 0}

    def function_call(self, turn: int, name: str, arguments: str) -> list[ServerEvent]:
        """The model called a client tool in `turn`: a `function_call` item the client runs.
        Nothing once the response is being stopped (a cancelled response never calls)."""
        r = self.response
        if r is None or r.turn != turn or r.stopping is not None:
            return []
        item = Item(new_id("item"), "function_call", status="completed", call_id=new_id("call"),
                    name=name, arguments=arguments, response_id=r.id)
        r.output.append(item)
        index = len(r.output) - 1
        where = {"response_id": r.id, "item_id": item.id, "output_index": index,
                 "call_id": item.call_id}
        added = item.to_json() | {"status": "in_progress", "arguments": ""}
        return [
            {"type": "response.output_item.added", "response_id": r.id, "output_index": index,
             "item": added},
            *self._add(item),
            {"type": "response.function_call_arguments.delta", **where, "delta": arguments},
            {"type": "response.function_call_arguments.done", **where, "name": name,
             "arguments": arguments},
            {"type": "response.output_item.done", "response_id": r.id, "output_index": index,
             "item": item.to_json()},
            {"type": "conversation.item.done", "item": item.to_json()},
        ]

    def model_request(self, turn: int) -> ModelRequest:
        """The context of `turn`'s response: instructions, then every item before it."""
        r = self._responses_of_turn.get(turn)
        s = self.settings
        instructions = s.instructions if r is None else r.instructions
        messages = [ChatMessage("system", instructions)] if instructions else []
        items = []
        for item in self.items.values():
            if r is not None and item.response_id == r.id:
                continue
            m = item.model_message()
            if m is not None:
                messages.append(m)
            items.append(item.to_json())
        messages = _within(messages, bool(instructions), self.history_chars)
        tools = s.tools if r is None else r.tools
        choice = s.tool_choice if r is None else r.tool_choice
        if choice == "none":
            tools = ()
        elif choice not in ("auto", "required"):
            tools = tuple(t for t in tools if t.name == choice)
        return ModelRequest(tuple(messages), tools, choice,
                            s.max_output_tokens if r is None else r.max_output_tokens,
                            tuple(items))

    def suppressed(self, turn: int) -> bool:
        """A turn the session opened that is no response (create_response false)."""
        return turn in self._suppressed

    # -- the session's events --------------------------------------------------------------

    def runtime(self, event: Event) -> list[ServerEvent]:
        self.counts[event.type.value] = self.counts.get(event.type.value, 0) + 1
        d, turn = event.data, event.turn
        match event.type:
            case EventType.SPEECH_STARTED:
                self._speech_item = new_id("item")
                self.media_ms = max(self.media_ms, int(1000 * float(d.get("media_t", 0.0))))
                return [{"type": "input_audio_buffer.speech_started",
                         "audio_start_ms": int(1000 * float(d.get("onset", 0.0))),
                         "item_id": self._speech_item}]
            case EventType.SPEECH_STOPPED:
                item_id = self._speech_item or new_id("item")
                self._speech_item = None
                self.media_ms = max(self.media_ms, int(1000 * float(d.get("media_t", 0.0))))
                self._awaiting.append(item_id)
                stopped: ServerEvent = {"type": "input_audio_buffer.speech_stopped",
                                        "audio_end_ms": int(1000 * float(d.get("offset", 0.0))),
                                        "item_id": item_id}
                return [stopped, *self.commit_audio(item_id)[1]]
            case EventType.TRANSCRIPT_PARTIAL:
                return self._partial_delta(str(d.get("text", "")))
            case EventType.TRANSCRIPT_FINAL:
                if not self._awaiting:
                    return []
                item_id = self._awaiting.popleft()
                self._partial.pop(item_id, None)
                return self.transcribed(item_id, str(d.get("text", "")), 0.0)
            case EventType.TURN_STARTED if turn is not None:
                return self._turn_started(turn)
            case EventType.ASSISTANT_TEXT if turn is not None:
                return self._text(turn, str(d.get("delta", "")))
            case EventType.BARGE_IN if turn is not None:
                r = self._responses_of_turn.get(turn)
                if r is not None and r.stopping is None:
                    r.stopping = str(d.get("reason", "barge_in"))
                return []
            case EventType.TURN_COMPLETED | EventType.TURN_CANCELLED if turn is not None:
                return self._finish(event)
            case EventType.INPUT_REJECTED:
                code = RATE_LIMITED if d.get("code") == "rate_limited" else INVALID_VALUE
                return [error_event(code, str(d.get("detail", "")) or code)]
            case EventType.ERROR:
                return [error_event(SERVER_ERROR, f"{d.get('source')}: {d.get('message')}"[:500],
                                    kind="server_error")]
        return []

    def _partial_delta(self, text: str) -> list[ServerEvent]:
        item_id = self._awaiting[0] if self._awaiting else self._speech_item
        if item_id is None:
            return []
        before = self._partial.get(item_id, "")
        if not text.startswith(before) or text == before:
            return []
        self._partial[item_id] = text
        return [{"type": "conversation.item.input_audio_transcription.delta",
                 "item_id": item_id, "content_index": 0, "delta": text[len(before):]}]

    def _turn_started(self, turn: int) -> list[ServerEvent]:
        if self.requested:
            return self._open(turn, self.requested.popleft())
        td = self.settings.turn_detection
        if td is None or not td.create_response:
            self._suppressed.add(turn)
            return []
        if self.response is not None:  # the session moved on; the old one is finishing
            self.response = None
        return self._open(turn, None)

    def _text(self, turn: int, delta: str) -> list[ServerEvent]:
        r = self._responses_of_turn.get(turn)
        if r is None or r.stopping is not None or not delta:
            return []
        events = self._message(r)
        assert r.message is not None
        r.message.generated += delta
        r.deltas += 1
        kind = "response.output_audio_transcript.delta" if r.audio else "response.output_text.delta"
        return [*events, {"type": kind, **self._where(r, r.message), "delta": delta}]

    def audio(self, frame: OutFrame) -> list[ServerEvent]:
        """An output frame of the session: an audio delta of its response (if it has one)."""
        r = self._responses_of_turn.get(frame.turn)
        if r is None or r.status != "in_progress" or r.stopping is not None or not r.audio:
            return []
        events = self._message(r)
        assert r.message is not None
        item = r.message
        item.audio_samples = max(item.audio_samples, frame.end)
        item.marks.extend(frame.words)
        pcm = frame.pcm
        if r.resampler is not None:
            pcm = r.resampler.process_int16(pcm)
            data = (ulaw_encode(pcm) if r.output_format == "audio/pcmu"
                    else alaw_encode(pcm)).tobytes()
        else:
            data = np.ascontiguousarray(pcm, dtype="<i2").tobytes()
        if not data:
            return events
        delta = base64.b64encode(data).decode("ascii")
        return [*events, {"type": "response.output_audio.delta", **self._where(r, item),
                          "delta": delta}]

    def _finish(self, event: Event) -> list[ServerEvent]:
        turn = event.turn
        assert turn is not None
        self._suppressed.discard(turn)
        r = self._responses_of_turn.pop(turn, None)
        if r is None:
            return []
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
            where = self._where(r, item)
            if r.audio:
                events += [
                    {"type": "response.output_audio.done", **where},
                    {"type": "response.output_audio_transcript.done", **where,
                     "transcript": item.transcript},
                    {"type": "response.content_part.done", **where,
                     "part": {"type": "audio", "transcript": item.transcript}},
                ]
            else:
                events += [
                    {"type": "response.output_text.done", **where, "text": item.transcript},
                    {"type": "response.content_part.done", **where,
                     "part": {"type": "text", "text": item.transcript}},
                ]
            events += [
                {"type": "response.output_item.done", "response_id": r.id,
                 "output_index": where["output_index"], "item": item.to_json()},
                {"type": "conversation.item.done", "item": item.to_json()},
            ]
        done = r.to_json(self.conversation_id)
        out_tokens = int(d.get("tokens", r.deltas) or 0)
        done["usage"] = {
            "total_tokens": out_tokens, "input_tokens": 0, "output_tokens": out_tokens,
            "input_token_details": {"text_tokens": 0, "audio_tokens": 0, "cached_tokens": 0},
            "output_token_details": {"text_tokens": out_tokens, "audio_tokens": 0},
        }
        events += [{"type": "response.done", "response": done},
                   {"type": "rate_limits.updated", "rate_limits": []}]
        if self.response is r:
            self.response = None
        return events


def _within(messages: list[ChatMessage], keep_first: bool,
            budget: int | None) -> list[ChatMessage]:
    """The instructions, then the newest messages whose contents fit in `budget` characters
    (the newest always goes), like `History.window` but keeping mid-conversation system
    messages (function outputs)."""
    if budget is None:
        return messages
    head, rest = (messages[:1], messages[1:]) if keep_first else ([], messages)
    kept: list[ChatMessage] = []
    used = 0
    for m in reversed(rest):
        if kept and used + len(m.content) > budget:
            break
        kept.append(m)
        used += len(m.content)
    return head + kept[::-1]


def _words_within(marks: list[WordMark], end: int) -> str:
    """The words whose audio ends within the first `end` samples."""
    return " ".join(m.text for m in marks if m.end <= end).strip()


def replace_settings(conversation: RealtimeConversation, **changes: Any) -> None:
    conversation.settings = dataclasses.replace(conversation.settings, **changes)
