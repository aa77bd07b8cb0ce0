"""`bargein run`: whole conversations from the shared recordings, through `main()` and the CLI.

Everything runs on the virtual clock unless a test says --realtime; assertions are about what
the session heard, said and wrote, never about how long it took on the wall clock.
"""

from __future__ import annotations

import contextlib
import io
import json
import queue
import subprocess
import sys
import threading
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

from bargein.run_file import main
from bargein.run_report import analyse
from bargein.runtime.events import Event, EventType
from bargein.testing.audio import place
from bargein.testing.openai_server import ServerConfig, serve_openai
from bargein.wavio import read_wav, write_wav

REPO = Path(__file__).resolve().parents[1]
# Events whose order is the conversation's structure (partials and text deltas are detail).
STRUCTURE = {
    "speech_started",
    "speech_stopped",
    "transcript_final",
    "turn_started",
    "audio_out_first",
    "output_paused",
    "output_resumed",
    "false_interruption",
    "barge_in",
    "turn_cancelled",
    "turn_completed",
    "session_ended",
}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result: dict[str, Any] = json.loads(captured.out)
    return result


def read_trace(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def words(text: str) -> list[str]:
    return text.lower().replace(".", " ").replace(",", " ").replace(":", " ").split()


def sent_intervals(trace: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """[first audio frame, + audio sent] per turn, from the trace alone."""
    first = {e["turn"]: e["t"] for e in trace if e["type"] == "audio_out_first"}
    out = []
    for e in trace:
        if e["type"] in ("turn_completed", "turn_cancelled") and e["turn"] in first:
            start = first[e["turn"]]
            out.append((start, start + e["sent_ms"] / 1000))
    return out


def assert_audio_matches_trace(reply: np.ndarray, rate: int, trace: list[dict[str, Any]]) -> None:
    """Speech where the trace says audio was sent; digital silence everywhere else."""
    intervals = sent_intervals(trace)
    assert intervals, "the trace shows no audio sent"
    margin = 0.02  # one output frame
    inside = np.zeros(len(reply), bool)
    for start, end in intervals:
        assert end - start > 0.2
        inside[max(0, round((start - margin) * rate)) : round((end + margin) * rate)] = True
        # 100 ms windows strictly inside the interval: mostly voiced, and loud overall.
        core = reply[round((start + margin) * rate) : round((end - margin) * rate)].astype(float)
        assert np.sqrt(np.mean(core**2)) > 300
        win = rate // 10
        rms = [np.sqrt(np.mean(core[i : i + win] ** 2)) for i in range(0, len(core) - win, win)]
        assert np.mean(np.array(rms) > 30) > 0.7, rms
    assert not np.any(reply[~inside]), "audio outside the intervals the trace reports as sent"


# -- whole sessions on the shared recordings -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "keywords"),
    [
        ("pocketsphinx_goforward.raw", ["forward"]),
        ("pocketsphinx_cards_005.wav", ["spades", "hearts"]),
        ("deepspeech_arctic_a0024.wav", ["north", "people"]),
    ],
)
def test_keywords_through_the_session(
    audio_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    keywords: list[str],
) -> None:
    out, trace_path = tmp_path / "reply.wav", tmp_path / "trace.jsonl"
    result = run_json(capsys, str(audio_dir / name), "--out", str(out), "--trace", str(trace_path))
    assert result["clock"] == "virtual" and result["compute"] == "inline"
    assert result["end_reason"] == "input_ended"
    [utterance] = result["utterances"]
    [turn] = result["turns"]
    assert turn["status"] == "completed"
    for word in keywords:
        # heard by STT, handed to the planner, spoken back and heard in full
        assert word in words(utterance["text"])
        assert word in words(turn["user_text"])
        assert word in words(turn["generated_text"])
        assert word in words(turn["heard_text"])
    assert turn["heard_text"] == turn["generated_text"] and turn["cut_text"] == ""
    lat = turn["latency_ms"]
    assert lat["speech_stopped_to_audio"] > 0  # engine compute is charged to the clock
    assert lat["turn_started_to_audio"] <= lat["speech_stopped_to_audio"]
    # The trace is the event stream, and the reply audio agrees with it.
    trace = read_trace(trace_path)
    # The latency report agrees with the trace's own timestamps.
    [stop] = [e for e in trace if e["type"] == "speech_stopped"]
    [first] = [e for e in trace if e["type"] == "audio_out_first"]
    assert lat["endpointing"] == pytest.approx(1000 * (stop["media_t"] - stop["offset"]), abs=1e-3)
    decision_to_audio = 1000 * (first["t"] - stop["t"])
    assert lat["speech_stopped_to_audio"] == pytest.approx(decision_to_audio, abs=1e-3)
    assert trace[0]["type"] == "session_started" and trace[-1]["type"] == "session_ended"
    assert [e["seq"] for e in trace] == list(range(len(trace)))
    reply, rate = read_wav(out)
    source, source_rate = read_wav(audio_dir / name)
    assert rate == 16000
    assert len(reply) / rate >= len(source) / source_rate  # the input's timeline, at least
    assert_audio_matches_trace(reply, rate, trace)


@pytest.fixture(scope="module")
def vosk_runs(audio_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Two virtual-clock runs of vosk_test.wav: (json result, trace) each."""
    runs = []
    for i in range(2):
        trace = tmp_path_factory.mktemp("vosk") / f"trace{i}.jsonl"
        out = trace.with_suffix(".wav")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(
                [
                    str(audio_dir / "vosk_test.wav"),
                    "--engines",  # the assertions below are about pocketsphinx's words
                    "light",
                    "--json",
                    "--trace",
                    str(trace),
                    "--out",
                    str(out),
                ]
            )
        assert code == 0
        runs.append({"result": json.loads(buf.getvalue()), "trace": read_trace(trace), "out": out})
    return runs


def test_vosk_three_user_turns(vosk_runs: list[dict[str, Any]]) -> None:
    result, trace = vosk_runs[0]["result"], vosk_runs[0]["trace"]
    texts = [u["text"] for u in result["utterances"]]
    assert len(texts) == 3 and all(len(t.split()) >= 3 for t in texts), texts
    # The README's (approximate, energy-based) speech regions: 0.69-2.97, 3.90-4.92, 6.30-8.07 s.
    regions = [(0.69, 2.97), (3.9, 4.92), (6.3, 8.07)]
    for u, (lo, hi) in zip(result["utterances"], regions, strict=True):
        assert abs(u["onset"] - lo) < 0.45 and abs(u["offset"] - hi) < 0.45, u
    assert [t["user_text"] for t in result["turns"]] == texts
    assert "zero" in words(texts[0]) and "zero" in words(texts[2])
    # Each user turn after the first talked over the previous reply: a barge-in cut it.
    assert [t["status"] for t in result["turns"]] == ["cancelled", "cancelled", "completed"]
    for t in result["turns"][:2]:
        assert t["barge_in"]["reason"] == "barge_in"
        assert t["generated_text"].startswith(t["heard_text"])
        assert t["heard_text"] != t["generated_text"] and t["cut_text"]
    assert_audio_matches_trace(*read_wav(vosk_runs[0]["out"]), trace)


def test_virtual_clock_runs_are_deterministic(vosk_runs: list[dict[str, Any]]) -> None:
    a, b = (r["result"] for r in vosk_runs)
    assert [u["text"] for u in a["utterances"]] == [u["text"] for u in b["utterances"]]
    keys = ("turn", "user_text", "status", "generated_text", "heard_text", "cut_text")
    assert [[t[k] for k in keys] for t in a["turns"]] == [[t[k] for k in keys] for t in b["turns"]]
    ta, tb = ([e["type"] for e in r["trace"] if e["type"] in STRUCTURE] for r in vosk_runs)
    assert ta == tb


def test_barge_in_mixed_from_two_recordings(
    audio_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "go forward ten meters" ends at ~2.4 s and the reply starts at ~2.9 s; the cards
    # recording starts speaking at ~4.0 s, while the reply (about 2.4 s long) still plays.
    first, _ = read_wav(audio_dir / "pocketsphinx_goforward.raw")
    second, _ = read_wav(audio_dir / "pocketsphinx_cards_005.wav")
    mixed = tmp_path / "mixed.wav"
    write_wav(mixed, place(8000, (0, first), (3800, second)), 16000)
    trace_path, out = tmp_path / "trace.jsonl", tmp_path / "reply.wav"
    result = run_json(capsys, str(mixed), "--trace", str(trace_path), "--out", str(out))
    trace = read_trace(trace_path)
    [cancelled] = [e for e in trace if e["type"] == "turn_cancelled"]
    assert cancelled["turn"] == 1 and cancelled["reason"] == "barge_in"
    heard, generated = cancelled["heard_text"], cancelled["generated_text"]
    assert heard and generated.startswith(heard) and heard != generated  # a strict prefix
    assert "forward" in words(generated)
    [barge] = [e for e in trace if e["type"] == "barge_in"]
    assert barge["onset"] > 3.8  # the second recording, not the first
    assert barge["t"] <= cancelled["t"]
    # The report says the same thing as the trace, and the user's second turn was answered.
    t1, t2 = result["turns"]
    assert (t1["status"], t1["heard_text"], t1["generated_text"]) == ("cancelled", heard, generated)
    assert t1["cut_text"] and words(heard) + words(t1["cut_text"]) == words(generated)
    assert t2["status"] == "completed" and "spades" in words(t2["user_text"])
    assert_audio_matches_trace(*read_wav(out), trace)


def test_onset_policy_cancels_at_speech_onset(
    audio_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = read_wav(audio_dir / "pocketsphinx_goforward.raw")
    second, _ = read_wav(audio_dir / "pocketsphinx_cards_005.wav")
    mixed = tmp_path / "mixed.wav"
    write_wav(mixed, place(8000, (0, first), (3800, second)), 16000)
    trace_path = tmp_path / "trace.jsonl"
    result = run_json(capsys, str(mixed), "--policy", "onset", "--trace", str(trace_path))
    assert result["policy"]["mode"] == "onset"
    trace = read_trace(trace_path)
    started = [e for e in trace if e["type"] == "speech_started"]
    [barge] = [e for e in trace if e["type"] == "barge_in"]
    assert barge["t"] == started[1]["t"]  # no confirmation wait
    assert not [e for e in trace if e["type"] == "output_paused"]
    assert result["turns"][0]["status"] == "cancelled"


def test_any_common_wav_format(
    audio_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """44.1 kHz, 24-bit, stereo in; resampled to the session rate; same words out."""
    pcm, _ = read_wav(audio_dir / "pocketsphinx_goforward.raw")
    from bargein.dsp import resample

    x = resample((pcm / 32768).astype(np.float32), 16000, 44100)
    s = np.clip(np.round(x * 2**23), -(2**23), 2**23 - 1).astype(np.int32)
    stereo = np.stack([s, s], 1).reshape(-1)
    raw = np.stack([stereo & 255, (stereo >> 8) & 255, (stereo >> 16) & 255], 1).astype(np.uint8)
    path = tmp_path / "in.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(3)
        w.setframerate(44100)
        w.writeframes(raw.tobytes())
    out = tmp_path / "reply.wav"
    result = run_json(capsys, str(path), "--out", str(out))
    assert result["input"]["rate"] == 44100
    assert result["input"]["duration_s"] == pytest.approx(len(pcm) / 16000, abs=0.01)
    [utterance] = result["utterances"]
    assert "forward" in words(utterance["text"])
    assert read_wav(out)[1] == 16000


def test_human_output(audio_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(audio_dir / "pocketsphinx_goforward.raw")]) == 0
    out = capsys.readouterr().out
    assert "virtual clock" in out
    user = [line for line in out.splitlines() if " user " in line]
    assert len(user) == 1 and "forward" in user[0]
    assert "assistant #1" in out and "[completed]" in out
    assert "from end-of-speech decision" in out
    assert "session ended (input_ended)" in out


def test_analyse_pairs_utterances_by_number() -> None:
    """A final that arrives after the next utterance began still gets its own speech span."""

    def ev(seq: int, type: EventType, t: float, turn: int | None = None, **data: Any) -> Event:
        return Event(type, t, "s", seq, turn, data)

    events = [
        ev(0, EventType.SPEECH_STARTED, 0.6, onset=0.5, media_t=0.6),
        ev(1, EventType.SPEECH_STOPPED, 2.0, offset=1.5, media_t=2.0),
        ev(2, EventType.SPEECH_STARTED, 2.1, onset=2.0, media_t=2.1),
        ev(3, EventType.TRANSCRIPT_FINAL, 2.2, utterance=1, text="hello there"),
        ev(4, EventType.TURN_STARTED, 2.2, 1, user_text="hello there"),
        ev(5, EventType.AUDIO_OUT_FIRST, 2.3, 1),
        ev(6, EventType.BARGE_IN, 2.5, 1, reason="barge_in", onset=2.0),
        ev(
            7,
            EventType.TURN_CANCELLED,
            2.5,
            1,
            reason="barge_in",
            heard_text="Hi",
            generated_text="Hi there.",
            heard_ms=200.0,
        ),
    ]
    report = analyse(events)
    [u] = report.utterances
    assert (u.onset, u.offset) == (0.5, 1.5)
    [t] = report.turns
    assert (t.status, t.cut_text, t.speech_stopped) == ("cancelled", "there.", 2.0)
    lat = t.latency_ms()
    assert lat["speech_stopped_to_audio"] == pytest.approx(300.0)
    assert lat["endpointing"] == pytest.approx(500.0)
    assert lat["speech_offset_to_audio"] == pytest.approx(800.0)
    assert lat["turn_started_to_audio"] == pytest.approx(100.0)


# -- unhappy paths --------------------------------------------------------------------------------


def _empty_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("hello, not audio\n"), "not a PCM WAV file"),
        (_empty_wav, "no audio"),
        (lambda p: p.mkdir(), ""),
    ],
    ids=["missing", "not-wav", "empty", "directory"],
)
def test_bad_input_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, message: str
) -> None:
    path = tmp_path / "input.wav"
    make(path)
    out = tmp_path / "reply.wav"
    assert main([str(path), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("bargein run: error: ") and str(path) in captured.err
    assert message in captured.err
    assert not out.exists()


def test_empty_raw_input_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "input.raw"
    path.write_bytes(b"")
    assert main([str(path)]) == 1
    assert "no audio" in capsys.readouterr().err


def test_unwritable_output_exit_1(
    audio_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = str(audio_dir / "pocketsphinx_goforward.raw")
    trace = tmp_path / "trace.jsonl"
    argv = [source, "--out", str(tmp_path / "nope" / "r.wav"), "--trace", str(trace)]
    assert main(argv) == 1
    assert "no such directory" in capsys.readouterr().err
    assert not trace.exists()  # refused before the session ran


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--llm-base-url", "http://127.0.0.1:9/v1"], "--llm-base-url needs --realtime"),
        (["--llm-model", "m"], "need --llm-base-url"),
        (["--voice", "no-such-voice"], "no voice"),
        (["--rate-wpm", "5"], "rate_wpm"),
        (["--min-speech-ms", "-1"], "--min-speech-ms"),
        (["--policy", "sometimes"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(
    audio_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([str(audio_dir / "pocketsphinx_goforward.raw"), *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err


@pytest.mark.parametrize(
    "argv", [["--llm-base-url", "http://127.0.0.1:9/v1"], ["--voice", "no-such-voice"]]
)
def test_usage_errors_found_before_reading_input(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main(["/no/such.wav", *argv]) == 2
    assert "no such file" not in capsys.readouterr().err


def test_help_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--realtime" in capsys.readouterr().out


# -- the command as a subprocess ------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bargein.cli", "run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,  # hang guard only
    )


def test_cli_subprocess_writes_outputs(audio_dir: Path, tmp_path: Path) -> None:
    out, trace = tmp_path / "reply.wav", tmp_path / "trace.jsonl"
    proc = cli(
        str(audio_dir / "pocketsphinx_goforward.raw"), "--out", str(out), "--trace", str(trace)
    )
    assert proc.returncode == 0, proc.stderr
    assert "forward" in proc.stdout and "assistant #1" in proc.stdout
    assert_audio_matches_trace(*read_wav(out), read_trace(trace))


def test_cli_subprocess_bad_input_and_network_rule(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    proc = cli(str(missing))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"bargein run: error: {missing}: no such file"
    proc = cli(str(missing), "--llm-base-url", "http://127.0.0.1:9/v1")
    assert proc.returncode == 2 and "--realtime" in proc.stderr and proc.stdout == ""


# -- real time, with the OpenAI-compatible planner against the local server ----------------------


@pytest.fixture
def local_llm() -> Any:
    """The scripted OpenAI-compatible server (echo replies) in a thread of its own."""
    ready: queue.Queue[tuple[str, trio.lowlevel.TrioToken, trio.CancelScope]] = queue.Queue()

    async def serve() -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                server = await nursery.start(serve_openai, ServerConfig())
                ready.put((server.url, trio.lowlevel.current_trio_token(), scope))

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    url, token, scope = ready.get(timeout=60)
    yield url
    trio.from_thread.run_sync(scope.cancel, trio_token=token)
    thread.join(timeout=60)


def test_realtime_with_network_planner(
    audio_dir: Path, local_llm: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_json(
        capsys,
        str(audio_dir / "pocketsphinx_goforward.raw"),
        "--realtime",
        "--llm-base-url",
        local_llm,
        "--llm-model",
        "bargein-local",
    )
    assert result["clock"] == "real" and result["compute"] == "thread"
    assert result["engines"]["planner"] == "openai"
    [turn] = result["turns"]
    assert turn["status"] == "completed", result
    assert "forward" in words(turn["generated_text"])  # the server echoes the user


def test_voice_to_voice_benchmark(audio_dir: Path) -> None:
    from bargein.benchmarks.engines import voice_to_voice
    from bargein.engines.embedded import default_engines

    result = voice_to_voice(default_engines(), audio_dir, ["pocketsphinx_goforward.raw"])
    assert result is not None and result["turns"] == 1
    # With trailing silence the VAD ends the utterance by its own endpointing.
    assert result["endpointing_ms"]["p50"] == result["vad_stop_ms"] == 480
    decision = result["speech_stopped_to_audio_out_first_ms"]["p50"]
    assert decision > 0
    assert result["speech_offset_to_audio_out_first_ms"]["p50"] == pytest.approx(480 + decision)
    assert result["turn_started_to_audio_out_first_ms"]["p50"] <= decision
    assert voice_to_voice(default_engines(), audio_dir / "missing") is None
