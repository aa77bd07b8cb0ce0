"""What one `bargein run` conversation did, read from its event stream (pure, no I/O but `out`).

`analyse` assembles utterances, turns with their latencies and errors from the stamped events;
`print_conversation` writes the human-readable account (format in docs/run.md). Kept apart from
the command (`bargein.run_file`) so the engine benchmark and tests can use it without argparse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from bargein.runtime.events import Event, EventType

# -- analysis of the event stream ----------------------------------------------------------------


@dataclass(slots=True)
class Utterance:
    """One user utterance as the VAD and STT reported it (times: media time of the input)."""

    utterance: int
    text: str
    t: float  # session time of the final transcript
    onset: float | None = None
    offset: float | None = None


@dataclass(slots=True)
class TurnReport:
    """One assistant turn, assembled from its stamped events."""

    turn: int
    user_text: str
    started: float
    status: str = "running"  # completed | cancelled | unfinished
    reason: str | None = None
    generated_text: str = ""
    heard_text: str = ""
    cut_text: str = ""
    heard_ms: float = 0.0
    first_token: float | None = None
    first_tts: float | None = None
    first_audio: float | None = None
    ended: float | None = None
    barge_in: dict[str, Any] | None = None
    false_interruptions: list[dict[str, Any]] = field(default_factory=list)
    # The end-of-speech decision that ended the user's turn: its session time, and the VAD's
    # media times of the speech offset and of the decision.
    speech_stopped: float | None = None
    speech_offset: float | None = None
    speech_stopped_media: float | None = None

    def latency_ms(self) -> dict[str, float | None]:
        """Latencies of this turn in ms; None where an event is missing (see docs/run.md)."""

        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round(1000 * (b - a), 3)

        endpointing = ms(self.speech_offset, self.speech_stopped_media)
        decision_to_audio = ms(self.speech_stopped, self.first_audio)
        return {
            "endpointing": endpointing,
            "speech_stopped_to_audio": decision_to_audio,
            "speech_offset_to_audio": (
                None
                if endpointing is None or decision_to_audio is None
                else round(endpointing + decision_to_audio, 3)
            ),
            "turn_started_to_audio": ms(self.started, self.first_audio),
            "turn_started_to_llm_first_token": ms(self.started, self.first_token),
            "turn_started_to_tts_first_audio": ms(self.started, self.first_tts),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "user_text": self.user_text,
            "status": self.status,
            "reason": self.reason,
            "generated_text": self.generated_text,
            "heard_text": self.heard_text,
            "cut_text": self.cut_text,
            "heard_ms": self.heard_ms,
            "t": {
                "speech_stopped": _r(self.speech_stopped),
                "turn_started": _r(self.started),
                "audio_out_first": _r(self.first_audio),
                "ended": _r(self.ended),
            },
            "latency_ms": self.latency_ms(),
            "barge_in": self.barge_in,
            "false_interruptions": self.false_interruptions,
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def cut_text(generated: str, heard: str) -> str:
    """What was generated but not heard. `heard` is a prefix of `generated` by construction."""
    if generated.startswith(heard):
        return generated[len(heard) :].strip()
    return generated.strip()


@dataclass(slots=True)
class Report:
    utterances: list[Utterance]
    turns: list[TurnReport]
    errors: list[dict[str, Any]]


def analyse(events: Sequence[Event]) -> Report:
    """Utterances, turns (with per-turn latencies) and errors of one session's event stream."""
    utterances: list[Utterance] = []
    turns: dict[int, TurnReport] = {}
    errors: list[dict[str, Any]] = []
    # The STT numbers utterances 1, 2, ... in the order of the VAD's speech_started events.
    starts: list[Event] = []
    stops: list[Event] = []
    last_final: Utterance | None = None
    for e in events:
        d = e.data
        match e.type:
            case EventType.SPEECH_STARTED:
                starts.append(e)
            case EventType.SPEECH_STOPPED:
                stops.append(e)
            case EventType.TRANSCRIPT_FINAL:
                n = int(d["utterance"])
                utt = Utterance(n, str(d["text"]), e.t)
                if 0 < n <= len(starts):
                    utt.onset = float(starts[n - 1].data["onset"])
                if 0 < n <= len(stops):
                    utt.offset = float(stops[n - 1].data["offset"])
                utterances.append(utt)
                if utt.text.strip():
                    last_final = utt
            case EventType.TURN_STARTED if e.turn is not None:
                turn = TurnReport(e.turn, str(d.get("user_text", "")), e.t)
                # The utterance whose final transcript opened the turn, and its end of speech.
                n = last_final.utterance if last_final is not None else 0
                if 0 < n <= len(stops):
                    stop = stops[n - 1]
                    turn.speech_stopped = stop.t
                    turn.speech_offset = float(stop.data["offset"])
                    turn.speech_stopped_media = float(stop.data["media_t"])
                turns[e.turn] = turn
            case EventType.LLM_FIRST_TOKEN if e.turn in turns:
                turns[e.turn].first_token = e.t
            case EventType.TTS_FIRST_AUDIO if e.turn in turns:
                turns[e.turn].first_tts = e.t
            case EventType.AUDIO_OUT_FIRST if e.turn in turns:
                turns[e.turn].first_audio = e.t
            case EventType.BARGE_IN if e.turn in turns:
                turns[e.turn].barge_in = {"t": round(e.t, 6), **d}
            case EventType.FALSE_INTERRUPTION if e.turn in turns:
                turns[e.turn].false_interruptions.append({"t": round(e.t, 6), **d})
            case EventType.TURN_COMPLETED | EventType.TURN_CANCELLED if e.turn in turns:
                t = turns[e.turn]
                t.status = "completed" if e.type is EventType.TURN_COMPLETED else "cancelled"
                t.reason = d.get("reason")
                t.generated_text = str(d.get("generated_text", ""))
                t.heard_text = str(d.get("heard_text", ""))
                t.cut_text = cut_text(t.generated_text, t.heard_text)
                t.heard_ms = float(d.get("heard_ms", 0.0))
                t.ended = e.t
            case EventType.ERROR:
                errors.append({"t": round(e.t, 6), "turn": e.turn, **d})
            case _:
                pass
    for t in turns.values():
        if t.status == "running":
            t.status = "unfinished"
    return Report(utterances, sorted(turns.values(), key=lambda t: t.turn), errors)


# -- output ----------------------------------------------------------------------------------------


def _fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def print_conversation(report: Report, header: str, out: TextIO) -> None:
    """The human-readable account (format documented in docs/run.md)."""
    print(header, file=out)
    lines: list[tuple[float, int, str]] = []
    for u in report.utterances:
        span = (
            f"  (speech {u.onset:.2f}-{u.offset:.2f} s)"
            if u.onset is not None and u.offset is not None
            else ""
        )
        text = u.text if u.text else "(nothing recognised)"
        lines.append((u.t, 0, f"{u.t:8.3f}  user          {text}{span}"))
    for t in report.turns:
        at = t.first_audio if t.first_audio is not None else t.started
        said = t.heard_text if t.status == "cancelled" else t.generated_text
        label = "interrupted" if t.status == "cancelled" else t.status
        lat = t.latency_ms()
        lines.append(
            (
                at,
                1,
                f"{at:8.3f}  assistant #{t.turn}  {said or '(nothing heard)'}  [{label}]\n"
                f"{'':10}latency: {_fmt_ms(lat['speech_stopped_to_audio'])} from end-of-speech "
                f"decision, {_fmt_ms(lat['speech_offset_to_audio'])} from speech offset, "
                f"{_fmt_ms(lat['turn_started_to_audio'])} from turn start",
            )
        )
        for fi in t.false_interruptions:
            lines.append(
                (
                    fi["t"],
                    2,
                    f"{fi['t']:8.3f}  resumed #{t.turn}    false interruption "
                    f"{fi.get('text', '')!r} (paused {fi.get('paused_ms', 0):.0f} ms)",
                )
            )
        if t.status == "cancelled" and t.ended is not None:
            reason = t.reason or "cancelled"
            lines.append(
                (
                    t.ended,
                    2,
                    f"{t.ended:8.3f}  cut #{t.turn}        ({reason}) heard {t.heard_text!r}; "
                    f"cut {t.cut_text!r}",
                )
            )
    for err in report.errors:
        lines.append(
            (
                err["t"],
                3,
                f"{err['t']:8.3f}  error         {err.get('source')}: {err.get('error')}: "
                f"{err.get('message')}",
            )
        )
    for _, _, line in sorted(lines, key=lambda x: (x[0], x[1])):
        print(line, file=out)
