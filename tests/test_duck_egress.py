"""Ducking in egress (the gain applied to the frames actually sent, no click, the echo reference
tap sees the ducked samples, a ducked turn fades out before its clear) and a whole session with
the duck + classifier policy: a backchannel over the reply leaves it uncancelled and heard whole.
Virtual clock throughout."""

from __future__ import annotations

import itertools
import math

import numpy as np
import trio
import trio.testing

from bargein.actors.egress import AudioStarted, Egress
from bargein.actors.policy import InterruptionPolicy, OverlapView, Verdict
from bargein.engines.base import Engines
from bargein.runtime.bus import EventBus
from bargein.runtime.events import EventType
from bargein.runtime.messages import Int16Array, OutFrame, WordMark
from bargein.session import SessionConfig, open_session
from bargein.testing.audio import feed_live, load, place
from bargein.testing.memory import MemoryTransport
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts

RATE = 16000
FRAME = 320
LEVEL = 10000
DEPTH_DB = -15.0
RAMP_MS = 30.0


class Scripted(MemoryTransport):
    """Does `script[i]` to turn 1 once i frames have been sent ("duck", "restore",
    "interrupt"), synchronously, as the floor would between two frames."""

    def __init__(self, script: dict[int, str]) -> None:
        super().__init__()
        self.script = script
        self.egress: Egress | None = None

    async def send_audio(self, frame: OutFrame) -> None:
        await super().send_audio(frame)
        action = self.script.pop(len(self.frames), None)
        assert self.egress is not None
        if action == "duck":
            assert self.egress.duck(1)
        elif action == "restore":
            assert self.egress.restore(1)
        elif action == "interrupt":
            assert self.egress.interrupt(1)
        elif action == "pause, interrupt":
            self.egress.pause(1)
            assert self.egress.interrupt(1)


async def play_constant(
    frames: int, script: dict[int, str], tap: list[Int16Array] | None = None
) -> tuple[MemoryTransport, Egress]:
    """One turn of `frames` constant frames through egress, the script done as it plays."""
    transport = Scripted(dict(script))
    bus = EventBus("s", trio.current_time(), None)
    started_send, started_recv = trio.open_memory_channel[AudioStarted](10)
    egress = transport.egress = Egress(
        transport,
        bus,
        rate=RATE,
        lead_ms=0,
        buffer_frames=4,
        on_audio_started=started_send,
        on_played=(lambda pcm, at: tap.append(pcm.copy())) if tap is not None else None,
        duck_db=DEPTH_DB,
        duck_ramp_ms=RAMP_MS,
    )

    async def produce(send: trio.MemorySendChannel[OutFrame]) -> None:
        async with send:
            for i in range(frames):
                pcm = np.full(FRAME, LEVEL, np.int16)
                word = (WordMark(f"w{i}", i * FRAME, (i + 1) * FRAME),)
                try:
                    await send.send(OutFrame(1, pcm, i * FRAME, word))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

    async with trio.open_nursery() as nursery:
        await nursery.start(egress.run)
        send, feed = egress.open_turn(1)
        nursery.start_soon(produce, send)
        await feed.done.wait()
        nursery.cancel_scope.cancel()
    started_recv.close()
    return transport, egress


def max_step_bound(depth_db: float = DEPTH_DB) -> float:
    """The largest sample-to-sample gain step of one raised-cosine ramp (docs/dsp.md), plus
    one PCM16 rounding step either side."""
    n = round(RAMP_MS * RATE / 1000)
    return (1 - 10 ** (depth_db / 20)) * math.sin(math.pi / (2 * n)) + 2 / LEVEL


async def test_duck_ramps_down_and_back_without_a_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tap: list[Int16Array] = []
    transport, egress = await play_constant(60, {10: "duck", 40: "restore"}, tap)
    sent = transport.turn_audio(1)
    assert len(sent) == 60 * FRAME  # every frame goes out: ducking never drops audio
    gain = sent.astype(np.float64) / LEVEL
    depth = 10 ** (DEPTH_DB / 20)
    ramp = round(RAMP_MS * RATE / 1000)
    assert np.all(gain[: 10 * FRAME] == 1.0)
    assert abs(gain[10 * FRAME + ramp + 1] - depth) < 2 / LEVEL  # down by duck_db...
    assert np.all(np.abs(gain[15 * FRAME : 40 * FRAME] - depth) < 2 / LEVEL)
    assert np.all(gain[40 * FRAME + ramp + 1 :] == 1.0)  # ...and back to exactly 1
    assert np.max(np.abs(np.diff(gain))) <= max_step_bound()
    # the echo reference sees what was sent, ducked samples included
    assert np.array_equal(np.concatenate(tap), sent)
    assert egress.frames_sent == 60


async def test_a_ducked_turn_fades_out_before_its_clear(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tap: list[Int16Array] = []
    transport, _ = await play_constant(40, {5: "duck", 20: "interrupt"}, tap)
    frames = [f for _, f in transport.turn_frames(1)]
    sent = transport.turn_audio(1)
    depth = 10 ** (DEPTH_DB / 20)
    ramp = round(RAMP_MS * RATE / 1000)
    fade = frames[-1]
    assert len(fade.pcm) == ramp and fade.words == ()  # one fade of the ramp's length
    assert fade.start == frames[-2].end  # it continues the audio where it was
    gain = sent.astype(np.float64) / LEVEL
    assert abs(gain[-ramp - 1] - depth) < 2 / LEVEL
    assert sent[-1] == 0  # ends in silence...
    assert np.max(np.abs(np.diff(gain))) <= max_step_bound(-120)  # ...without a step
    (clear_t, turn), = transport.clears
    assert turn == 1 and clear_t >= transport.turn_frames(1)[-1][0] + ramp / RATE - 1e-9
    assert np.array_equal(np.concatenate(tap), sent)
    # the faded frame's words were not heard whole
    feed_words = [w.text for _, f in transport.turn_frames(1) for w in f.words]
    assert "w20" not in feed_words and feed_words[-1] == f"w{len(frames) - 2}"


async def test_an_interrupt_without_a_duck_stops_dead(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport, _ = await play_constant(40, {20: "interrupt"})
    assert all(len(f.pcm) == FRAME for _, f in transport.turn_frames(1))  # no fade frame
    assert len(transport.clears) == 1


async def test_a_ducked_turn_that_is_paused_stops_without_a_fade(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport, _ = await play_constant(40, {5: "duck", 20: "pause, interrupt"})
    frames = [f for _, f in transport.turn_frames(1)]
    assert len(frames) == 20 and all(len(f.pcm) == FRAME for f in frames)  # silent already
    assert len(transport.clears) == 1


LONG_REPLY = (
    "Once upon a time there was a small robot. It lived in a quiet town by the sea. "
    "Every morning it walked to the harbour to count the boats. One day a storm came. "
    "The robot stayed on the pier and kept counting anyway."
)


async def test_a_backchannel_during_the_reply_leaves_it_whole(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    """AMI speaker C's real "Mm. Yeah." 4 s into the reply: ducked, restored, never cut."""
    ask = load("pocketsphinx_goforward.raw")
    mm_yeah = load("pyannote_ami_source2.wav")[round(27.8 * RATE) : round(28.7 * RATE)]
    audio = place(12000, (0, ask), (7000, mm_yeah))
    eng = Engines(
        stt=ScriptedStt(["go forward ten meters", "mm yeah"]),
        planner=ScriptedPlanner([LONG_REPLY]),
        tts=ScriptedTts(),
    )
    policy = InterruptionPolicy(overlap_action="duck", classifier=True, side_talk=True)
    transport = MemoryTransport()
    async with open_session(SessionConfig(policy=policy), eng, transport) as session:
        await feed_live(session.push_audio, audio)
        session.end_input()
        with trio.fail_after(60):
            await session.wait_ended()
    kinds = [e.type for e in transport.events]
    assert EventType.BARGE_IN not in kinds and EventType.OUTPUT_PAUSED not in kinds
    ducked, = transport.of_type(EventType.OUTPUT_DUCKED)
    restored, = transport.of_type(EventType.OUTPUT_RESTORED)
    assert ducked.turn == restored.turn == 1 and restored.t > ducked.t
    assert ducked.data["depth_db"] == -15.0 and restored.data["text"] == "mm yeah"
    completed, = transport.of_type(EventType.TURN_COMPLETED)
    assert completed.turn == 1 and completed.data["heard_text"] == LONG_REPLY.replace("  ", " ")
    assert session.messages[-1].content == completed.data["heard_text"]
    assert not session.messages[-1].interrupted
    frames = [f for _, f in transport.turn_frames(1)]
    assert all(b.start == a.end for a, b in itertools.pairwise(frames))  # no gap
    # quieter while ducked, full level again after the restore
    t0 = session.bus.t0
    during = [f for t, f in transport.turn_frames(1) if ducked.t + 0.1 < t - t0 < restored.t]
    after = [f for t, f in transport.turn_frames(1) if restored.t + 0.1 < t - t0]
    peak_during = max(int(np.abs(f.pcm).max()) for f in during)
    peak_after = max(int(np.abs(f.pcm).max()) for f in after)
    assert 20 * math.log10(peak_during / peak_after) < -12
    # the mic's levels reached the floor: the user's level is calibrated on their request
    # (go forward ten meters: 90th percentile of its frames, about -25 dBFS)
    audio = session.floor.machine.audio
    assert audio is not None and audio.user_dbfs is not None
    assert -30.0 < audio.user_dbfs < -20.0
    # only one turn: the backchannel did not become a user turn
    assert len(transport.of_type(EventType.TURN_STARTED)) == 1


class DuckingJudge:
    """An outside judge: duck, and let the final decide (anything but cancel restores)."""

    def __init__(self) -> None:
        self.views: list[OverlapView] = []

    def judge(self, view: OverlapView) -> Verdict:
        self.views.append(view)
        return "duck"

    def deadline(self, view: OverlapView) -> float | None:
        return None


async def test_an_outside_judge_ducks_and_hears_the_levels(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    ask = load("pocketsphinx_goforward.raw")
    mm_yeah = load("pyannote_ami_source2.wav")[round(27.8 * RATE) : round(28.7 * RATE)]
    eng = Engines(
        stt=ScriptedStt(["go forward ten meters", "mm yeah"]),
        planner=ScriptedPlanner([LONG_REPLY]),
        tts=ScriptedTts(),
    )
    judge = DuckingJudge()
    transport = MemoryTransport()
    config = SessionConfig(policy=InterruptionPolicy(judge=judge, duck_db=-20.0))
    async with open_session(config, eng, transport) as session:
        await feed_live(session.push_audio, place(12000, (0, ask), (7000, mm_yeah)))
        session.end_input()
        with trio.fail_after(60):
            await session.wait_ended()
    ducked, = transport.of_type(EventType.OUTPUT_DUCKED)
    assert ducked.data["depth_db"] == -20.0 and transport.of_type(EventType.OUTPUT_RESTORED)
    heard = [v for v in judge.views if v.trigger == "levels"]
    assert heard and all(v.level_dbfs is not None for v in heard)
    assert heard[-1].user_dbfs is not None and heard[-1].relative_db is not None
    assert heard[-1].ducked and EventType.BARGE_IN not in [e.type for e in transport.events]


async def test_our_own_words_coming_back_do_not_cancel_the_reply(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    """Loud speech over the reply recognized as the reply's own recent words (a speakerphone
    without an echo canceller, heard by a real recognizer): our echo, restored."""
    ask = load("pocketsphinx_goforward.raw")
    loud = load("deepspeech_arctic_a0024.wav")  # +10 dB over the request: not quiet
    eng = Engines(
        stt=ScriptedStt(
            ["go forward ten meters", "a small robot it lived in a quiet town"], ms_per_word=100
        ),
        planner=ScriptedPlanner([LONG_REPLY]),
        tts=ScriptedTts(),
    )
    policy = InterruptionPolicy(overlap_action="duck", classifier=True, side_talk=True)
    transport = MemoryTransport()
    async with open_session(SessionConfig(policy=policy), eng, transport) as session:
        await feed_live(session.push_audio, place(14000, (0, ask), (6000, loud)))
        session.end_input()
        with trio.fail_after(60):
            await session.wait_ended()
    kinds = [e.type for e in transport.events]
    assert EventType.BARGE_IN not in kinds
    restored, = transport.of_type(EventType.OUTPUT_RESTORED)
    assert restored.data["text"] == "a small robot it"  # the partial that decided
    audio = session.floor.machine.audio
    assert audio is not None and audio.side_talk_verdict is not None
    assert "our own words" in audio.side_talk_verdict.reason
    assert transport.of_type(EventType.TURN_COMPLETED)[0].turn == 1
