"""The Realtime session configuration: validated partial updates and its GA JSON shape.

Pure: `apply_update(settings, obj)` returns new settings or raises `RealtimeInvalid` naming the
failing parameter. docs/realtime.md lists every field with what we do with it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal, cast

from bargein.actors.vad import VadConfig
from bargein.presets import preset
from bargein.transports.protocol import fields
from bargein.transports.realtime.errors import (
    INVALID_VALUE,
    UNSUPPORTED,
    RealtimeInvalid,
    expect_object,
    param,
    refuse_unknown,
)

AudioFormat = Literal["audio/pcm", "audio/pcmu", "audio/pcma"]
FORMAT_RATES: dict[str, int] = {"audio/pcm": 24000, "audio/pcmu": 8000, "audio/pcma": 8000}
MAX_INSTRUCTIONS_CHARS = 32768
MAX_TOOLS = 64
MAX_TOOLS_JSON = 128 * 1024
TOOL_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# OpenAI's voices name no voice of ours: they are accepted and leave the server's default voice.
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}
)
# semantic_vad is the learned end of turn: the VAD fields of the `smart_turn` preset
# (bargein.presets). eagerness -> (the silence that ends a turn without a verdict, and the
# whole turn without the model installed; the factor on the preset's longest wait for a turn
# the model calls incomplete; the model's completion threshold, None: the preset's).
EAGERNESS: dict[str, tuple[int, float, float | None]] = {
    "low": (1200, 2.0, 0.7),
    "medium": (700, 1.0, None),
    "auto": (700, 1.0, None),
    "high": (350, 0.6, 0.3),
}
SEMANTIC_VAD_PRESET = "smart_turn"


@dataclass(frozen=True, slots=True)
class TurnDetection:
    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    idle_timeout_ms: int | None = None
    create_response: bool = True
    interrupt_response: bool = True
    eagerness: str = "auto"

    def vad(self) -> VadConfig:
        """Our VAD for this turn detection: threshold picks webrtcvad's aggressiveness;
        server_vad's silence is the endpointing hang-over; semantic_vad is the learned end of
        turn (docs/realtime.md, "Turn detection"), shaped by its eagerness."""
        aggressiveness = min(3, int(self.threshold * 4))
        if self.type != "semantic_vad":
            stop_ms = max(20, self.silence_duration_ms)
            return VadConfig(aggressiveness=aggressiveness, stop_ms=stop_ms)
        stop, factor, threshold = EAGERNESS[self.eagerness]
        learned = preset(SEMANTIC_VAD_PRESET).vad_config()
        return dataclasses.replace(
            learned,
            aggressiveness=aggressiveness,
            stop_ms=stop,
            turn_max_ms=max(stop, round(learned.turn_max_ms * factor)),
            turn_threshold=learned.turn_threshold if threshold is None else threshold,
        )

    def to_json(self) -> dict[str, Any]:
        if self.type == "semantic_vad":
            return {
                "type": "semantic_vad",
                "eagerness": self.eagerness,
                "create_response": self.create_response,
                "interrupt_response": self.interrupt_response,
            }
        return {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            "idle_timeout_ms": self.idle_timeout_ms,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
        }


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


ToolChoice = str  # "auto" | "none" | "required" | a function name


@dataclass(frozen=True, slots=True)
class RealtimeSettings:
    model: str = "bargein"
    instructions: str = ""
    output_modalities: tuple[str, ...] = ("audio",)
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = "auto"
    max_output_tokens: int | None = None  # None: "inf"
    input_format: AudioFormat = "audio/pcm"
    output_format: AudioFormat = "audio/pcm"
    turn_detection: TurnDetection | None = dataclasses.field(default_factory=TurnDetection)
    transcription: dict[str, Any] | None = None
    noise_reduction: dict[str, Any] | None = None
    voice: str = "alloy"
    speed: float = 1.0
    tracing: Any = None
    truncation: Any = "auto"
    include: tuple[str, ...] | None = None

    @property
    def audio_out(self) -> bool:
        return "audio" in self.output_modalities

    def engine_options(self) -> dict[str, str | int]:
        """What the engines factory gets (voice and rate; OpenAI's own voice names excepted)."""
        options: dict[str, str | int] = {}
        if self.voice not in OPENAI_VOICES:
            options["voice"] = self.voice
        if self.speed != 1.0:
            options["rate_wpm"] = round(175 * self.speed)
        return options

    def restart_key(self) -> tuple[Any, ...]:
        """Settings the running session was built with: a change needs a new session."""
        td = self.turn_detection
        return (None if td is None else (td.vad(), td.prefix_padding_ms), self.voice, self.speed)

    def to_json(self, session_id: str) -> dict[str, Any]:
        def fmt(f: str) -> dict[str, Any]:
            return {"type": f, "rate": 24000} if f == "audio/pcm" else {"type": f}

        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": session_id,
            "model": self.model,
            "output_modalities": list(self.output_modalities),
            "instructions": self.instructions,
            "tools": [t.to_json() for t in self.tools],
            "tool_choice": tool_choice_json(self.tool_choice),
            "max_output_tokens": "inf" if self.max_output_tokens is None
            else self.max_output_tokens,
            "tracing": self.tracing,
            "truncation": self.truncation,
            "prompt": None,
            "expires_at": 0,
            "include": None if self.include is None else list(self.include),
            "audio": {
                "input": {
                    "format": fmt(self.input_format),
                    "transcription": self.transcription,
                    "noise_reduction": self.noise_reduction,
                    "turn_detection": None if self.turn_detection is None
                    else self.turn_detection.to_json(),
                },
                "output": {"format": fmt(self.output_format), "voice": self.voice,
                           "speed": self.speed},
            },
        }


def tool_choice_json(choice: ToolChoice) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "name": choice}


_SESSION_KEYS = frozenset(
    {
        "type", "model", "instructions", "output_modalities", "tools", "tool_choice",
        "max_output_tokens", "audio", "tracing", "truncation", "include", "prompt",
        "object", "id", "expires_at",
    }
)


def apply_update(settings: RealtimeSettings, obj: Any) -> RealtimeSettings:
    """`session.update`'s `session`: only the fields given change."""
    s = expect_object(obj, "session")
    refuse_unknown(s, _SESSION_KEYS, "session")
    if s.get("type", "realtime") != "realtime":
        raise RealtimeInvalid(
            UNSUPPORTED, "only 'realtime' sessions are served (no transcription sessions)",
            param="session.type",
        )
    if s.get("prompt") is not None:
        raise RealtimeInvalid(UNSUPPORTED, "prompt templates are not supported",
                              param="session.prompt")
    changes: dict[str, Any] = {}
    if "model" in s:
        with param("session.model"):
            changes["model"] = fields.string(s, "model", max_len=128)
    if "instructions" in s:
        with param("session.instructions"):
            changes["instructions"] = fields.string(
                s, "instructions", max_len=MAX_INSTRUCTIONS_CHARS, required=False) or ""
    if "output_modalities" in s:
        changes["output_modalities"] = modalities(s["output_modalities"],
                                                  "session.output_modalities")
    if "tools" in s:
        changes["tools"] = tools(s["tools"], "session.tools")
    if "tool_choice" in s:
        changes["tool_choice"] = tool_choice(s["tool_choice"], "session.tool_choice")
    if "max_output_tokens" in s:
        changes["max_output_tokens"] = max_tokens(s["max_output_tokens"],
                                                  "session.max_output_tokens")
    for key in ("tracing", "truncation"):
        if key in s:
            value = s[key]
            if len(json.dumps(value)) > 4096:
                raise RealtimeInvalid(INVALID_VALUE, f"session.{key} is too large",
                                      param=f"session.{key}")
            changes[key] = value
    if "include" in s:
        inc = s["include"]
        if inc is not None and (not isinstance(inc, list)
                                or any(i != "item.input_audio_transcription.logprobs"
                                       for i in inc)):
            raise RealtimeInvalid(INVALID_VALUE, "session.include: unknown value",
                                  param="session.include")
        changes["include"] = None if inc is None else tuple(inc)
    if "audio" in s:
        changes.update(_audio(settings, s["audio"]))
    return dataclasses.replace(settings, **changes)


def _audio(settings: RealtimeSettings, value: Any) -> dict[str, Any]:
    audio = expect_object(value, "session.audio")
    refuse_unknown(audio, frozenset({"input", "output"}), "session.audio")
    changes: dict[str, Any] = {}
    if audio.get("input") is not None:
        inp = expect_object(audio["input"], "session.audio.input")
        refuse_unknown(inp, frozenset({"format", "transcription", "noise_reduction",
                                       "turn_detection"}), "session.audio.input")
        if inp.get("format") is not None:
            changes["input_format"] = audio_format(inp["format"], "session.audio.input.format")
        for key in ("transcription", "noise_reduction"):
            if key in inp:
                v = inp[key]
                if v is not None:
                    expect_object(v, f"session.audio.input.{key}")
                    if len(json.dumps(v)) > 4096:
                        raise RealtimeInvalid(INVALID_VALUE, f"session.audio.input.{key} is "
                                              "too large", param=f"session.audio.input.{key}")
                changes[key] = v
        if "turn_detection" in inp:
            changes["turn_detection"] = turn_detection(
                settings.turn_detection, inp["turn_detection"])
    if audio.get("output") is not None:
        out = expect_object(audio["output"], "session.audio.output")
        refuse_unknown(out, frozenset({"format", "voice", "speed"}), "session.audio.output")
        if out.get("format") is not None:
            changes["output_format"] = audio_format(out["format"], "session.audio.output.format")
        if out.get("voice") is not None:
            with param("session.audio.output.voice"):
                changes["voice"] = fields.string(out, "voice", max_len=64)
        if out.get("speed") is not None:
            changes["speed"] = number(out["speed"], "session.audio.output.speed", 0.25, 1.5)
    return changes


def audio_format(value: Any, path: str) -> AudioFormat:
    f = expect_object(value, path)
    refuse_unknown(f, frozenset({"type", "rate"}), path)
    kind = f.get("type", "audio/pcm")
    if not isinstance(kind, str) or kind not in FORMAT_RATES:  # a list is unhashable
        raise RealtimeInvalid(INVALID_VALUE, f"{path}.type must be audio/pcm, audio/pcmu or "
                              "audio/pcma", param=f"{path}.type")
    rate = f.get("rate")
    if rate is not None and (kind != "audio/pcm" or rate != 24000):
        raise RealtimeInvalid(INVALID_VALUE, f"{path}.rate: audio/pcm is 24000 Hz only",
                              param=f"{path}.rate")
    return cast(AudioFormat, kind)


def number(value: Any, path: str, lo: float, hi: float) -> float:
    # An int is compared as is: math.isfinite(10**400) would raise OverflowError.
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            isinstance(value, float) and not math.isfinite(value)) or not lo <= value <= hi:
        raise RealtimeInvalid(INVALID_VALUE, f"{path} must be a number in [{lo:g}, {hi:g}]",
                              param=path)
    return float(value)


def turn_detection(current: TurnDetection | None, value: Any) -> TurnDetection | None:
    path = "session.audio.input.turn_detection"
    if value is None:
        return None
    td = expect_object(value, path)
    kind = td.get("type")
    if kind == "server_vad":
        refuse_unknown(td, frozenset({"type", "threshold", "prefix_padding_ms",
                                      "silence_duration_ms", "idle_timeout_ms",
                                      "create_response", "interrupt_response"}), path)
    elif kind == "semantic_vad":
        refuse_unknown(td, frozenset({"type", "eagerness", "create_response",
                                      "interrupt_response"}), path)
    else:
        raise RealtimeInvalid(INVALID_VALUE, f"{path}.type must be server_vad or semantic_vad",
                              param=f"{path}.type")
    base = current if current is not None and current.type == kind else TurnDetection(type=kind)
    changes: dict[str, Any] = {"type": kind}
    if td.get("threshold") is not None:
        changes["threshold"] = number(td["threshold"], f"{path}.threshold", 0.0, 1.0)
    for key, lo, hi in (("prefix_padding_ms", 0, 2000), ("silence_duration_ms", 20, 10000),
                        ("idle_timeout_ms", 5000, 30000)):
        if td.get(key) is not None:
            with param(f"{path}.{key}"):
                changes[key] = fields.integer(td, key, lo=lo, hi=hi)
    for key in ("create_response", "interrupt_response"):
        if td.get(key) is not None:
            with param(f"{path}.{key}"):
                changes[key] = fields.boolean(td, key)
    if td.get("eagerness") is not None:
        if not isinstance(td["eagerness"], str) or td["eagerness"] not in EAGERNESS:
            raise RealtimeInvalid(INVALID_VALUE, f"{path}.eagerness must be low, medium, high "
                                  "or auto", param=f"{path}.eagerness")
        changes["eagerness"] = td["eagerness"]
    return dataclasses.replace(base, **changes)


def modalities(value: Any, path: str) -> tuple[str, ...]:
    if value not in (["audio"], ["text"]):
        raise RealtimeInvalid(INVALID_VALUE, f"{path} must be [\"audio\"] or [\"text\"]",
                              param=path)
    return tuple(value)


def tools(value: Any, path: str) -> tuple[Tool, ...]:
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise RealtimeInvalid(INVALID_VALUE, f"{path} must be a list of at most {MAX_TOOLS}",
                              param=path)
    if len(json.dumps(value)) > MAX_TOOLS_JSON:
        raise RealtimeInvalid(INVALID_VALUE, f"{path} is larger than {MAX_TOOLS_JSON} bytes",
                              param=path)
    out: list[Tool] = []
    for i, raw in enumerate(value):
        where = f"{path}[{i}]"
        t = expect_object(raw, where)
        if t.get("type", "function") != "function":
            raise RealtimeInvalid(UNSUPPORTED, f"{where}.type: only function tools",
                                  param=f"{where}.type")
        refuse_unknown(t, frozenset({"type", "name", "description", "parameters"}), where)
        with param(f"{where}.name"):
            name = fields.string(t, "name", max_len=64, pattern=TOOL_NAME_RE)
        with param(f"{where}.description"):
            description = fields.string(t, "description", max_len=4096, required=False) or ""
        parameters = t.get("parameters") or {}
        expect_object(parameters, f"{where}.parameters")
        out.append(Tool(name, description, parameters))
    return tuple(out)


def tool_choice(value: Any, path: str) -> ToolChoice:
    if value in ("auto", "none", "required"):
        return str(value)
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(
            value.get("name"), str) and TOOL_NAME_RE.fullmatch(value["name"]):
        return str(value["name"])
    raise RealtimeInvalid(INVALID_VALUE, f"{path} must be auto, none, required or "
                          "{type: function, name}", param=path)


def max_tokens(value: Any, path: str) -> int | None:
    if value == "inf":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
        raise RealtimeInvalid(INVALID_VALUE, f"{path} must be 1..4096 or \"inf\"", param=path)
    return value
