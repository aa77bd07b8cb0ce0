"""The scenario format: a TOML file describing user audio on a timeline, the ground truth of
every user event, the engines and the policy under test. Pure parsing and validation, no I/O
beyond reading the file; audio is built by `bargein.research.audio`.

The format is documented field by field in docs/research.md; `ScenarioError` messages name the
file and the offending key so a researcher can fix a scenario without reading this code.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bargein.research.policies import PolicySpec, policy_from_table

# Ground-truth kinds of user events. `request` is an ordinary user turn (nothing to interrupt);
# the rest are what REFERENCE.md's "Scenario kinds" lists.
INTERRUPTIONS = frozenset({"true_interruption", "correction"})
NON_INTERRUPTIONS = frozenset({"backchannel", "noise", "side_talk", "echo"})
USER_TURNS = frozenset({"request", "user_pause"})  # the user speaking with the floor
KINDS = USER_TURNS | INTERRUPTIONS | NON_INTERRUPTIONS
EXPECTS = ("any", "speaking", "thinking", "silent")
SOURCES = ("file", "noise", "echo")
# Synthetic noises: a cough (burst with a decaying tail), keyboard clicks, a steady fan/tap.
NOISE_SHAPES = ("cough", "clicks", "steady")
ENGINE_KINDS = ("scripted", "embedded", "neural", "openai")

Expect = Literal["any", "speaking", "thinking", "silent"]


class ScenarioError(ValueError):
    """A scenario file that cannot be run, with the file and key at fault in the message."""


@dataclass(frozen=True, slots=True)
class AudioItem:
    """One labelled piece of user audio on the input timeline. Times in seconds."""

    label: str
    kind: str
    source: str
    at_s: float
    gain: float = 1.0
    file: str | None = None
    channel: int | None = None
    trim_start_s: float = 0.0
    trim_end_s: float | None = None
    # True speech spans relative to `at_s` (after trimming); None: from the recording's labels
    # (`words_json` / `rttm`, or a `.json` / `.rttm` beside the file), else the energy rule.
    speech: tuple[tuple[float, float], ...] | None = None
    words_json: str | None = None
    rttm: str | None = None
    rttm_speakers: tuple[str, ...] | None = None
    transcripts: tuple[str, ...] | None = None
    expect: Expect = "any"
    # noise
    duration_s: float = 0.3
    level_dbfs: float = -20.0
    seed: int = 0
    shape: str = "cough"
    # echo: the assistant's own output fed back into the microphone from at_s to until_s
    until_s: float | None = None
    delay_ms: float = 120.0
    # echo through a synthetic room (bargein.dsp.echo_mix.room_response, seeded by `seed`):
    # reverberation time in ms; 0 is no room, a single delayed copy at `gain`.
    room_rt60_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ScriptedEngineSpec:
    stt_final_ms: float = 200.0
    stt_partials: bool = True
    stt_partial_ms: float = 0.0
    default_transcript: str = ""
    llm_first_token_ms: float = 300.0
    tokens_per_second: float = 20.0
    tts_first_audio_ms: float = 150.0
    tts_ms_per_char: float = 60.0
    tts_chunk_ms: float = 100.0
    replies: tuple[str, ...] = ("Okay.",)


@dataclass(frozen=True, slots=True)
class EngineSpec:
    kind: str = "scripted"
    scripted: ScriptedEngineSpec = field(default_factory=ScriptedEngineSpec)
    # embedded: options for `default_engines`; openai: base_url, model, stt_model, tts_model...
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    path: Path | None
    description: str
    items: tuple[AudioItem, ...]
    engines: EngineSpec
    policy: PolicySpec
    duration_s: float | None = None
    tail_s: float = 2.0
    drain_s: float = 60.0

    @property
    def base_dir(self) -> Path | None:
        return self.path.parent if self.path is not None else None

    @property
    def user_turn(self) -> AudioItem | None:
        """The user's first turn as written: the request, or a request with pauses."""
        return next((it for it in self.items if it.kind in USER_TURNS), None)


_TOP_KEYS = {"name", "description", "duration_s", "tail_s", "drain_s", "engines", "policy", "audio"}
_ITEM_KEYS = {
    "label", "kind", "source", "at_s", "gain", "file", "channel", "trim_start_s", "trim_end_s",
    "speech", "transcript", "expect", "duration_s", "level_dbfs", "seed", "until_s", "delay_ms",
    "words_json", "rttm", "rttm_speaker", "shape", "room_rt60_ms",
}  # fmt: skip
_SCRIPTED_KEYS = set(ScriptedEngineSpec.__dataclass_fields__)
_OPENAI_KEYS = {"base_url", "api_key", "model", "stt_model", "tts_model", "voice", "stt"}
_REPLACED = {
    "stt_ms_per_word": "stt_ms_per_word was replaced by stt_partials = true|false: partials now "
    "follow the scenario's own word timing (see docs/research.md)"
}


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return parse_scenario(raw, path=path)


def parse_scenario(raw: dict[str, Any], *, path: Path | None = None, name: str = "") -> Scenario:
    where = str(path) if path is not None else (name or "<scenario>")
    if "echo" in raw:  # the "`echo = true` scenarios" are written as an echo item
        raise ScenarioError(
            f"{where}: unknown keys ['echo']; an echo is an [[audio]] item with "
            'kind = "echo", at_s and until_s (docs/research.md)'
        )
    _no_unknown(raw, _TOP_KEYS, where)
    name = _get(raw, "name", str, where, name or (path.stem if path else "scenario"))
    if not name or "/" in name or name.startswith("."):
        raise ScenarioError(f"{where}: name {name!r} must be a plain directory name")
    items_raw = raw.get("audio")
    if not isinstance(items_raw, list) or not items_raw:
        raise ScenarioError(f"{where}: needs at least one [[audio]] item")
    items = tuple(_item(it, f"{where}: [[audio]] #{i + 1}") for i, it in enumerate(items_raw))
    labels = [it.label for it in items]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ScenarioError(f"{where}: duplicate [[audio]] labels {dupes}")
    policy_raw = raw.get("policy", {})
    if isinstance(policy_raw, str):  # policy = "mypkg.mod:MyPolicy": an outside judge
        policy_raw = {"judge": policy_raw}
    if not isinstance(policy_raw, dict):
        raise ScenarioError(f'{where}: [policy] must be a table or a "module:Class" string')
    try:
        policy = policy_from_table(
            policy_raw, name=f"{name} (scenario)", base_dir=path.parent if path else None
        )
    except ValueError as exc:
        raise ScenarioError(f"{where}: [policy]: {exc}") from None
    engines = _engines(raw.get("engines", {}), f"{where}: [engines]")
    scripted_stt = engines.kind == "scripted" or engines.options.get("stt") == "scripted"
    with_text = [it.label for it in items if it.transcripts is not None]
    if with_text and not scripted_stt:
        # A real recogniser hears the audio; a transcript would silently not be used.
        raise ScenarioError(
            f"{where}: items {with_text} give a transcript, but [engines] kind "
            f"{engines.kind!r} recognises the audio itself; remove transcript"
            + (' or set stt = "scripted"' if engines.kind == "openai" else "")
        )
    duration = _opt_float(raw, "duration_s", where)
    if duration is not None and duration <= 0:
        raise ScenarioError(f"{where}: duration_s must be positive")
    return Scenario(
        name=name,
        path=path,
        description=_get(raw, "description", str, where, ""),
        items=items,
        engines=engines,
        policy=policy,
        duration_s=duration,
        tail_s=_num(raw, "tail_s", where, 2.0),
        drain_s=_num(raw, "drain_s", where, 60.0),
    )


def _item(raw: Any, where: str) -> AudioItem:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: must be a table")
    _no_unknown(raw, _ITEM_KEYS, where)
    label = _get(raw, "label", str, where, None)
    where = f"{where} ({label!r})" if label else where
    kind = _get(raw, "kind", str, where, None)
    if kind not in KINDS:
        raise ScenarioError(f"{where}: kind {kind!r} is not one of {sorted(KINDS)}")
    source = _get(raw, "source", str, where, "echo" if kind == "echo" else "file")
    if source not in SOURCES:
        raise ScenarioError(f"{where}: source {source!r} is not one of {list(SOURCES)}")
    if (source == "echo") != (kind == "echo"):
        raise ScenarioError(f"{where}: kind 'echo' and source 'echo' go together")
    at = _num(raw, "at_s", where, None)
    if at < 0:
        raise ScenarioError(f"{where}: at_s must be >= 0")
    expect = _get(raw, "expect", str, where, "any")
    if expect not in EXPECTS:
        raise ScenarioError(f"{where}: expect {expect!r} is not one of {list(EXPECTS)}")
    transcript = raw.get("transcript")
    transcripts: tuple[str, ...] | None
    if transcript is None:
        transcripts = None
    elif isinstance(transcript, str):
        transcripts = (transcript,)
    elif isinstance(transcript, list) and all(isinstance(t, str) for t in transcript):
        transcripts = tuple(transcript)
    else:
        raise ScenarioError(f"{where}: transcript must be a string or a list of strings")
    speech = _spans(raw.get("speech"), where)
    speakers = raw.get("rttm_speaker")
    if isinstance(speakers, str):
        speakers = [speakers]
    if speakers is not None and (
        not isinstance(speakers, list) or not all(isinstance(v, str) for v in speakers)
    ):
        raise ScenarioError(f"{where}: rttm_speaker must be a speaker name or a list of them")
    item = AudioItem(
        label=label,
        kind=kind,
        source=source,
        at_s=at,
        gain=_num(raw, "gain", where, 1.0),
        file=_get(raw, "file", str, where, "") or None,
        channel=_channel(raw.get("channel"), where),
        trim_start_s=_num(raw, "trim_start_s", where, 0.0),
        trim_end_s=_opt_float(raw, "trim_end_s", where),
        speech=speech,
        words_json=_get(raw, "words_json", str, where, "") or None,
        rttm=_get(raw, "rttm", str, where, "") or None,
        rttm_speakers=tuple(speakers) if speakers is not None else None,
        transcripts=transcripts,
        expect=expect,
        duration_s=_num(raw, "duration_s", where, 0.3),
        level_dbfs=_num(raw, "level_dbfs", where, -20.0),
        seed=_int(raw, "seed", where, 0),
        shape=_get(raw, "shape", str, where, "cough"),
        until_s=_opt_float(raw, "until_s", where),
        delay_ms=_num(raw, "delay_ms", where, 120.0),
        room_rt60_ms=_num(raw, "room_rt60_ms", where, 0.0),
    )
    if source == "file" and not item.file:
        raise ScenarioError(f'{where}: a file source needs file = "..."')
    if source != "file" and (item.file or item.channel is not None or item.words_json or item.rttm):
        raise ScenarioError(f"{where}: file/channel/words_json/rttm only apply to source 'file'")
    if item.rttm_speakers is not None and not item.rttm:
        raise ScenarioError(f'{where}: rttm_speaker needs rttm = "file.rttm"')
    if item.trim_start_s < 0 or (
        item.trim_end_s is not None and item.trim_end_s <= item.trim_start_s
    ):
        raise ScenarioError(f"{where}: need 0 <= trim_start_s < trim_end_s")
    if source == "noise" and (item.duration_s <= 0 or item.level_dbfs > 0):
        raise ScenarioError(f"{where}: noise needs duration_s > 0 and level_dbfs <= 0")
    if item.shape not in NOISE_SHAPES:
        raise ScenarioError(f"{where}: shape {item.shape!r} is not one of {list(NOISE_SHAPES)}")
    if "shape" in raw and source != "noise":
        raise ScenarioError(f"{where}: shape only applies to source 'noise'")
    if source == "echo":
        if item.until_s is None or item.until_s <= at:
            raise ScenarioError(f"{where}: an echo source needs until_s > at_s")
        if item.delay_ms < 20:
            # The harness mixes echo from output frames already sent; one frame is 20 ms.
            raise ScenarioError(f"{where}: echo delay_ms must be >= 20")
        if not 0 <= item.room_rt60_ms <= 1000:
            raise ScenarioError(f"{where}: room_rt60_ms must be in 0..1000 (0: no room)")
    elif "room_rt60_ms" in raw:
        raise ScenarioError(f"{where}: room_rt60_ms only applies to source 'echo'")
    if item.gain < 0:
        raise ScenarioError(f"{where}: gain must be >= 0")
    return item


def _engines(raw: Any, where: str) -> EngineSpec:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: must be a table")
    kind = _get(raw, "kind", str, where, "scripted")
    if kind not in ENGINE_KINDS:
        raise ScenarioError(f"{where}: kind {kind!r} is not one of {list(ENGINE_KINDS)}")
    rest = {k: v for k, v in raw.items() if k != "kind"}
    if kind == "scripted":
        for key, why in _REPLACED.items():
            if key in rest:
                raise ScenarioError(f"{where}: {why}")
        _no_unknown(rest, _SCRIPTED_KEYS, where)
        values: dict[str, Any] = {}
        for key, value in rest.items():
            if key == "replies":
                if isinstance(value, str):
                    value = [value]
                if (
                    not isinstance(value, list)
                    or not value
                    or not all(isinstance(v, str) for v in value)
                ):
                    raise ScenarioError(f"{where}: replies must be a non-empty list of strings")
                values[key] = tuple(value)
            elif key == "default_transcript":
                values[key] = _get(rest, key, str, where, "")
            elif key == "stt_partials":
                values[key] = _get(rest, key, bool, where, True)
            else:
                values[key] = _num(rest, key, where, None)
                if values[key] < 0:
                    raise ScenarioError(f"{where}: {key} must be >= 0")
        return EngineSpec("scripted", ScriptedEngineSpec(**values))
    if kind == "openai":
        _no_unknown(rest, _OPENAI_KEYS, where)
        if not isinstance(rest.get("base_url"), str):
            raise ScenarioError(f"{where}: kind 'openai' needs base_url = \"http://...\"")
        if rest.get("stt", "service") not in ("service", "scripted"):
            raise ScenarioError(f"{where}: stt must be 'service' or 'scripted'")
    return EngineSpec(kind, options=rest)


def _spans(value: Any, where: str) -> tuple[tuple[float, float], ...] | None:
    """`[start, end]` or `[[start, end], ...]` (seconds from at_s, increasing, not overlapping)."""
    if value is None:
        return None
    pairs = value if isinstance(value, list) and value and isinstance(value[0], list) else [value]
    out: list[tuple[float, float]] = []
    for pair in pairs:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
            or not (out[-1][1] if out else 0) <= pair[0] < pair[1]
        ):
            raise ScenarioError(
                f"{where}: speech must be [start_s, end_s] or a list of them, with "
                "0 <= start < end and spans in order, not overlapping"
            )
        out.append((float(pair[0]), float(pair[1])))
    return tuple(out)


def _channel(value: Any, where: str) -> int | None:
    if value is None:
        return None
    names = {"left": 0, "right": 1}
    if isinstance(value, str) and value in names:
        return names[value]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ScenarioError(f"{where}: channel must be 'left', 'right' or a channel index >= 0")


def _no_unknown(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")


def _get(raw: dict[str, Any], key: str, typ: type, where: str, default: Any) -> Any:
    if key not in raw:
        if default is None:
            raise ScenarioError(f"{where}: missing required key {key!r}")
        return default
    value = raw[key]
    if not isinstance(value, typ):
        raise ScenarioError(f"{where}: {key} must be a {typ.__name__}, got {value!r}")
    return value


def _num(raw: dict[str, Any], key: str, where: str, default: float | None) -> float:
    if key not in raw:
        if default is None:
            raise ScenarioError(f"{where}: missing required key {key!r}")
        return default
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _int(raw: dict[str, Any], key: str, where: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where}: {key} must be an integer, got {value!r}")
    return value


def _opt_float(raw: dict[str, Any], key: str, where: str) -> float | None:
    return _num(raw, key, where, 0.0) if key in raw else None
