"""The bounds one WebSocket connection lives within, and the close code of each way it ends."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bargein.transports.protocol import ErrorCode


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    # 5 s of 20 ms audio frames may wait for a slow peer; older ones are dropped first.
    max_audio_frames: int = 250
    # Control frames are never dropped to make room; this many waiting means nobody reads.
    max_control_frames: int = 2000
    # One write stuck this long (the peer's TCP window stayed shut) ends the connection: it is
    # closed under the write (TCP reset) and counted in `slow_consumers`.
    stall_timeout: float = 5.0
    # Bytes the kernel may hold unsent for a connection (TCP_NOTSENT_LOWAT; 0: the system's
    # default, unbounded). Beyond it writes wait, so a peer that stops reading stalls a write
    # after this much output instead of after megabytes of autotuned send buffer, and audio
    # waits in our queue, where drop-oldest and a barge-in's flush still apply.
    max_unsent_bytes: int = 16 * 1024
    # WebSocket ping/pong liveness (websocket/liveness.py): a ping every `ping_interval` s (if
    # anything was sent since the last); a peer that answered none for `pong_timeout` s while
    # one waits has stopped reading (RFC 6455 clients answer a ping when they read it, after
    # everything sent before it): its connection is reset and counted in `slow_consumers`,
    # within `pong_timeout` of its last read whatever its receive buffer. A slow reader is kept
    # while it reads what we sent in a ping interval within `pong_timeout` (down to 2/7 of our
    # rate, with these). A ping round trip costs the server ~0.3-1 ms of CPU (measured), so not
    # more often. 0 (either): no pings.
    ping_interval: float = 2.0
    pong_timeout: float = 7.0
    # `/v1/realtime` (no idle timeout of its own) also pings a connection that was sent nothing
    # for this long, so a peer that vanished without a FIN while idle (a partition, a stopped
    # process) is found within this + `pong_timeout` and frees its slot. 0: no idle pings.
    keepalive_interval: float = 30.0
    # Time to send `session.start` after connecting.
    handshake_timeout: float = 10.0
    # A session that accepted no input frame (audio, text, playback, interrupt) this long ends
    # (`idle_timeout`), so idle sockets cannot hold the server's slots.
    idle_timeout: float = 120.0
    # Bound on flushing queued frames and the close handshake when a connection ends.
    close_timeout: float = 2.0
    # After our close, the peer's frames are read and dropped until its close or disconnect
    # arrives, at most this long: unread, they block the server from ever seeing it.
    drain_timeout: float = 10.0
    max_rejections: int = 100


# WebSocket close codes (RFC 6455) for the fatal error that ended a connection; other fatal
# codes close with 1008 (policy violation), a normal end with 1000.
CLOSE_CODES = {
    ErrorCode.SESSION_FAILED.value: 1011,
    ErrorCode.INTERNAL.value: 1011,
    ErrorCode.SHUTTING_DOWN.value: 1001,
    ErrorCode.SERVER_BUSY.value: 1013,
    ErrorCode.TOO_MANY_SESSIONS.value: 1013,
    # Private-use range (4000-4999): the page must not reconnect after it.
    ErrorCode.SESSION_TAKEN_OVER.value: 4000,
}


def close_code(fatal_code: str | None) -> int:
    """The WebSocket close code for a connection that ended with `fatal_code` (None: normal)."""
    return CLOSE_CODES.get(fatal_code, 1008) if fatal_code else 1000


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
