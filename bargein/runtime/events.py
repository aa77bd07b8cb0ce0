"""The session event vocabulary: every actor reports what it did as a stamped `Event`.

The trace, the monitoring stream, the client's control frames and every latency figure are views
of this one stream, so a latency is always the difference of two `t` stamps.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class EventType(enum.StrEnum):
    SESSION_STARTED = "session_started"
    SPEECH_STARTED = "speech_started"
    SPEECH_STOPPED = "speech_stopped"
    TRANSCRIPT_PARTIAL = "transcript_partial"
    TRANSCRIPT_FINAL = "transcript_final"
    TURN_STARTED = "turn_started"
    LLM_FIRST_TOKEN = "llm_first_token"
    ASSISTANT_TEXT = "assistant_text"
    TOOL_STARTED = "tool_started"
    TOOL_FINISHED = "tool_finished"
    STATUS = "status"
    TTS_FIRST_AUDIO = "tts_first_audio"
    AUDIO_OUT_FIRST = "audio_out_first"
    AUDIO_PLAYED_FIRST = "audio_played_first"
    OUTPUT_CLEARED = "output_cleared"
    OUTPUT_PAUSED = "output_paused"
    OUTPUT_RESUMED = "output_resumed"
    OUTPUT_DUCKED = "output_ducked"
    OUTPUT_RESTORED = "output_restored"
    BARGE_IN = "barge_in"
    FALSE_INTERRUPTION = "false_interruption"
    TURN_CANCELLED = "turn_cancelled"
    TURN_COMPLETED = "turn_completed"
    INPUT_DROPPED = "input_dropped"
    INPUT_REJECTED = "input_rejected"
    ERROR = "error"
    SESSION_ENDED = "session_ended"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in a session.

    `t` is the session clock in seconds (trio time minus the session's start), `seq` the event's
    position in its session's stream (0, 1, 2, ...), `turn` the assistant turn it belongs to.
    `data` holds JSON-ready fields documented per type in docs/events.md.
    """

    type: EventType
    t: float
    session: str
    seq: int
    turn: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type.value,
            "t": round(self.t, 6),
            "session": self.session,
            "seq": self.seq,
        }
        if self.turn is not None:
            out["turn"] = self.turn
        out.update(self.data)
        return out
