"""Costs of the embedded engines, both families: `bargein bench engines [--json]`.

Light (pocketsphinx, espeak-ng; `engines_light`) and neural (Whisper tiny.en, Piper joe;
`engines_neural`), on the shared recordings with the same text normalization for every word
error rate (`engines_common.normalize_words`). The result is one JSON object: the light
sections keep their keys (`stt`, `tts`, `planner`, `voice_to_voice`), the neural ones are under
`neural`, and `summary` puts the figures of docs/engines.md side by side. `voice_to_voice` runs
whole sessions on the recordings (virtual clock, engine compute charged), from the end-of-speech
decision to the first reply frame out (see docs/run.md for how the latencies are defined), and
gives the endpoint-to-final latency of every utterance. `end_of_turn` (`engines_turn`) puts the
learned end of turn (the `smart_turn` preset's VAD) beside silence endpointing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import trio

from bargein.benchmarks.engines_common import (
    DEFAULT_AUDIO_DIR,
    RECORDINGS,
    read_pcm,
    tts_sentences,
    voice_to_voice,
    word_error_rate,
)
from bargein.benchmarks.engines_light import bench_planner, bench_stt, bench_tts
from bargein.runtime.messages import Int16Array

__all__ = ["main", "read_pcm", "voice_to_voice", "word_error_rate"]


async def run(args: argparse.Namespace, recordings: dict[str, Int16Array] | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "engines",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "note": "shared with other jobs while measured: tails are noisy",
        },
    }
    if "light" in args.families:
        if recordings is None:
            result["stt"] = {"skipped": f"no recordings at {args.audio_dir}"}
        elif recordings:
            result["stt"] = await bench_stt(recordings)
        result["tts"] = await bench_tts(tts_sentences(), args.repeat)
        result["planner"] = await bench_planner()
    if "neural" in args.families:
        from bargein.benchmarks import engines_neural as neural

        section: dict[str, Any] = {"cold_start": await trio.to_thread.run_sync(neural.cold_start)}
        if recordings:
            section["stt"] = await neural.bench_finals(recordings)
            section["partials"] = await neural.bench_partials(recordings, args.audio_dir)
        section["tts"] = await neural.bench_tts(tts_sentences(), args.repeat)
        section["word_marks"] = await neural.bench_marks(tts_sentences()[:20])
        result["neural"] = section
    return result


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The figures of the issue's table, light beside neural (None where not measured)."""

    def get(d: Any, *path: str) -> Any:
        for key in path:
            if not isinstance(d, dict) or key not in d:
                return None
            d = d[key]
        return d

    neural = result.get("neural", {})
    rows: dict[str, Any] = {}
    for family, stt, tts, v2v, cpu in (
        ("light", result.get("stt"), result.get("tts"), result.get("voice_to_voice"), None),
        (
            "neural",
            neural.get("stt"),
            neural.get("tts"),
            neural.get("voice_to_voice"),
            get(neural, "partials", "whisper", "cpu_s_per_audio_s"),
        ),
    ):
        wers = [f["wer"] for f in get(stt, "files") or [] if f.get("wer") is not None]
        rows[family] = {
            "wer_mean": round(sum(wers) / len(wers), 3) if wers else None,
            "wer_max": max(wers) if wers else None,
            "endpoint_to_final_ms_p50": get(v2v, "speech_stopped_to_transcript_final_ms", "p50"),
            "endpoint_to_final_ms_p95": get(v2v, "speech_stopped_to_transcript_final_ms", "p95"),
            "stt_cpu_s_per_audio_s": cpu if cpu is not None else get(stt, "cpu_s_per_audio_s"),
            "tts_first_audio_ms_p50": get(tts, "first_audio_ms", "p50"),
            "tts_rtf": get(tts, "rtf"),
            "word_mark_error_ms_median": (
                get(neural, "word_marks", "error_ms", "p50") if family == "neural" else None
            ),
            "voice_to_voice_ms_p50": get(v2v, "speech_offset_to_audio_out_first_ms", "p50"),
            "decision_to_audio_ms_p50": get(v2v, "speech_stopped_to_audio_out_first_ms", "p50"),
            "rss_mib_both_models": (
                get(neural, "cold_start", "rss_mib_with_both_models")
                if family == "neural"
                else None
            ),
        }
        turn = get(result, "end_of_turn", family, "smart_turn")
        rows[family]["voice_to_voice_smart_turn_ms_p50"] = get(
            turn, "speech_end_to_audio_out_first_ms", "p50"
        )
        rows[family]["voice_to_voice_smart_turn_ms_p95"] = get(
            turn, "speech_end_to_audio_out_first_ms", "p95"
        )
        rows[family]["smart_turn_cut_offs"] = get(turn, "cut_offs")
        presets = get(result, "end_of_turn", family, "preset") or {}
        if presets:
            rows[family]["presets"] = {
                name: {
                    "speech_end_to_audio_out_first_ms_p50": get(
                        row, "speech_end_to_audio_out_first_ms", "p50"
                    ),
                    "speech_end_to_audio_out_first_ms_p95": get(
                        row, "speech_end_to_audio_out_first_ms", "p95"
                    ),
                    "cut_offs": get(row, "cut_offs"),
                    "sentences": get(row, "sentences"),
                    "stt_batch_ms": get(row, "session", "stt_batch_ms"),
                }
                for name, row in presets.items()
            }
    rows["smart_turn_decision_cpu_ms_p50"] = get(result, "end_of_turn", "decision", "cpu_ms", "p50")
    rows["wer_files"] = [n for n, ref in RECORDINGS.items() if ref is not None]
    return rows


def _print_human(result: dict[str, Any]) -> None:
    for family, row in result["summary"].items():
        print(f"{family}: {row}")
    stt = result.get("stt", {})
    if "files" in stt:
        feed = stt["feed_20ms"]
        print(f"STT {stt['engine']}: {stt['audio_s']} s of audio")
        print(f"  decoder load (s): {stt['decoder_load_s']}")
        print(f"  rtf {stt['rtf']}, cpu s per audio s {stt['cpu_s_per_audio_s']}")
        for key in ("await_ms", "loop_cpu_ms", "inline_loop_cpu_ms"):
            s = feed[key]
            print(f"  feed 20 ms {key}: mean {s['mean']} p95 {s['p95']} max {s['max']}")
        print(f"  final ms: mean {stt['final_ms']['mean']} p95 {stt['final_ms']['p95']}")
        for f in stt["files"]:
            print(f"  {f['file']}: wer {f['wer']} | {f['transcript']}")
    elif stt:
        print(f"STT: {stt.get('skipped')}")
    tts = result.get("tts")
    if tts is None:
        return
    print(f"TTS {tts['engine']} @ {tts['sample_rate']} Hz: {tts['sentences']} sentences")
    print(f"  rtf {tts['rtf']}, cpu s per audio s {tts['cpu_s_per_audio_s']}")
    fa = tts["first_audio_ms"]
    print(f"  first audio ms: p50 {fa['p50']} p95 {fa['p95']}")
    print(f"Planner: {result['planner']}")
    v2v = result.get("voice_to_voice")
    if v2v:
        print(f"Voice to voice ({v2v['turns']} turns, {v2v['clock']}):")
        for key in (
            "speech_stopped_to_audio_out_first_ms",
            "turn_started_to_audio_out_first_ms",
            "speech_offset_to_audio_out_first_ms",
            "endpointing_ms",
        ):
            s = v2v[key]
            print(f"  {key}: p50 {s['p50']} p95 {s['p95']} max {s['max']}")
        print(f"  VAD endpointing silence (stop_ms) {v2v['vad_stop_ms']} ms on top of the first")


def _presets(text: str) -> list[str]:
    from bargein.benchmarks.engines_turn import preset_names

    try:
        return preset_names(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bargein bench engines", description="Costs of the embedded STT and TTS engines."
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO_DIR)
    parser.add_argument("--files", nargs="+", default=list(RECORDINGS), metavar="NAME")
    parser.add_argument("--repeat", type=int, default=3, help="TTS passes over the sentences")
    parser.add_argument(
        "--engines",
        choices=("light", "neural", "both"),
        default="both",
        help="families to measure (both: neural only when its extra is installed)",
    )
    parser.add_argument("--skip-stt", action="store_true")
    parser.add_argument("--skip-v2v", action="store_true", help="no voice-to-voice sessions")
    parser.add_argument(
        "--only-end-of-turn",
        action="store_true",
        help="only the end_of_turn section (Smart Turn vs silence endpointing)",
    )
    parser.add_argument(
        "--policy",
        type=_presets,
        default=[],
        metavar="PRESET[,PRESET...]",
        help="end_of_turn: also run the sessions once per preset, applied as `bargein run "
        "--policy` applies it (its policy, VAD and session fields, stt_batch_ms included; "
        "each model decision charged its measured time), under end_of_turn.FAMILY.preset."
        "PRESET; without it only the silence and smart_turn rows (the confirm policy, 100 ms "
        "STT batches, only the VAD differs)",
    )
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from bargein.engines.neural import engines_for, neural_available

    families = ["light", "neural"] if args.engines == "both" else [args.engines]
    if args.engines == "both" and not neural_available():
        families = ["light"]
    args.families = families
    recordings: dict[str, Int16Array] | None = None
    if args.skip_stt:
        recordings = {}
    elif args.audio_dir.is_dir():
        recordings = {name: read_pcm(args.audio_dir / name) for name in args.files}
    if args.only_end_of_turn:
        from bargein.benchmarks.engines_turn import bench_end_of_turn

        only: dict[str, Any] = {
            "benchmark": "engines",
            "end_of_turn": bench_end_of_turn(families, args.audio_dir, args.files, args.policy),
        }
        only["summary"] = summary(only)
        print(json.dumps(only if args.json else only["summary"]))
        return 0
    result = trio.run(run, args, recordings)
    if not args.skip_v2v:
        # Whole sessions, each on its own virtual clock (so outside `run`'s real-clock loop).
        for family in families:
            v2v = voice_to_voice(engines_for(family, wait=True)(), args.audio_dir, args.files)
            if v2v is not None:
                if family == "light":
                    result["voice_to_voice"] = v2v
                else:
                    result["neural"]["voice_to_voice"] = v2v
        if args.audio_dir.is_dir():
            from bargein.benchmarks.engines_turn import bench_end_of_turn

            result["end_of_turn"] = bench_end_of_turn(
                families, args.audio_dir, args.files, args.policy
            )
    result["summary"] = summary(result)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_human(result)
    return 0
