"""Policies under test: an `InterruptionPolicy` plus a `VadConfig`, with named presets.

A policy table (in a scenario's `[policy]`, or a TOML file given to `--policy`) names a preset
and overrides its fields; `vad` is a sub-table of `VadConfig` fields.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bargein.actors.policy import InterruptionPolicy
from bargein.actors.vad import VadConfig


@dataclass(frozen=True, slots=True)
class PolicySpec:
    name: str
    policy: InterruptionPolicy = field(default_factory=InterruptionPolicy)
    vad: VadConfig = field(default_factory=VadConfig)
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        p = dataclasses.asdict(self.policy)
        p["backchannels"] = sorted(self.policy.backchannels)
        return {"name": self.name, "policy": p, "vad": dataclasses.asdict(self.vad)}


# name → (description, policy fields, vad fields)
PRESETS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "onset": ("cancel the turn as soon as the VAD hears the user", {"mode": "onset"}, {}),
    "confirm": (
        "pause at onset; cancel after 400 ms of speech, else resume",
        {"mode": "confirm", "min_speech_ms": 400, "min_words": 0},
        {},
    ),
    "confirm_words": (
        "pause at onset; cancel only on >= 1 word outside the backchannel lexicon",
        {"mode": "confirm", "min_speech_ms": 400, "min_words": 1},
        {},
    ),
    "echo_guard": (
        "confirm_words, and ignore onsets within 600 ms of assistant audio starting",
        {"mode": "confirm", "min_speech_ms": 400, "min_words": 1, "echo_guard_ms": 600},
        {},
    ),
    "commit_sentences": (
        "confirm_words; an interrupted turn commits only its wholly heard sentences",
        {"mode": "confirm", "min_words": 1, "history_commit": "heard_sentences"},
        {},
    ),
    "commit_generated": (
        "confirm_words; an interrupted turn commits everything generated (the naive baseline)",
        {"mode": "confirm", "min_words": 1, "history_commit": "generated"},
        {},
    ),
    "patient_endpoint": (
        "confirm_words with 900 ms endpointing silence (survives mid-sentence pauses)",
        {"mode": "confirm", "min_words": 1},
        {"stop_ms": 900},
    ),
}

_POLICY_FIELDS = set(InterruptionPolicy.__dataclass_fields__)
_VAD_FIELDS = set(VadConfig.__dataclass_fields__)


def preset(name: str) -> PolicySpec:
    if name not in PRESETS:
        raise ValueError(f"unknown policy preset {name!r}; presets: {', '.join(PRESETS)}")
    description, policy, vad = PRESETS[name]
    return PolicySpec(name, InterruptionPolicy(**policy), VadConfig(**vad), description)


def policy_from_table(table: dict[str, Any], *, name: str = "custom") -> PolicySpec:
    """`{preset = "confirm", min_words = 2, vad = {stop_ms = 600}}` → a PolicySpec. Without a
    preset the runtime defaults are the base."""
    table = dict(table)
    base_name = table.pop("preset", None)
    vad_over = table.pop("vad", {})
    if not isinstance(vad_over, dict):
        raise ValueError("vad must be a table of VadConfig fields")
    unknown = sorted(set(table) - _POLICY_FIELDS)
    if unknown:
        raise ValueError(f"unknown policy fields {unknown}; allowed: {sorted(_POLICY_FIELDS)}")
    unknown = sorted(set(vad_over) - _VAD_FIELDS)
    if unknown:
        raise ValueError(f"unknown vad fields {unknown}; allowed: {sorted(_VAD_FIELDS)}")
    if "backchannels" in table:
        words = table["backchannels"]
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError("backchannels must be a list of words")
        table["backchannels"] = frozenset(w.lower() for w in words)
    base = preset(base_name) if base_name is not None else PolicySpec("default")
    try:
        policy = dataclasses.replace(base.policy, **table)
        vad = dataclasses.replace(base.vad, **vad_over)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    if not table and not vad_over and base_name is not None:
        return base
    return PolicySpec(name, policy, vad)


def resolve_policy(name_or_path: str) -> PolicySpec:
    """A preset name, or a TOML file whose `[policy]` table is a policy (named after the file)."""
    if name_or_path in PRESETS:
        return preset(name_or_path)
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.is_file():
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        table = raw.get("policy", raw)
        return policy_from_table(table, name=path.stem)
    raise ValueError(
        f"unknown policy {name_or_path!r}: not a preset ({', '.join(PRESETS)}) nor a .toml file"
    )
