"""Session invariants (../shared/DESIGN.md) under the virtual clock, with scripted engines,
real webrtcvad and a real recording as the microphone."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import trio
import trio.testing

from bargein.actors.policy import InterruptionPolicy
from bargein.actors.turn import run_turn
from bargein.engines.base import Engines
from bargein.runtime.events import Event, EventType
from bargein.runtime.history import ChatMessage
from bargein.runtime.messages import OutFrame
from bargein.session import Session, SessionConfig, open_session
from bargein.testing.audio import feed_live, load, place
from bargein.testing.memory import MemoryTransport
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts

LONG_REPLY = (
    "Once upon a time there was a small robot. It lived in a quiet town by the sea. "
    "Every morning it walked to the harbour to count the boats. One day a storm came. "
    "The robot stayed on the pier and kept counting anyway."
)
FRAME_S = 0.02


def engines(**planner_kw: object) -> Engines:
    return Engines(
        stt=ScriptedStt(["go forward ten meters", "stop please"]),
        planner=ScriptedPlanner([LONG_REPLY], **planner_kw),  # type: ignore[arg-type]
        tts=ScriptedTts(),
    )


def go_forward() -> np.ndarray:
    return load("pocketsphinx_goforward.raw")  # speech ≈ 0.48–2.40 s


def all_tasks() -> set[trio.lowlevel.Task]:
    """Every task alive in this trio run, by walking trio's task tree (names play no part)."""
    tasks: set[trio.lowlevel.Task] = set()

    def walk(task: trio.lowlevel.Task) -> None:
        tasks.add(task)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    walk(root)
    return tasks


def is_turn_runner(task: trio.lowlevel.Task) -> bool:
    code = getattr(task.coro, "cr_code", None)
    return code is run_turn.__code__



async def run_conversation(
    audio: np.ndarray,
    *,
    config: SessionConfig | None = None,
    eng: Engines | None = None,
    transport: MemoryTransport | None = None,
    on_event: Callable[[Session, Event], None] | None = None,
    tail_s: float = 30.0,
) -> tuple[Session, MemoryTransport]:
    transport = transport or MemoryTransport()
    async with open_session(config or SessionConfig(), eng or engines(), transport) as session:
        if on_event is not None:
            session.bus.add_listener(lambda e: on_event(session, e))
        await feed_live(session.push_audio, audio)
        session.end_input()
        with trio.fail_after(tail_s):  # hang guard on the virtual clock
            assert await session.wait_ended() == "input_ended"
    return session, transport


async def test_a_turn_from_speech_to_reply_audio(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    session, transport = await run_conversation(go_forward())
    kinds = [e.type for e in transport.events]
    for expected in (
        EventType.SESSION_STARTED,
        EventType.SPEECH_STARTED,
        EventType.SPEECH_STOPPED,
        EventType.TRANSCRIPT_FINAL,
        EventType.TURN_STARTED,
        EventType.LLM_FIRST_TOKEN,
        EventType.TTS_FIRST_AUDIO,
        EventType.AUDIO_OUT_FIRST,
        EventType.TURN_COMPLETED,
        EventType.SESSION_ENDED,
    ):
        assert expected in kinds, expected
    started = transport.of_type(EventType.SPEECH_STARTED)[0]
    assert 0.4 <= started.data["onset"] <= 0.7
    final = transport.of_type(EventType.TRANSCRIPT_FINAL)[0]
    assert final.data["text"] == "go forward ten meters"
    # Output is paced: one 20 ms frame per 20 ms of session time, no gaps, no bursts.
    times = [t for t, _ in transport.turn_frames(1)]
    assert np.allclose(np.diff(times), FRAME_S)
    assert sum(len(f.pcm) for _, f in transport.frames) == len(transport.turn_audio(1))
    assert [m.role for m in session.messages] == ["user", "assistant"]
    assert session.messages[1].content == LONG_REPLY
    assert not session.messages[1].interrupted
    seqs = [e.seq for e in transport.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_barge_in_silences_within_one_frame_and_turn_tasks_are_gone(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    before_turn: set[trio.lowlevel.Task] = set()
    alive_at_cancel: list[trio.lowlevel.Task] = []

    def watch(session: Session, event: Event) -> None:
        if event.type == EventType.TURN_STARTED and event.turn == 1:
            before_turn.update(all_tasks())
        if event.type == EventType.TURN_CANCELLED:
            # Every task born since the turn began is gone, whatever its name, but the turn
            # runners themselves (this one, emitting, and the next one, waiting for it).
            born = all_tasks() - before_turn
            alive_at_cancel.extend(t for t in born if not is_turn_runner(t))

    audio = place(14000, (0, go_forward()), (5000, go_forward()))
    config = SessionConfig(policy=InterruptionPolicy(mode="onset"))
    session, transport = await run_conversation(audio, config=config, on_event=watch)

    barge = transport.of_type(EventType.BARGE_IN)[0]
    cleared = transport.of_type(EventType.OUTPUT_CLEARED)[0]
    cancelled = transport.of_type(EventType.TURN_CANCELLED)[0]
    assert barge.turn == cleared.turn == cancelled.turn == 1
    t0 = session.bus.t0
    after = [f for t, f in transport.turn_frames(1) if t - t0 > barge.t]
    assert after == []  # not one frame of the turn after the decision
    assert cleared.t - barge.t < FRAME_S
    assert transport.clears and transport.clears[0][1] == 1
    assert before_turn and alive_at_cancel == []
    assert barge.data["reason"] == "barge_in"
    assert 5.4 < barge.data["onset"] < 5.8  # the second utterance's speech began ≈ 5.48 s
    # The interrupting utterance became turn 2, which completed.
    assert transport.of_type(EventType.TURN_COMPLETED)[0].turn == 2


async def test_history_holds_only_what_was_sent(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    audio = place(14000, (0, go_forward()), (5000, go_forward()))
    config = SessionConfig(policy=InterruptionPolicy(mode="onset"))
    eng = engines()
    session, transport = await run_conversation(audio, config=config, eng=eng)

    cancelled = transport.of_type(EventType.TURN_CANCELLED)[0]
    heard = cancelled.data["heard_text"]
    assert heard and LONG_REPLY.startswith(heard) and heard != LONG_REPLY
    sent_samples = sum(len(f.pcm) for _, f in transport.turn_frames(1))
    assert cancelled.data["sent_ms"] == pytest.approx(1000 * sent_samples / 16000)
    sent_words: list[str] = [w.text for _, f in transport.turn_frames(1) for w in f.words]
    assert heard == " ".join(sent_words)  # every heard word was sent whole
    _, assistant1, user2, _ = session.messages
    assert (assistant1.content, assistant1.interrupted) == (heard, True)
    assert user2.content == "stop please"
    # The planner's second request carried the truncated reply, not the generated one.
    second = eng.planner.requests[1]  # type: ignore[attr-defined]
    assert second.messages[1].content == heard and second.messages[1].interrupted


async def test_playback_reports_decide_what_was_heard(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    played_ms = 700

    def report(session: Session, event: Event) -> None:
        if event.type == EventType.BARGE_IN:
            # The peer says it played only the first 700 ms of what it was sent.
            session.report_playback(1, 16 * played_ms)

    audio = place(14000, (0, go_forward()), (5000, go_forward()))
    config = SessionConfig(policy=InterruptionPolicy(mode="onset"), egress_lead_ms=60)
    session, transport = await run_conversation(audio, config=config, on_event=report)
    cancelled = transport.of_type(EventType.TURN_CANCELLED)[0]
    assert cancelled.data["heard_ms"] == played_ms
    assert cancelled.data["sent_ms"] > played_ms
    heard_words = cancelled.data["heard_text"].split()
    assert session.messages[1].content == cancelled.data["heard_text"]
    assert 0 < len(heard_words) < len(cancelled.data["generated_text"].split())


async def test_confirm_policy_resumes_after_a_backchannel(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    # A 250 ms burst of speech while the assistant talks, recognised as "mm-hmm".
    burst = go_forward()[int(0.9 * 16000) : int(1.15 * 16000)]
    audio = place(9000, (0, go_forward()), (5000, burst))
    eng = Engines(
        ScriptedStt(["go forward ten meters", "mm-hmm"]),
        ScriptedPlanner([LONG_REPLY]),
        ScriptedTts(),
    )
    config = SessionConfig(policy=InterruptionPolicy(mode="confirm", min_speech_ms=600))
    session, transport = await run_conversation(audio, config=config, eng=eng)
    kinds = [e.type for e in transport.events]
    assert EventType.OUTPUT_PAUSED in kinds
    assert EventType.FALSE_INTERRUPTION in kinds
    assert EventType.BARGE_IN not in kinds
    resumed = transport.of_type(EventType.FALSE_INTERRUPTION)[0]
    assert resumed.data["text"] == "mm-hmm"
    assert transport.of_type(EventType.TURN_COMPLETED)[0].turn == 1
    assert session.messages[-1].content == LONG_REPLY
    # No frame went out while paused.
    paused = transport.of_type(EventType.OUTPUT_PAUSED)[0].t
    resumed_t = transport.of_type(EventType.OUTPUT_RESUMED)[0].t
    t0 = session.bus.t0
    assert not [f for t, f in transport.frames if paused < t - t0 < resumed_t]


async def test_session_close_leaves_no_task_behind(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    before = all_tasks()
    transport = MemoryTransport()
    async with open_session(SessionConfig(), engines(tokens_per_second=5), transport) as session:
        await feed_live(
            session.push_audio, place(4000, (0, go_forward()))
        )  # mid-reply: planner, TTS and egress are all busy
        assert any(is_turn_runner(t) for t in all_tasks())
    assert session.ended and session.end_reason == "closed"
    assert all_tasks() == before
    assert transport.of_type(EventType.SESSION_ENDED)[-1].data["reason"] == "closed"


class ExplodingTransport(MemoryTransport):
    async def send_audio(self, frame: OutFrame) -> None:
        raise ConnectionResetError("peer went away")


async def test_actor_failure_ends_only_its_session(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    good, bad = MemoryTransport(), ExplodingTransport()
    results: dict[str, str] = {}

    async def one(name: str, transport: MemoryTransport) -> None:
        async with open_session(SessionConfig(), engines(), transport) as session:
            await feed_live(session.push_audio, go_forward())
            session.end_input()
            with trio.fail_after(30):
                results[name] = await session.wait_ended()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, "bad", bad)
        nursery.start_soon(one, "good", good)
    assert results == {"bad": "error", "good": "input_ended"}
    error = bad.of_type(EventType.ERROR)[0]
    assert error.data["source"] == "egress" and error.data["fatal"] is True
    assert "peer went away" in error.data["message"]
    assert good.of_type(EventType.TURN_COMPLETED)


async def test_ingress_overflow_is_counted_not_silent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = MemoryTransport()
    config = SessionConfig(ingress_chunks=10)
    async with open_session(config, engines(), transport) as session:
        chunk = np.zeros(320, np.int16)
        for _ in range(25):  # a burst with no checkpoint: the mic cannot drain in between
            session.push_audio(chunk)
        await trio.sleep(0.5)
        assert session.stats()["ingress_dropped"] == 15
    dropped = transport.of_type(EventType.INPUT_DROPPED)
    assert dropped and dropped[0].data["dropped_total"] >= 1
    assert transport.of_type(EventType.SESSION_ENDED)[0].data["ingress_dropped"] == 15


async def test_bad_input_is_rejected_and_counted(autojump_clock: trio.testing.MockClock) -> None:
    transport = MemoryTransport()
    async with open_session(SessionConfig(), engines(), transport) as session:
        with pytest.raises(TypeError):
            session.push_audio(np.zeros(10, np.float32))
        session.reject("odd_length_pcm", "3 bytes")
        session.reject("odd_length_pcm", "5 bytes")
        await trio.sleep(0.1)
        assert session.stats()["rejected"] == {"odd_length_pcm": 2}
    rejected = transport.of_type(EventType.INPUT_REJECTED)
    assert [e.data["count"] for e in rejected] == [1, 2]


async def test_text_input_and_client_interrupt(autojump_clock: trio.testing.MockClock) -> None:
    transport = MemoryTransport()
    async with open_session(SessionConfig(), engines(), transport) as session:
        session.push_text("tell me a story")
        await trio.sleep(2.0)
        assert transport.turn_frames(1)
        session.interrupt()
        await trio.sleep(0.5)
        cancelled = transport.of_type(EventType.TURN_CANCELLED)
        assert cancelled and cancelled[0].data["reason"] == "client"
        assert 1.9 < cancelled[0].data["heard_ms"] / 1000 <= 2.0
    assert session.messages[0].content == "tell me a story"


async def test_planner_failure_keeps_partial_reply_and_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = MemoryTransport()
    eng = engines(fail_after_tokens=9)
    async with open_session(SessionConfig(), eng, transport) as session:
        session.push_text("tell me a story")
        await trio.sleep(10)
        errors = transport.of_type(EventType.ERROR)
        assert errors and errors[0].data == {
            "source": "planner",
            "error": "RuntimeError",
            "message": "scripted planner failure",
            "fatal": False,
        }
        # A failed turn is never `completed`: it ends with what was said and a spoken fallback.
        assert not transport.of_type(EventType.TURN_COMPLETED)
        done = transport.of_type(EventType.TURN_CANCELLED)[0]
        assert done.data["reason"] == "error"
        said = " ".join(LONG_REPLY.split()[:9]) + " Sorry, something went wrong."
        assert done.data["committed_text"] == said == done.data["heard_text"]
        assert session.messages[-1] == ChatMessage("assistant", said, interrupted=True)
        session.push_text("again")  # the session is still usable
        await trio.sleep(10)
        assert len(transport.of_type(EventType.TURN_STARTED)) == 2
        assert not session.ended


async def test_tts_failure_ends_the_turn_not_the_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = MemoryTransport()
    eng = Engines(ScriptedStt(), ScriptedPlanner([LONG_REPLY]), ScriptedTts(fail_on="storm"))
    async with open_session(SessionConfig(), eng, transport) as session:
        session.push_text("story please")
        await trio.sleep(30)
        cancelled = transport.of_type(EventType.TURN_CANCELLED)[0]
        assert cancelled.data["reason"] == "error"
        assert transport.of_type(EventType.ERROR)[0].data["fatal"] is False
        # What was played before the failure is what was heard.
        assert session.messages[1].content == cancelled.data["heard_text"]
        assert "storm" not in cancelled.data["heard_text"]
        assert not session.ended


async def test_resampled_output_and_input_rates(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    from bargein.dsp import Resampler

    mic48 = Resampler(16000, 48000).process_int16(go_forward())
    config = SessionConfig(input_rate=48000, output_rate=24000)
    session, transport = await run_conversation(mic48, config=config)
    assert transport.of_type(EventType.TRANSCRIPT_FINAL)[0].data["text"]
    assert {len(f.pcm) for _, f in transport.frames} == {480}  # 20 ms at 24 kHz
    assert session.messages[1].content == LONG_REPLY


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SessionConfig(input_rate=11025)
    with pytest.raises(ValueError):
        SessionConfig(frame_ms=25)


async def test_trace_and_hub_are_views_of_the_event_stream(
    autojump_clock: trio.testing.MockClock, tmp_path: object
) -> None:
    import json
    from pathlib import Path

    from bargein.runtime.bus import EventHub

    hub = EventHub()
    seen = hub.subscribe()
    traces = [Path(str(tmp_path)) / f"s{i}.jsonl" for i in range(2)]
    transports = [MemoryTransport(), MemoryTransport()]
    async with trio.open_nursery() as nursery:
        for i in range(2):

            async def one(i: int = i) -> None:
                config = SessionConfig(trace_path=str(traces[i]), session_id=f"s{i}")
                async with open_session(config, engines(), transports[i], hub=hub) as session:
                    session.push_text("hello")
                    await trio.sleep(20)

            nursery.start_soon(one)
    for i in range(2):
        lines = [json.loads(line) for line in traces[i].read_text().splitlines()]
        assert [x["seq"] for x in lines] == list(range(len(lines)))
        assert lines[0]["type"] == "session_started" and lines[-1]["type"] == "session_ended"
        assert lines == [e.to_json() for e in transports[i].events]
    seen.close()
    sessions = set()
    async for event in seen:
        sessions.add(event.session)
    assert sessions == {"s0", "s1"}
