"""An OpenAI-Realtime-compatible endpoint (GA protocol) on a bargein session (docs/realtime.md).

    client_events.py  client events -> typed commands (validation errors name the event_id)
    config.py         the session configuration and its partial updates
    conversation.py   items, the response in progress, truncation: runtime events -> server events
    planner.py        the planner wrapper: context from the items, client function calls
    server.py         the trio adapter driving a `bargein.Session`
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
