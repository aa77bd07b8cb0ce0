"""`SessionServer`: what is shared across connections, and the handler of one connection.

It owns the engines factory, the event hub, the session limit, the conversations that can be
resumed, and the counters `/healthz` reports. It works with any object that has quart's
websocket methods (`accept`, `receive`, `send`, `close`), which is how the tests drive it
without a server too.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from bargein.engines.base import Engines
from bargein.runtime.bus import EventHub
from bargein.runtime.history import ChatMessage
from bargein.session import Session, SessionConfig, open_session
from bargein.transports.protocol import (
    AudioEnd,
    AudioIn,
    ErrorCode,
    ErrorMessage,
    Interrupt,
    OptionValue,
    Playback,
    RemoteProtocolError,
    ServerProtocol,
    SessionStart,
    SessionStarted,
    Text,
    max_audio_bytes,
)
from bargein.transports.websocket.limits import ConnectionLimits, close_code
from bargein.transports.websocket.transport import SlowConsumer, WebSocketLike, WebSocketTransport

log = logging.getLogger("bargein.transports")

EnginesFactory = Callable[[Mapping[str, OptionValue]], Engines]


def default_session_config(start: SessionStart, session_id: str) -> SessionConfig:
    return SessionConfig(
        input_rate=start.sample_rate,
        output_rate=start.effective_output_rate,
        session_id=session_id,
        # A little audio in flight absorbs network jitter; `clear` flushes it on barge-in.
        egress_lead_ms=60,
    )


@dataclass(slots=True)
class ServerStats:
    connections: int = 0
    sessions_started: int = 0
    sessions_resumed: int = 0
    slow_consumers: int = 0
    handshake_timeouts: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    dropped_audio_frames: int = 0

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["refused"] = dict(self.refused)
        out["rejections"] = dict(self.rejections)
        return out


class SessionServer:
    """Serves voice sessions over WebSockets; one `handle(ws)` call per connection."""

    def __init__(
        self,
        engines_factory: EnginesFactory,
        *,
        hub: EventHub | None = None,
        token: str | None = None,
        max_sessions: int = 32,
        remembered_conversations: int = 256,
        limits: ConnectionLimits | None = None,
        session_config: Callable[[SessionStart, str], SessionConfig] = default_session_config,
    ) -> None:
        self.engines_factory = engines_factory
        self.hub = hub if hub is not None else EventHub()
        self.token = token
        self.max_sessions = max_sessions
        self.limits = limits or ConnectionLimits()
        self.session_config = session_config
        self.sessions: dict[str, Session] = {}
        self._starting: set[str] = set()
        self._idle = trio.Event()
        self._idle.set()
        self.stats = ServerStats()
        self.shutting_down = trio.Event()
        # Heard histories of ended sessions, for `session.start` with `session_id`.
        self._conversations: OrderedDict[str, tuple[ChatMessage, ...]] = OrderedDict()
        self._remembered = remembered_conversations

    async def wait_idle(self) -> None:
        """Return once no session is running (each ended one is remembered for resumption)."""
        await self._idle.wait()

    def shutdown(self) -> None:
        """Tell every connection to end its session (with a `shutting_down` error)."""
        self.shutting_down.set()

    async def handle(self, ws: WebSocketLike, *, authorized: bool = False) -> None:
        """Serve one connection until the session ends, the peer leaves or misbehaves.
        `authorized`: the app already checked a header or subprotocol token (docs/web.md)."""
        self.stats.connections += 1
        protocol = ServerProtocol(max_rejections=self.limits.max_rejections)
        transport = WebSocketTransport(protocol, self.limits)
        await ws.accept()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(transport.run_writer, ws.send)
                await self._converse(ws, protocol, transport, authorized)
                transport.close()
                with trio.move_on_after(self.limits.close_timeout):
                    await transport.wait_drained()
                nursery.cancel_scope.cancel()
        except* SlowConsumer as group:
            self.stats.slow_consumers += 1
            transport.fatal_code = ErrorCode.SLOW_CONSUMER.value
            log.info("closing a slow consumer: %s", group.exceptions[0])
        finally:
            self.stats.rejections.update(protocol.rejections)
            self.stats.dropped_audio_frames += transport.stats.dropped_audio
        code = transport.fatal_code
        # Bounded and shielded: the peer may be gone or not reading, and we may be cancelled.
        with trio.CancelScope(shield=True), trio.move_on_after(self.limits.close_timeout):
            try:
                await ws.close(close_code(code), code or "")
            except Exception as exc:  # the peer is gone already: nothing left to tell it
                log.debug("websocket close failed: %r", exc)

    async def _handshake(
        self, ws: WebSocketLike, protocol: ServerProtocol, transport: WebSocketTransport
    ) -> SessionStart | None:
        """Read frames until a valid `session.start`; reject anything else (not fatal)."""
        with trio.move_on_after(self.limits.handshake_timeout):
            while True:
                frame = await ws.receive()
                try:
                    message = protocol.receive(frame)
                except RemoteProtocolError as error:
                    transport.report_rejection(error)
                    if error.fatal:
                        return None
                    continue
                assert isinstance(message, SessionStart)  # the codec allows nothing else yet
                return message
        self.stats.handshake_timeouts += 1
        transport.send_message(
            ErrorMessage(ErrorCode.NOT_STARTED.value, "no 'session.start' in time", fatal=True)
        )
        return None

    def _token_ok(self, given: str | None) -> bool:
        if self.token is None:
            return True
        # Bytes: compare_digest raises TypeError for non-ASCII str.
        return given is not None and secrets.compare_digest(
            given.encode("utf-8", "replace"), self.token.encode()
        )

    def _refuse(self, transport: WebSocketTransport, code: ErrorCode, message: str) -> None:
        self.stats.refused[code.value] += 1
        transport.send_message(ErrorMessage(code.value, message, fatal=True))

    async def _converse(
        self,
        ws: WebSocketLike,
        protocol: ServerProtocol,
        transport: WebSocketTransport,
        authorized: bool = False,
    ) -> None:
        start = await self._handshake(ws, protocol, transport)
        if start is None:
            return
        if not authorized and not self._token_ok(start.token):
            self._refuse(transport, ErrorCode.UNAUTHORIZED, "a valid 'token' is required")
            return
        if self.shutting_down.is_set():
            self._refuse(transport, ErrorCode.SHUTTING_DOWN, "the server is stopping")
            return
        if len(self.sessions) + len(self._starting) >= self.max_sessions:
            self._refuse(transport, ErrorCode.SERVER_BUSY, f"{self.max_sessions} sessions running")
            return
        try:
            engines = self.engines_factory(start.options)
        except (TypeError, ValueError) as exc:
            self._refuse(transport, ErrorCode.BAD_FIELD, f"options: {exc}")
            return
        session_id, history = self._resume(start, transport)
        config = dataclasses.replace(self.session_config(start, session_id), history=tuple(history))
        self._starting.add(session_id)
        if self._idle.is_set():
            self._idle = trio.Event()
        session: Session | None = None
        try:
            async with open_session(config, engines, transport, hub=self.hub) as session:
                self._starting.discard(session_id)
                self.sessions[session_id] = session
                self.stats.sessions_started += 1
                # Nothing the client can see has happened yet (no input was read), so this is
                # still the first message of the session; the codec refuses anything earlier.
                transport.send_message(
                    SessionStarted(
                        session_id=session_id,
                        sample_rate=config.input_rate,
                        output_rate=config.output_rate,
                        max_audio_bytes=max_audio_bytes(config.input_rate),
                        resumed=bool(history),
                        t=round(session.bus.now(), 6),
                    )
                )
                # Rejections before the session existed still belong to its record.
                for code, count in protocol.rejections.items():
                    for _ in range(count):
                        session.reject(code, "before session.start")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read, ws, protocol, transport, session)
                    nursery.start_soon(self._stop_on_shutdown, transport, session)
                    await session.wait_ended()
                    nursery.cancel_scope.cancel()
        finally:
            self._starting.discard(session_id)
            self.sessions.pop(session_id, None)
            if session is not None:
                self._remember(session_id, session.messages)
            if not self.sessions and not self._starting:
                self._idle.set()

    def _resume(
        self, start: SessionStart, transport: WebSocketTransport
    ) -> tuple[str, tuple[ChatMessage, ...]]:
        if start.session_id is None:
            return secrets.token_urlsafe(9), ()
        running = start.session_id in self.sessions or start.session_id in self._starting
        history = None if running else self._conversations.pop(start.session_id, None)
        if history is None:
            reason = (
                f"session {start.session_id} is still running"
                if running
                else f"no conversation {start.session_id} to resume"
            )
            transport.send_message(
                ErrorMessage(ErrorCode.UNKNOWN_SESSION.value, f"{reason}; starting a new one")
            )
            return secrets.token_urlsafe(9), ()
        self.stats.sessions_resumed += 1
        return start.session_id, history

    def _remember(self, session_id: str, messages: tuple[ChatMessage, ...]) -> None:
        if not any(m.role != "system" for m in messages):
            return
        self._conversations[session_id] = tuple(m for m in messages if m.role != "system")
        self._conversations.move_to_end(session_id)
        while len(self._conversations) > self._remembered:
            self._conversations.popitem(last=False)

    async def _read(
        self,
        ws: WebSocketLike,
        protocol: ServerProtocol,
        transport: WebSocketTransport,
        session: Session,
    ) -> None:
        while True:
            frame = await ws.receive()
            try:
                message = protocol.receive(frame)
            except RemoteProtocolError as error:
                transport.report_rejection(error)
                session.reject(error.code.value, error.message)
                if error.fatal:
                    session.close("protocol_error")
                    return
                continue
            if isinstance(message, AudioIn):
                session.push_audio(message.pcm)
            elif isinstance(message, Playback):
                session.report_playback(message.turn, message.played_samples)
            elif isinstance(message, Text):
                session.push_text(message.text)
            elif isinstance(message, Interrupt):
                session.interrupt()
            elif isinstance(message, AudioEnd):
                session.end_input()

    async def _stop_on_shutdown(self, transport: WebSocketTransport, session: Session) -> None:
        await self.shutting_down.wait()
        transport.send_message(
            ErrorMessage(ErrorCode.SHUTTING_DOWN.value, "the server is stopping", fatal=True)
        )
        session.close("shutdown")
