"""An OpenAI-Realtime-compatible endpoint (GA protocol) on a bargein session (docs/realtime.md).

    client_events.py  client events -> typed commands (validation errors name the event_id)
    config.py         the session configuration and its partial updates
    conversation.py   items, the response in progress, truncation: runtime events -> server events
    items.py          the conversation's items (what the client and the model see)
    responses.py      a response's server events, the model request built from the items
    planner.py        the planner wrapper: context from the items, client function calls
    input_audio.py    input audio decoding, the manual-mode buffer and its transcription
    connection.py     the trio adapter: one connection driving a `bargein.Session`
    server.py         admits connections (`RealtimeServer`), the session config they ask for
    routes.py         `/v1/realtime` on the demo app through the access layer
"""

from bargein.transports.realtime.conversation import RealtimeConversation
from bargein.transports.realtime.planner import FunctionCall, RealtimePlanner, ToolCallingPlanner
from bargein.transports.realtime.routes import add_realtime_routes
from bargein.transports.realtime.server import RealtimeServer

__all__ = [
    "FunctionCall",
    "RealtimeConversation",
    "RealtimePlanner",
    "RealtimeServer",
    "ToolCallingPlanner",
    "add_realtime_routes",
]
