"""`bargein run INPUT.wav`: talk to the assistant from a recording (the recording is the mic).

By default the session runs on a virtual clock (trio's `MockClock(autojump_threshold=0)`) with
inline engine compute: as fast as the engines allow, every engine call charged to the session
clock with its measured duration, every timing in media time. `--realtime` paces the file on the
real clock with engine compute in worker threads. Network engines (`--llm-base-url`) need
`--realtime`: on a virtual clock a network wait costs no session time. See docs/run.md.

Exit codes: 0 done; 1 unreadable input, unwritable output or a session that ended in an error;
2 usage errors (including a network engine without `--realtime`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import trio
import trio.testing

from bargein.actors.policy import InterruptionPolicy
from bargein.engines.base import Engines, PlannerEngine
from bargein.filerun import Conversation, converse
from bargein.runtime.events import Event, EventType
from bargein.session import SessionConfig
from bargein.wavio import AudioFileError, read_wav, write_wav

PROG = "bargein run"
# Session time granted after the input ends for the assistant to finish its last reply.
DRAIN_S = 120.0


class UsageError(Exception):
    """Options that cannot work together; exit code 2."""


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


# -- running -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Talk to the assistant from a recording: the file is the microphone. Runs on a "
            "virtual clock (engine compute charged to it) unless --realtime."
        ),
        epilog="Network engines (--llm-base-url) require --realtime. See docs/run.md.",
    )
    p.add_argument("input", metavar="INPUT.wav", help="WAV (any rate/width/channels) or .raw")
    p.add_argument("--out", metavar="REPLY.wav", help="the assistant's audio on the input timeline")
    p.add_argument("--trace", metavar="TRACE.jsonl", help="the session's events, one JSON a line")
    p.add_argument(
        "--realtime", action="store_true", help="real clock, engine compute in worker threads"
    )
    p.add_argument("--policy", choices=("onset", "confirm"), default="confirm")
    p.add_argument(
        "--min-speech-ms",
        type=int,
        default=InterruptionPolicy().min_speech_ms,
        metavar="N",
        help="confirm policy: speech needed to confirm an interruption (default %(default)s)",
    )
    p.add_argument("--voice", default="en-us", help="espeak-ng voice (default %(default)s)")
    p.add_argument("--rate-wpm", type=int, default=175, metavar="N", help="speaking rate")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument("--llm-base-url", metavar="URL", help="OpenAI-compatible planner endpoint")
    p.add_argument("--llm-model", metavar="MODEL", help="model name (default gpt-4o-mini)")
    p.add_argument("--llm-api-key", metavar="KEY", help="API key (default $OPENAI_API_KEY)")
    return p


def _planner(args: argparse.Namespace) -> PlannerEngine | None:
    if args.llm_base_url is None:
        if args.llm_model is not None or args.llm_api_key is not None:
            raise UsageError("--llm-model and --llm-api-key need --llm-base-url")
        return None
    if not args.realtime:
        raise UsageError(
            "--llm-base-url needs --realtime: on the virtual clock a network wait costs no "
            "session time, so the latencies would be meaningless (see docs/run.md)"
        )
    try:
        from bargein.engines.openai_compat import OpenAIPlanner
    except ImportError as exc:  # optional dependencies missing
        raise UsageError(f"the OpenAI-compatible planner is not available: {exc}") from None
    return OpenAIPlanner(
        base_url=args.llm_base_url,
        model=args.llm_model or "gpt-4o-mini",
        api_key=args.llm_api_key,
    )


def _engines(args: argparse.Namespace, planner: PlannerEngine | None) -> Engines:
    from bargein.engines.embedded import default_engines

    try:
        engines = default_engines(voice=args.voice, rate_wpm=args.rate_wpm)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if planner is not None:
        engines = Engines(stt=engines.stt, planner=planner, tts=engines.tts)
    return engines


def _check_writable(path: str | None, what: str) -> None:
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise OSError(f"{what} {path}: is a directory")
    if not target.parent.is_dir():
        raise OSError(f"{what} {path}: no such directory {target.parent}")


async def _converse(pcm: Any, rate: int, engines: Engines, config: SessionConfig) -> Conversation:
    try:
        return await converse(pcm, rate, engines, config, drain_s=DRAIN_S)
    finally:
        aclose = getattr(engines.planner, "aclose", None)
        if aclose is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                await aclose()


def _err(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2) and --help (0)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if args.min_speech_ms < 0:
            raise UsageError("--min-speech-ms must be >= 0")
        planner = _planner(args)
        policy = InterruptionPolicy(mode=args.policy, min_speech_ms=args.min_speech_ms)
        engines = _engines(args, planner)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        _err(str(exc))
        return 2
    try:
        pcm, rate = read_wav(args.input)
        _check_writable(args.out, "--out")
        _check_writable(args.trace, "--trace")
    except (AudioFileError, OSError) as exc:
        _err(str(exc))
        return 1
    from bargein.dsp import warm_up

    warm_up()
    config = SessionConfig(
        policy=policy,
        compute="thread" if args.realtime else "inline",
        trace_path=args.trace,
    )
    wall0 = time.perf_counter()
    try:
        if args.realtime:
            conv = trio.run(_converse, pcm, rate, engines, config)
        else:
            clock = trio.testing.MockClock(autojump_threshold=0)
            conv = trio.run(_converse, pcm, rate, engines, config, clock=clock)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    wall_s = time.perf_counter() - wall0
    if args.out:
        try:
            write_wav(args.out, conv.reply_audio, conv.rate)
        except OSError as exc:
            _err(f"--out {args.out}: {exc}")
            return 1

    report = analyse(conv.events)
    duration = len(pcm) / rate
    clock_name = "real" if args.realtime else "virtual"
    if args.json:
        summary = {
            "input": {"path": args.input, "rate": rate, "duration_s": round(duration, 3)},
            "clock": clock_name,
            "compute": config.compute,
            "policy": {"mode": policy.mode, "min_speech_ms": policy.min_speech_ms},
            "engines": {
                "stt": engines.stt.name,
                "planner": engines.planner.name,
                "tts": engines.tts.name,
            },
            "end_reason": conv.end_reason,
            "session_s": round(conv.events[-1].t, 6) if conv.events else 0.0,
            "wall_s": round(wall_s, 3),
            "utterances": [
                {
                    "utterance": u.utterance,
                    "text": u.text,
                    "onset": u.onset,
                    "offset": u.offset,
                    "t": round(u.t, 6),
                }
                for u in report.utterances
            ],
            "turns": [t.to_json() for t in report.turns],
            "errors": report.errors,
            "out": args.out,
            "trace": args.trace,
        }
        json.dump(summary, sys.stdout)
        sys.stdout.write("\n")
    else:
        header = (
            f"{Path(args.input).name}: {duration:.2f} s at {rate} Hz, {clock_name} clock, "
            f"policy {policy.mode}, engines {engines.stt.name} / {engines.planner.name} / "
            f"{engines.tts.name}"
        )
        print_conversation(report, header, sys.stdout)
        session_s = conv.events[-1].t if conv.events else 0.0
        print(
            f"session ended ({conv.end_reason}) at {session_s:.3f} s session time, "
            f"{wall_s:.2f} s wall time"
        )
        if args.out:
            print(f"reply audio: {args.out}")
        if args.trace:
            print(f"trace: {args.trace}")
    if conv.end_reason == "error":
        for err in report.errors:
            if err.get("fatal"):
                _err(f"session failed in {err.get('source')}: {err.get('message')}")
        return 1
    return 0
