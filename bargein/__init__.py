"""bargein: a real-time voice-AI runtime on trio.

Embedding:

    async with bargein.open_session(bargein.SessionConfig(), engines, transport) as session:
        session.push_audio(pcm)
        await session.wait_ended()
"""

from bargein.actors.policy import InterruptionPolicy
from bargein.actors.vad import VadConfig
from bargein.engines.base import Engines
from bargein.runtime.bus import EventHub
from bargein.runtime.events import Event, EventType
from bargein.runtime.history import ChatMessage
from bargein.runtime.transport import Transport
from bargein.session import Session, SessionConfig, open_session

__version__ = "0.1.0"

__all__ = [
    "ChatMessage",
    "Engines",
    "Event",
    "EventHub",
    "EventType",
    "InterruptionPolicy",
    "Session",
    "SessionConfig",
    "Transport",
    "VadConfig",
    "open_session",
]
