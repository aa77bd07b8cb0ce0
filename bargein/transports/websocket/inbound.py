"""What the server reads from one connection: the handshake, the session's input loop, the
idle and shutdown watchers, and draining a connection it is done with."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

import trio

from bargein.session import Session
from bargein.transports.protocol import (
    AudioEnd,
    AudioIn,
    ErrorCode,
    ErrorMessage,
    Interrupt,
    Playback,
    RemoteProtocolError,
    ServerProtocol,
    SessionStart,
    Text,
)
from bargein.transports.websocket.stats import ServerStats
from bargein.transports.websocket.transport import WebSocketLike, WebSocketTransport

log = logging.getLogger("bargein.transports")


@dataclass(slots=True)
class Activity:
    last_input: float  # trio time of the last accepted input frame


def known_policy(
    start: SessionStart,
    policies: Collection[str],
    protocol: ServerProtocol,
    transport: WebSocketTransport,
) -> SessionStart:
    """`start` without a `policy` option outside `policies` (when the server lists any): the
    client is told (a non-fatal `bad_field`, counted with the session's rejections) and the
    session gets the server's default, as a refused resume gets a new conversation."""
    name = start.options.get("policy")
    if name is None or not policies or name in policies:
        return start
    protocol.rejections[ErrorCode.BAD_FIELD.value] += 1
    message = f"options: unknown policy {str(name)[:40]!r}; using the server's default"
    transport.send_message(ErrorMessage(ErrorCode.BAD_FIELD.value, message))
    options = {k: v for k, v in start.options.items() if k != "policy"}
    return dataclasses.replace(start, options=options)


async def handshake(
    ws: WebSocketLike, protocol: ServerProtocol, transport: WebSocketTransport
) -> SessionStart | None:
    """Read frames until a valid `session.start`; reject anything else (not fatal). None after
    a fatal rejection. The caller bounds the time (`handshake_timeout`)."""
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


async def read_input(
    ws: WebSocketLike,
    protocol: ServerProtocol,
    transport: WebSocketTransport,
    session: Session,
    activity: Activity,
) -> None:
    """The session's input: every frame through the codec, then to the session. Over the
    bare endpoint (endpoint.py) frames are taken in the server's reader task as they are
    parsed (`read_inline`), one task switch per frame fewer; elsewhere read one by one."""

    def take(frame: str | bytes) -> bool:
        """One frame to the session (never blocks); False once reading must stop."""
        try:
            message = protocol.receive(frame)
            activity.last_input = trio.current_time()
        except RemoteProtocolError as error:
            transport.report_rejection(error)
            session.reject(error.code.value, error.message)
            if error.fatal:
                session.close("protocol_error")
                return False
            return True
        if isinstance(message, AudioIn):
            session.push_audio(message.pcm)
        elif isinstance(message, Playback):
            session.report_playback(message.turn, message.played_samples)
        elif isinstance(message, Text):
            session.push_text(message.text)
        elif isinstance(message, Interrupt):
            # A `turn` that is not the current one is a stale press: a no-op, counted.
            session.interrupt(message.turn)
        elif isinstance(message, AudioEnd):
            session.end_input()
        return True

    read_inline: Callable[[Callable[[str | bytes], bool]], Awaitable[bool]] | None = getattr(
        ws, "read_inline", None
    )
    if read_inline is not None and await read_inline(take):
        return
    while take(await ws.receive()):
        pass


async def stop_when_idle(
    transport: WebSocketTransport,
    session: Session,
    activity: Activity,
    stats: ServerStats,
    idle_limit: float,
) -> None:
    """End the session once no input was accepted for `idle_limit` seconds."""
    while True:
        deadline = activity.last_input + idle_limit
        if trio.current_time() >= deadline:
            break
        await trio.sleep_until(deadline)
    stats.idle_timeouts += 1
    transport.send_message(
        ErrorMessage(ErrorCode.IDLE_TIMEOUT.value, f"no input for {idle_limit:g} s", fatal=True)
    )
    session.close("idle")


async def stop_on_shutdown(
    transport: WebSocketTransport, session: Session, shutting_down: trio.Event
) -> None:
    await shutting_down.wait()
    transport.send_message(
        ErrorMessage(ErrorCode.SHUTTING_DOWN.value, "the server is stopping", fatal=True)
    )
    session.close("shutdown")


async def drain(
    ws: WebSocketLike, stats: ServerStats, done: trio.CancelScope | None = None
) -> None:
    """Read and drop frames until the connection is closed (`receive` fails)."""
    try:
        while True:
            await ws.receive()
            stats.drained_frames += 1
    except Exception as exc:  # closed, the way the framework says it (quart, trio-websocket)
        log.debug("drained until %r", exc)
    if done is not None:
        done.cancel()
