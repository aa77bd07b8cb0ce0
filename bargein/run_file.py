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
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import trio
import trio.testing

from bargein.cli import add_policy_argument
from bargein.engines.base import Engines, PlannerEngine
from bargein.filerun import Conversation, converse
from bargein.presets import preset
from bargein.run_report import analyse, print_conversation
from bargein.session import SessionConfig
from bargein.wavio import AudioFileError, read_wav, write_wav

PROG = "bargein run"
# Session time granted after the input ends for the assistant to finish its last reply.
DRAIN_S = 120.0


class UsageError(Exception):
    """Options that cannot work together; exit code 2."""


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
    add_policy_argument(p, "interruption preset: how talking over the reply is handled")
    p.add_argument(
        "--min-speech-ms",
        type=int,
        metavar="N",
        help="confirm modes: speech needed to confirm an interruption (default: the preset's)",
    )
    p.add_argument(
        "--engines",
        choices=("light", "neural"),
        help="engine family (default neural when the 'neural' extra is installed, else light)",
    )
    p.add_argument("--voice", help="light: espeak-ng voice (default en-us); neural: joe")
    p.add_argument(
        "--rate-wpm", type=int, default=175, metavar="N", help="speaking rate (default 175)"
    )
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
    from bargein.engines.neural import engines_for

    options: dict[str, Any] = {"rate_wpm": args.rate_wpm}
    if args.voice is not None:
        options["voice"] = args.voice
    try:
        engines = engines_for(args.engines, wait=True)(**options)
    except (ValueError, RuntimeError) as exc:
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
    # Load the recognizer before the session's clock starts: its decoders are shared by the
    # process, so otherwise only the first run would charge the model load to its first
    # utterance (and two virtual-clock runs of one file would differ).
    warm = getattr(engines.stt, "warm", None)
    if warm is not None:
        await warm()
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
        if args.min_speech_ms is not None and args.min_speech_ms < 0:
            raise UsageError("--min-speech-ms must be >= 0")
        planner = _planner(args)
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
    config = preset(args.policy).apply(
        SessionConfig(compute="thread" if args.realtime else "inline", trace_path=args.trace)
    )
    if args.min_speech_ms is not None:
        changed = dataclasses.replace(config.policy, min_speech_ms=args.min_speech_ms)
        config = dataclasses.replace(config, policy=changed)
    policy = config.policy
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
            "policy": {
                "preset": args.policy,
                "mode": policy.mode,
                "min_speech_ms": policy.min_speech_ms,
            },
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
            f"policy {args.policy}, engines {engines.stt.name} / {engines.planner.name} / "
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
