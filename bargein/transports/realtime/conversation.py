"""The Realtime conversation: items, the response in progress and what was heard.

Pure and synchronous: the adapter (connection.py) feeds it the session's events, output
frames and the client's commands; each call returns the server events to send (without
`event_id`, which the encoder stamps). The model's context is built from these items
(`model_request`), so deleting, truncating or adding items changes what the next response sees.

The pieces: items.py (the items), responses.py (a response's events, the model request).
"""

from __future__ import annotations

import base64
import itertools
from collections import deque

from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import OutFrame
from bargein.transports.realtime import responses
from bargein.transports.realtime.client_events import NewItem, ResponseOptions
from bargein.transports.realtime.config import RealtimeSettings
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
from bargein.transports.realtime.items import MAX_ITEMS, Item, ServerEvent, _words_within, new_id
from bargein.transports.realtime.responses import ModelRequest, Response, where

# Re-exported: the names the adapter and the planner wrapper import from here.
__all__ = ["MAX_ITEMS", "RESPONSE_TRIGGER", "Item", "ModelRequest", "RealtimeConversation",
           "Response", "ServerEvent", "new_id"]

# The text a `response.create` pushes into the session to open a turn: the planner wrapper
# builds the model's context from the items instead, so the model never sees it.
RESPONSE_TRIGGER = "(response.create)"


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
        r = responses.new_response(s, o, turn, self.out_rate)
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
        return responses.message_events(r, item, self._add(item))

    def function_call(self, turn: int, name: str, arguments: str) -> list[ServerEvent]:
        """The model called a client tool in `turn`: a `function_call` item the client runs.
        Nothing once the response is being stopped (a cancelled response never calls)."""
        r = self.response
        if r is None or r.turn != turn or r.stopping is not None:
            return []
        item = Item(new_id("item"), "function_call", status="completed", call_id=new_id("call"),
                    name=name, arguments=arguments, response_id=r.id)
        r.output.append(item)
        return responses.function_call_events(r, item, self._add(item))

    def model_request(self, turn: int) -> ModelRequest:
        """The context of `turn`'s response: instructions, then every item before it."""
        r = self._responses_of_turn.get(turn)
        s = self.settings
        return responses.model_request(self.items.values(), r, s, self.history_chars)

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
        return [*events, {"type": kind, **where(r, r.message), "delta": delta}]

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
        data = responses.encode_audio(r, frame.pcm)
        if not data:
            return events
        delta = base64.b64encode(data).decode("ascii")
        return [*events, {"type": "response.output_audio.delta", **where(r, item),
                          "delta": delta}]

    def _finish(self, event: Event) -> list[ServerEvent]:
        turn = event.turn
        assert turn is not None
        self._suppressed.discard(turn)
        r = self._responses_of_turn.pop(turn, None)
        if r is None:
            return []
        events = responses.finish(r, event, self.conversation_id)
        if self.response is r:
            self.response = None
        return events
