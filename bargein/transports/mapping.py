"""Session events → protocol messages (pure): which events a client sees, and in what shape.

Event data fields are the ones the actors emit (docs/events.md); every message keeps the
event's `t` so client-side latency figures are differences of session-clock stamps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import OutFrame
from bargein.transports.protocol import (
    MAX_SERVER_TEXT_CHARS,
    AssistantText,
    ErrorCode,
    ErrorMessage,
    OutputDucked,
    OutputRestored,
    ServerMessage,
    SessionEnded,
    SpeechStarted,
    SpeechStopped,
    StatusMessage,
    TranscriptFinal,
    TranscriptPartial,
    TurnEnded,
    TurnMark,
    TurnStarted,
    Words,
    WordSpan,
    scalar_text,
)

# Turn milestones the page uses for latency figures and the timeline.
TURN_MARKS: Final = frozenset(
    {
        EventType.LLM_FIRST_TOKEN,
        EventType.TTS_FIRST_AUDIO,
        EventType.AUDIO_OUT_FIRST,
        EventType.AUDIO_PLAYED_FIRST,
        EventType.BARGE_IN,
        EventType.OUTPUT_PAUSED,
        EventType.OUTPUT_RESUMED,
        EventType.OUTPUT_CLEARED,
        EventType.FALSE_INTERRUPTION,
    }
)
_STATUS: Final = frozenset({EventType.STATUS, EventType.TOOL_STARTED, EventType.TOOL_FINISHED})


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return scalar_text(value[:MAX_SERVER_TEXT_CHARS]) if isinstance(value, str) else ""


def _time(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None  # absent, or not a time (NaN compares false above)


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    return max(0, round(value)) if isinstance(value, int | float) else 0


def event_to_message(event: Event) -> ServerMessage | None:
    """The client message for `event`, or None for events clients do not get.

    `session_started` is not mapped: the transport answers `session.start` itself, before the
    session exists. `input_rejected` is handled by the transport (it already sent the error
    frame for rejections it made).
    """
    t, turn, data = max(0.0, event.t), event.turn, event.data
    kind = event.type
    if kind is EventType.SPEECH_STARTED:
        return SpeechStarted(t)
    if kind is EventType.SPEECH_STOPPED:
        return SpeechStopped(t, _time(data, "speech_end"))
    if kind is EventType.TRANSCRIPT_PARTIAL:
        return TranscriptPartial(_text(data, "text"), _int(data, "utterance"), t)
    if kind is EventType.TRANSCRIPT_FINAL:
        return TranscriptFinal(_text(data, "text"), _int(data, "utterance"), t)
    if kind is EventType.ERROR:
        return error_message(data)
    if kind in _STATUS:
        tool = _text(data, "tool")[:200] or None
        return StatusMessage(kind.value, _text(data, "text"), turn, tool, t)
    if turn is None:
        if kind is EventType.INPUT_DROPPED:
            return StatusMessage(
                "input_dropped",
                f"server dropped old microphone audio ({_int(data, 'dropped_total')} chunks)",
                t=t,
            )
        if kind is EventType.SESSION_ENDED:
            return SessionEnded(_text(data, "reason")[:200] or "closed", t)
        return None
    if kind is EventType.TURN_STARTED:
        user_text = data.get("user_text")
        return TurnStarted(
            turn, _text(data, "user_text") if isinstance(user_text, str) else None, t
        )
    if kind is EventType.ASSISTANT_TEXT:
        return AssistantText(turn, _text(data, "delta"), t)
    if kind is EventType.AUDIO_PLAYED_FIRST:
        # Stamped when the report arrived; `played_at` is when that first sample played.
        played_at = _time(data, "played_at")
        return TurnMark(turn, kind.value, t if played_at is None else played_at)
    if kind in TURN_MARKS:
        return TurnMark(turn, kind.value, t)
    if kind is EventType.OUTPUT_DUCKED:
        depth = data.get("depth_db")
        if isinstance(depth, bool) or not isinstance(depth, int | float) or not -60 <= depth <= 0:
            depth = 0.0  # never from our own floor; the codec would refuse it
        return OutputDucked(turn, round(float(depth), 1), t)
    if kind is EventType.OUTPUT_RESTORED:
        return OutputRestored(turn, _text(data, "text"), _int(data, "ducked_ms"), t)
    if kind is EventType.TURN_COMPLETED or kind is EventType.TURN_CANCELLED:
        return TurnEnded(
            turn=turn,
            status="completed" if kind is EventType.TURN_COMPLETED else "interrupted",
            heard=_text(data, "heard_text"),
            heard_ms=_int(data, "heard_ms"),
            t=t,
        )
    return None


def error_message(data: Mapping[str, Any]) -> ErrorMessage:
    """An `error` event of the session: fatal ones end it, others lost one utterance or turn."""
    fatal = bool(data.get("fatal", False))
    source = _text(data, "source") or "session"
    detail = ": ".join(s for s in (_text(data, "error"), _text(data, "message")) if s)
    return ErrorMessage(
        code=(ErrorCode.SESSION_FAILED if fatal else ErrorCode.ENGINE_ERROR).value,
        message=f"{source}: {detail}"[:2000],
        fatal=fatal,
    )


def words_message(frame: OutFrame) -> Words | None:
    """Word marks carried by an output frame, as a `words` message (None if it has none)."""
    if not frame.words:
        return None
    return Words(
        frame.turn,
        tuple(
            WordSpan(scalar_text(w.text[:200]), w.start, max(w.start, w.end)) for w in frame.words
        ),
    )
