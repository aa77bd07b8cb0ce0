"""`SessionConfig.stt_batch_ms`: a whole number of analysis frames, refused clearly otherwise;
the classifier presets set the smaller batch, the others keep the default (docs/engines.md,
"The STT batch")."""

from __future__ import annotations

import pytest

from bargein.presets import PRESETS
from bargein.research.policies import policy_from_table
from bargein.session_config import SessionConfig


@pytest.mark.parametrize("batch", [20, 40, 60, 100, 1000])
def test_whole_frames_are_accepted(batch: int) -> None:
    assert SessionConfig(stt_batch_ms=batch).stt_batch_ms == batch


@pytest.mark.parametrize("batch", [0, -20, 10, 50, 1020, 40.0, "40", True])
def test_other_batches_are_refused(batch: object) -> None:
    with pytest.raises(ValueError, match="stt_batch_ms"):
        SessionConfig(stt_batch_ms=batch)  # type: ignore[arg-type]


def test_a_batch_follows_the_frame_length() -> None:
    assert SessionConfig(frame_ms=30, stt_batch_ms=90).stt_batch_ms == 90
    with pytest.raises(ValueError, match="stt_batch_ms"):
        SessionConfig(frame_ms=30, stt_batch_ms=100)


def test_a_research_policy_table_may_set_the_batch() -> None:
    spec = policy_from_table({"preset": "duck_classify", "session": {"stt_batch_ms": 60}})
    assert spec.session["stt_batch_ms"] == 60
    with pytest.raises(ValueError, match="stt_batch_ms"):
        policy_from_table({"preset": "duck_classify", "session": {"stt_batch_ms": 50}})


# The presets whose classifier decides on words take the 40 ms batch; the others keep the
# session's own (100 ms): nothing decides on their partials' pace.
WORD_PRESETS = {"duck_classify", "aec_duck_classify", "smart_turn", "duck_classify_voice",
                "duck_classify_speaker", "aec_duck_classify_speaker"}


def test_the_classifier_presets_take_the_smaller_batch() -> None:
    for name, p in PRESETS.items():
        config = p.apply(SessionConfig())
        want = 40 if name in WORD_PRESETS else 100
        assert config.stt_batch_ms == want, name
        if p.policy.get("classifier"):
            assert name in WORD_PRESETS, f"{name}: a classifier preset without the word pace"
