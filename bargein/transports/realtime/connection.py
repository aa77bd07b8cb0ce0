"""One Realtime connection: frames in and out, the session it drives, the planner's hooks.

The conversation state is pure (conversation.py) and so is the input audio (input_audio.py);
this module moves frames. The session's events reach the state through a synchronous bus
listener, so the state is always up to date when the planner wrapper asks it for a response's
context. Server frames go through a bounded `OutboundQueue`: queued audio of a barged-in turn
is flushed before its `response.done`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import trio

from bargein.engines.base import Engines, Recognizer
from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import OutFrame
from bargein.session import Session, SessionConfig, open_session
from bargein.transports.outbound import OutboundQueue
from bargein.transports.realtime import client_events as ce
from bargein.transports.realtime.config import RealtimeSettings, apply_update
from bargein.transports.realtime.conversation import (
    RESPONSE_TRIGGER,
    ModelRequest,
    RealtimeConversation,
    ServerEvent,
    new_id,
)
from bargein.transports.realtime.errors import (
    INVALID_VALUE,
    SERVER_ERROR,
    UNSUPPORTED,
    RealtimeInvalid,
    error_event,
)
from bargein.transports.realtime.input_audio import RATE, InputAudio, recognize
from bargein.transports.realtime.planner import FunctionCall, RealtimePlanner
from bargein.transports.websocket import WebSocketLike, liveness
from bargein.transports.websocket.stats import one_line

if TYPE_CHECKING:
    from bargein.transports.realtime.server import RealtimeServer

log = logging.getLogger("bargein.transports.realtime")

# Server frames stay below the SDK's default 1 MiB message limit.
MAX_SERVER_FRAME = 1024 * 1024 - 4096
TRANSCRIPT_WAIT_S = 15.0  # a response waits this long for a transcription still running
STALL_TIMEOUT_S = 10.0
MAX_CONTROL_FRAMES = 4096
MAX_AUDIO_FRAMES = 1000


class SlowConsumer(Exception):
    pass



# Session events after which the idle timeout starts again.
_ACTIVITY = frozenset({EventType.SPEECH_STARTED, EventType.SPEECH_STOPPED,
                       EventType.TURN_STARTED, EventType.TURN_COMPLETED,
                       EventType.TURN_CANCELLED})


class Connection:
    """One Realtime connection. Also the session's `Transport` and the planner's hooks."""

    def __init__(self, server: RealtimeServer, ws: WebSocketLike, model: str | None) -> None:
        self.server = server
        self.ws = ws
        session_id = new_id("sess")
        settings = RealtimeSettings(model=(model or "bargein")[:128])
        self.conv = RealtimeConversation(session_id, settings, RATE)
        self.queue = OutboundQueue(max_audio=MAX_AUDIO_FRAMES, max_control=MAX_CONTROL_FRAMES)
        self._event_n = 0
        self.session: Session | None = None
        self._session_key: tuple[Any, ...] | None = None
        self._session_done: trio.Event | None = None
        self.engines: Engines | None = None
        self._nursery: trio.Nursery | None = None
        self.input = InputAudio()
        self._transcribed = trio.Event()
        self._drained = trio.Event()
        self._activity = trio.Event()
        self._recognizer: Recognizer | None = None
        self._recognizer_lock = trio.Lock()

    # -- frames out -------------------------------------------------------------------------

    def _encode(self, event: ServerEvent) -> str:
        self._event_n += 1
        data = json.dumps({"event_id": f"event_{self._event_n}", **event},
                          ensure_ascii=False, separators=(",", ":"))
        if len(data.encode()) > MAX_SERVER_FRAME:
            self.server.stats.oversize_frames += 1
            log.error("not sending an oversize %s", event.get("type"))
            data = json.dumps({"event_id": f"event_{self._event_n}", **error_event(
                SERVER_ERROR, f"a {event.get('type')} event was too large to send",
                kind="server_error")})
        return data

    def send(self, events: list[ServerEvent]) -> None:
        for event in events:
            if event["type"] == "error":
                self.server.stats.errors[str(event["error"]["code"])] += 1
            self.queue.put_control(self._encode(event))

    async def refuse(self, code: str, message: str) -> None:
        with trio.move_on_after(2.0):
            try:
                await self.ws.send(self._encode(error_event(code, message)))
                await self.ws.close(1008, code)
            except Exception as exc:
                log.debug("refusal not delivered: %r", exc)

    async def _write(self) -> None:
        while True:
            try:
                frame = await self.queue.get()
            except trio.EndOfChannel:
                self._drained.set()
                return
            with trio.move_on_after(STALL_TIMEOUT_S) as stuck:
                await self.ws.send(frame)
            if stuck.cancelled_caught:
                raise SlowConsumer

    async def _watch_backlog(self) -> None:
        await self.queue.failed.wait()
        raise SlowConsumer

    # -- Transport (the session's outbound edge) --------------------------------------------

    async def send_audio(self, frame: OutFrame) -> None:
        for event in self.conv.audio(frame):
            data = self._encode(event)
            if event["type"] == "response.output_audio.delta":
                # Text frames in the audio lane, so a barge-in can flush them (Frame = str|bytes).
                self.queue.put_audio(cast(bytes, data), frame.turn)
            else:
                self.queue.put_control(data)
        await trio.lowlevel.checkpoint()

    async def send_clear(self, turn: int) -> None:
        self.queue.flush_turn(turn)
        await trio.lowlevel.checkpoint()

    async def send_event(self, event: Event) -> None:
        await trio.lowlevel.checkpoint()  # the bus listener handles events (in order, at once)

    def _on_event(self, event: Event) -> None:
        if event.type in _ACTIVITY:
            self._touch()
        if event.type in (EventType.TURN_CANCELLED, EventType.OUTPUT_CLEARED) and event.turn:
            self.queue.flush_turn(event.turn)
        self.send(self.conv.runtime(event))
        if event.type is EventType.TRANSCRIPT_FINAL:
            self._transcribed.set()
            self._transcribed = trio.Event()

    def _touch(self) -> None:
        """Something happened: the idle timeout counts from now."""
        self._activity.set()
        self._activity = trio.Event()

    async def _watch_idle(self) -> None:
        """server_vad `idle_timeout_ms`: after that long with no speech and no response
        (counted from the end of the last one), a response prompts the user."""
        while True:
            td = self.conv.settings.turn_detection
            activity = self._activity
            if td is None or td.idle_timeout_ms is None or self.session is None:
                await activity.wait()
                continue
            with trio.move_on_after(td.idle_timeout_ms / 1000) as quiet:
                await activity.wait()
            if not quiet.cancelled_caught or not self.conv.idle or self.session.ended:
                continue
            self.send(self.conv.idle_timeout(td.idle_timeout_ms))
            self.conv.request_response(ce.ResponseOptions())
            if not self.session.push_text(RESPONSE_TRIGGER):
                self.conv.requested.clear()
            self._touch()

    # -- planner hooks ----------------------------------------------------------------------

    async def model_request(self, turn: int) -> ModelRequest | None:
        if self.conv.suppressed(turn):
            return None
        with trio.move_on_after(TRANSCRIPT_WAIT_S):
            while self.conv.pending_transcripts():
                await self._transcribed.wait()
        return self.conv.model_request(turn)

    def function_call(self, turn: int, call: FunctionCall) -> None:
        self.send(self.conv.function_call(turn, call.name, call.arguments))

    # -- the session ------------------------------------------------------------------------

    async def _ensure_session(self) -> Session:
        settings = self.conv.settings
        key = (settings.restart_key(), tuple(sorted(settings.engine_options().items())))
        if self.session is not None and not self.session.ended and key == self._session_key:
            return self.session
        await self._stop_session()
        try:
            engines = self.server.engines_factory(settings.engine_options())
        except (TypeError, ValueError) as exc:
            raise RealtimeInvalid(INVALID_VALUE, f"audio.output: {exc}"[:500],
                                  param="session.audio.output.voice") from None
        self.engines = dataclasses.replace(engines, planner=RealtimePlanner(engines.planner, self))
        self._recognizer = None
        config = self.server.session_config(settings, self.conv.session_id)
        self.conv.history_chars = config.history_chars
        assert self._nursery is not None
        await self._nursery.start(self._run_session, config, self.engines)
        self._session_key = key
        assert self.session is not None
        return self.session

    async def _run_session(self, config: SessionConfig, engines: Engines, *,
                           task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        done = self._session_done = trio.Event()
        try:
            async with open_session(config, engines, self, hub=self.server.hub) as session:
                session.bus.add_listener(self._on_event)
                self.session = session
                self.server.stats.sessions_started += 1
                task_status.started()
                await session.wait_ended()
        finally:
            done.set()

    async def _stop_session(self) -> None:
        if self.session is not None and self._session_done is not None:
            self.session.close("restarted")
            with trio.CancelScope(shield=True), trio.move_on_after(5.0):
                await self._session_done.wait()
        self.session = None

    # -- the connection ---------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._write)
                nursery.start_soon(self._watch_backlog)
                nursery.start_soon(self._stop_on_shutdown)
                nursery.start_soon(self._watch_idle)
                # Reading? Also pinged while idle: a peer gone without a FIN holds no slot.
                nursery.start_soon(partial(liveness.watch, self.ws, self.server.limits,
                                           keepalive=True))
                self.send(self.conv.session_created())
                await self._read()
                nursery.cancel_scope.cancel()
        except* (SlowConsumer, liveness.Unresponsive) as group:
            self.server.stats.slow_consumers += 1
            log.info("closing a slow consumer: %s", one_line(group))
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                try:
                    await self.ws.close(1000, "")
                except Exception as exc:
                    log.debug("close failed: %r", exc)

    async def _stop_on_shutdown(self) -> None:
        await self.server.shutting_down.wait()
        self.send([error_event("shutting_down", "the server is stopping", kind="server_error")])
        self.queue.close()  # the writer sends what is queued, then returns
        with trio.move_on_after(1.0):
            await self._drained.wait()
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def _read(self) -> None:
        while True:
            frame = await self.ws.receive()
            try:
                command = ce.parse(frame)
                await self._dispatch(command)
            except RealtimeInvalid as exc:
                self.send([exc.to_event()])
            except Exception as exc:  # our bug: this event fails, not the connection
                log.exception("realtime event failed")
                self.send([error_event(SERVER_ERROR, f"internal error: {type(exc).__name__}",
                                       kind="server_error")])

    async def _dispatch(self, command: ce.Command) -> None:
        try:
            await self._handle(command)
        except RealtimeInvalid as exc:
            exc.event_id = command.event_id
            raise

    async def _handle(self, command: ce.Command) -> None:
        conv = self.conv
        if not isinstance(command, ce.AudioAppend):
            self._touch()
        match command:
            case ce.SessionUpdate(session=obj):
                new = apply_update(conv.settings, obj)
                if (new.restart_key() != conv.settings.restart_key()
                        and self.session is not None and conv.response is not None):
                    raise RealtimeInvalid(UNSUPPORTED, "turn detection, voice and speed cannot "
                                          "change while a response is in progress",
                                          param="session.audio")
                if new.input_format != conv.settings.input_format:
                    self.input.format_changed()
                # A running session built with other settings is replaced at its next use.
                self.send(conv.session_updated(new))
            case ce.AudioAppend(audio=audio):
                await self._append(audio)
            case ce.AudioCommit():
                await self._commit()
            case ce.AudioClear():
                self.input.clear()
                self.send([{"type": "input_audio_buffer.cleared"}])
            case ce.ItemCreate(item=item, previous_item_id=previous):
                self.send(conv.create_item(item, previous))
            case ce.ItemRetrieve(item_id=item_id):
                self.send(conv.retrieve(item_id))
            case ce.ItemDelete(item_id=item_id):
                self.send(conv.delete(item_id))
            case ce.ItemTruncate(item_id=item_id, audio_end_ms=end):
                events, report = conv.truncate(item_id, end)
                if report is not None and self.session is not None:
                    self.session.report_playback(*report)
                self.send(events)
            case ce.ResponseCreate(options=options):
                session = await self._ensure_session()
                conv.request_response(options)
                if not session.push_text(RESPONSE_TRIGGER):
                    conv.requested.clear()
                    raise RealtimeInvalid(SERVER_ERROR, "the session is busy; try again")
            case ce.ResponseCancel(response_id=rid):
                turn = conv.cancel(rid)
                if self.session is not None:
                    self.session.interrupt(turn)
            case ce.OutputAudioClear():
                raise RealtimeInvalid(UNSUPPORTED, "output_audio_buffer.clear is for WebRTC and "
                                      "SIP; over WebSocket send response.cancel (and "
                                      "conversation.item.truncate)")

    async def _append(self, audio: bytes) -> None:
        if not audio:
            raise RealtimeInvalid(INVALID_VALUE, "audio is empty", param="audio")
        pcm = self.input.decode(self.conv.settings.input_format, audio)
        td = self.conv.settings.turn_detection
        if td is None:
            self.input.hold(pcm)
            return
        session = await self._ensure_session()
        if not td.interrupt_response and self.conv.response is not None:
            # No barge-in: the VAD does not hear the user over the response.
            pcm = np.zeros_like(pcm)
        if len(pcm):
            session.push_audio(pcm)

    async def _commit(self) -> None:
        if self.conv.settings.turn_detection is not None:
            raise RealtimeInvalid(UNSUPPORTED, "with turn detection on, the server commits the "
                                  "audio; set turn_detection to null for manual turns")
        self.input.check_committable()
        await self._ensure_session()  # its recognizer transcribes the buffer
        pcm = self.input.take()
        item_id, events = self.conv.commit_audio()
        self.send(events)
        assert self._nursery is not None
        self._nursery.start_soon(self._transcribe, item_id, pcm)

    async def _transcribe(self, item_id: str, pcm: np.ndarray) -> None:
        """Manual mode: the committed buffer through the session's recognizer (16 kHz)."""
        try:
            assert self.engines is not None
            async with self._recognizer_lock:
                if self._recognizer is None:
                    self._recognizer = self.engines.stt.recognizer()
                text = await recognize(self._recognizer, pcm)
            self.send(self.conv.transcribed(item_id, text, len(pcm) / RATE))
        except Exception as exc:  # the recognizer failed: the item says so, the session goes on
            log.warning("transcription failed: %r", exc)
            self.send(self.conv.transcription_failed(item_id, f"{type(exc).__name__}: {exc}"))
        finally:
            self._transcribed.set()
            self._transcribed = trio.Event()
