"""Planner tokens as a resumable SSE stream (`POST /api/chat/stream`): the trio loop around
`sse.ReplayBuffer`.

A stream's planner runs in the service's nursery, not in the HTTP request, so a client whose
connection drops can reconnect with `Last-Event-ID` and get every event it missed, then the rest
live. When no client has been attached for `orphan_timeout` seconds the planner is cancelled:
a client that went away for good does not keep model work running.

Every event also goes to the shared `Store` (bargein/store), so a reconnect that reaches another
worker replays from there and follows the rest live (`follow_remote`); that worker marks the
stream followed, so the producing worker does not cancel it as an orphan (docs/deploy.md).

- `request`: the request body, validated (pure);
- `config`: `ChatConfig`;
- `stream`: one stream (`ChatStream`, or `RemoteStream` for another worker's) and the response
  bodies that follow it (`follow_local`, `follow_remote`);
- `service`: `ChatService`, which owns the planner runs.
"""

from __future__ import annotations

from bargein.transports.chat.config import ChatConfig
from bargein.transports.chat.request import ChatRequestError, parse_chat_request, parse_json_body
from bargein.transports.chat.service import ChatService
from bargein.transports.chat.stream import ChatStream, RemoteStream

__all__ = [
    "ChatConfig",
    "ChatRequestError",
    "ChatService",
    "ChatStream",
    "RemoteStream",
    "parse_chat_request",
    "parse_json_body",
]
