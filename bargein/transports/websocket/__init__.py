"""One voice session per WebSocket: frames → codec → `Session.push_*`, session → codec → frames.

limits     `ConnectionLimits` and the close code of each way a connection ends
transport  `WebSocketTransport`: the session's outbound edge, its queue and writer
server     `SessionServer`: shared state across connections, admission, running a session
connection one connection around its session: writer, liveness, drain and close
inbound    what is read from a connection: the handshake, the input loop, the drain
endpoint   `/ws` as a bare ASGI endpoint; frames: the fast parser of the common frames
tcp        the TCP socket under a served WebSocket: bound its unsent bytes, abort it
asgi       `drain_after_close`: once a handler returned, detach hypercorn's event queue (what
           it still puts is dropped, what is queued taken; other ASGI servers: read and drop)
"""

from bargein.transports.websocket.limits import ConnectionLimits
from bargein.transports.websocket.server import (
    EnginesFactory,
    SessionServer,
    default_session_config,
)
from bargein.transports.websocket.stats import ServerStats
from bargein.transports.websocket.transport import SlowConsumer, WebSocketLike, WebSocketTransport

__all__ = [
    "ConnectionLimits",
    "EnginesFactory",
    "ServerStats",
    "SessionServer",
    "SlowConsumer",
    "WebSocketLike",
    "WebSocketTransport",
    "default_session_config",
]
