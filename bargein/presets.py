"""Named interruption presets: one catalogue for the runtime, the transports and research.

A preset is a set of field overrides for `InterruptionPolicy` (`policy`), `VadConfig` (`vad`) and
`SessionConfig` itself (`session`, e.g. the echo canceller), with a one-line description.
`bargein research list` prints them; the WebSocket `session.start` option `policy`, the
telephony call options and `bargein run --policy` name them (docs/research.md, docs/protocol.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bargein.actors.policy import InterruptionPolicy
from bargein.actors.vad import VadConfig
from bargein.session_config import SessionConfig


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    description: str
    policy: dict[str, Any] = field(default_factory=dict)
    vad: dict[str, Any] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)

    def interruption_policy(self) -> InterruptionPolicy:
        return InterruptionPolicy(**self.policy)

    def vad_config(self) -> VadConfig:
        return VadConfig(**self.vad)

    def apply(self, config: SessionConfig) -> SessionConfig:
        """`config` with this preset's policy, VAD and session fields (the rest kept)."""
        return dataclasses.replace(
            config,
            policy=dataclasses.replace(config.policy, **self.policy),
            vad=dataclasses.replace(config.vad, **self.vad),
            **self.session,
            preset=self.name,
        )

    def overrides(self) -> str:
        """The fields it sets, e.g. `mode=confirm, min_words=1, vad.stop_ms=900` (docs)."""
        items = [f"{k}={v}" for k, v in self.policy.items()]
        items += [f"vad.{k}={v}" for k, v in self.vad.items()]
        items += [f"{k}={v}" for k, v in self.session.items()]
        return ", ".join(items)


def _catalogue(*presets: Preset) -> MappingProxyType[str, Preset]:
    return MappingProxyType({p.name: p for p in presets})


# duck_classify and aec_duck_classify (docs/turn_detection.md, "Duck, classify, side talk")
_DUCK_CLASSIFY: dict[str, Any] = {
    "mode": "confirm", "overlap_action": "duck", "classifier": True, "side_talk": True,
}
# duck_classify_speaker and aec_duck_classify_speaker: whose voice by the d-vector
_SPEAKER: dict[str, Any] = {**_DUCK_CLASSIFY, "side_talk_voice": True, "side_talk_speaker": True}
# The classifier decides on a word's first partial: 40 ms STT batches bring it up to 60 ms
# sooner than the session default's 100 (docs/engines.md, "The STT batch": its cost).
_WORD_PACE: dict[str, Any] = {"stt_batch_ms": 40}

PRESETS = _catalogue(
    Preset("onset", "cancel the turn as soon as the VAD hears the user", {"mode": "onset"}),
    Preset(
        "confirm",
        "pause at onset; cancel after 400 ms of speech, else resume",
        {"mode": "confirm", "min_speech_ms": 400, "min_words": 0},
    ),
    Preset(
        "confirm_words",
        "pause at onset; cancel only on >= 1 word outside the backchannel lexicon",
        {"mode": "confirm", "min_speech_ms": 400, "min_words": 1},
    ),
    Preset(
        "echo_guard",
        "confirm_words, and ignore onsets within 600 ms of assistant audio starting",
        {"mode": "confirm", "min_speech_ms": 400, "min_words": 1, "echo_guard_ms": 600},
    ),
    Preset(
        "commit_sentences",
        "confirm_words; an interrupted turn commits only its wholly heard sentences",
        {"mode": "confirm", "min_words": 1, "history_commit": "heard_sentences"},
    ),
    Preset(
        "commit_generated",
        "confirm_words; an interrupted turn commits everything generated (the naive baseline)",
        {"mode": "confirm", "min_words": 1, "history_commit": "generated"},
    ),
    Preset(
        "patient_endpoint",
        "confirm_words with 900 ms endpointing silence (survives mid-sentence pauses)",
        {"mode": "confirm", "min_words": 1},
        {"stop_ms": 900},
    ),
    Preset(
        "aec_confirm_words",
        "confirm_words on the mic with our own voice cancelled (echo canceller, double-talk gate)",
        {"mode": "confirm", "min_speech_ms": 400, "min_words": 1},
        session={"echo_cancel": True},
    ),
    Preset(
        "aec_onset",
        "onset (cancel as soon as the VAD hears the user) with our own voice cancelled",
        {"mode": "onset"},
        session={"echo_cancel": True},
    ),
    Preset(
        "smart_turn",
        "duck_classify; the turn ends when the Smart Turn model calls it complete after 160 ms"
        " of silence, else after 1.2 s (silence endpointing if the model is not installed)",
        _DUCK_CLASSIFY,
        {"end_of_turn": "smart_turn", "turn_check_ms": 160, "turn_max_ms": 1200},
        session=_WORD_PACE,
    ),
    Preset(
        "duck_classify",
        "duck the reply at onset; a classifier of the whole utterance cancels or restores it;"
        " side talk never cancels",
        _DUCK_CLASSIFY,
        session=_WORD_PACE,
    ),
    Preset(
        "duck_classify_voice",
        "duck_classify; speech softer than the user's turns but in their own voice (MFCC"
        " statistics of their turns) is the user, not side talk",
        {**_DUCK_CLASSIFY, "side_talk_voice": True},
        session=_WORD_PACE,
    ),
    Preset(
        "duck_classify_speaker",
        "duck_classify; whose voice by a trained speaker embedding (Resemblyzer's d-vector):"
        " softer speech in the user's own voice is the user, another voice at their level is"
        " side talk unless it addresses us",
        _SPEAKER,
        session=_WORD_PACE,
    ),
    Preset(
        "aec_duck_classify",
        "duck_classify on the mic with our own voice cancelled (echo canceller)",
        _DUCK_CLASSIFY,
        session={"echo_cancel": True, **_WORD_PACE},
    ),
    Preset(
        "aec_duck_classify_speaker",
        "duck_classify_speaker on the mic with our own voice cancelled (echo canceller): for"
        " a phone or speakerphone without the browser's echo cancellation",
        _SPEAKER,
        session={"echo_cancel": True, **_WORD_PACE},
    ),
)


# What `bargein run` and `bargein demo` use unless `--policy` names another: the best preset on
# the unseen held-out set (heldout_g: false cancels 4/55 against duck_classify's 10/54, missed
# 2/18 against 3/18, detection equal) that does not cut spontaneous speakers off (docs/presets.md
# says why, and why not smart_turn). Without the Resemblyzer wheel its voice cue is off and it
# decides as duck_classify. SessionConfig's own defaults stay `confirm`'s.
DEFAULT_PRESET = "duck_classify_speaker"


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown policy preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def markdown_table() -> str:
    """The catalogue as the markdown table the docs carry (tests/test_presets_docs.py keeps
    every copy between `<!-- presets:begin -->` and `<!-- presets:end -->` equal to it)."""
    rows = ["| preset | what it does | fields it sets |", "|---|---|---|"]
    for p in PRESETS.values():
        rows.append(f"| `{p.name}` | {p.description} | `{p.overrides()}` |")
    return "\n".join(rows)
