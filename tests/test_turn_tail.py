"""A long reply whose peer falls behind our clock (network hiccups: frames that arrive late
leave its queue dry, and it never catches up): barge-in stays live until the peer has played
the last sample, and a completed turn commits the whole reply. The wait follows the peer's own
playback reports, bounded (a peer whose playback stops, or crawls, cannot hold a turn)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from bargein.actors.egress import MAX_PLAYBACK_LAG_S
from bargein.engines.base import Engines
from bargein.runtime.events import EventType
from bargein.runtime.messages import OutFrame
from bargein.session import Session, SessionConfig, open_session
from bargein.testing.memory import OrderedTransport
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from tests.test_turn_truth import assert_turn_truth

LONG = " ".join(["Once upon a time there was a small robot that lived by the sea."] * 11)  # 42 s
RATE = 16000


class LaggingPeer(OrderedTransport):
    """Plays its frames in order as they arrive and reports what it played every `every_s`.
    Frames sent during a hiccup `(start, length)` all arrive when it ends: the peer is then up
    to `length` behind our clock for good (egress paces at real time, so its queue never
    catches up)."""

    def __init__(self, hiccups: list[tuple[float, float]], every_s: float = 0.05) -> None:
        super().__init__()
        self.hiccups = hiccups
        self.every_s = every_s
        self.t0 = 0.0
        self.arrivals: list[tuple[float, OutFrame]] = []
        self.session: Session | None = None

    async def send_audio(self, frame: OutFrame) -> None:
        now = trio.current_time()
        arrival = now
        for start, length in self.hiccups:
            if self.t0 + start <= now < self.t0 + start + length:
                arrival = self.t0 + start + length
        self.arrivals.append((arrival, frame))
        await super().send_audio(frame)

    def played(self, now: float) -> int:
        """Samples of turn 1 the peer has played by `now`."""
        t, played = -1.0, 0
        for arrival, frame in self.arrivals:
            if frame.turn != 1:
                continue
            start = max(t, arrival)
            if start >= now:
                break
            n = len(frame.pcm)
            played = frame.start + min(n, round((now - start) * RATE))
            t = start + n / RATE
        return played

    def end(self) -> float:
        """When the peer plays the last sample sent so far."""
        t = -1.0
        for arrival, frame in self.arrivals:
            if frame.turn == 1:
                t = max(t, arrival) + len(frame.pcm) / RATE
        return t

    async def report_forever(self) -> None:
        while True:
            await trio.sleep(self.every_s)
            if self.session is not None and not self.session.ended:
                self.session.report_playback(1, self.played(trio.current_time()))


def engines() -> Engines:
    return Engines(ScriptedStt(), ScriptedPlanner([LONG]), ScriptedTts())


def all_sent(session: Session) -> bool:
    feed = session.egress._by_turn.get(1)
    if feed is None:
        return False
    stats = feed.frames.statistics()
    return stats.open_send_channels == 0 and stats.current_buffer_used == 0


# What the peer's queue holds after a hiccup absorbs a shorter one later: it ends the reply
# as far behind as its worst hiccup (0.9 s, beyond the lead and the grace).
HICCUPS = [(6.0, 0.3), (18.05, 0.6), (30.1, 0.9)]


async def run_long_reply(
    peer: LaggingPeer,
    lead_ms: int,
    *,
    interrupt_before_end_s: float | None,
    settle_s: float = 5.0,
) -> Session:
    config = SessionConfig(egress_lead_ms=lead_ms)
    async with open_session(config, engines(), peer) as session:
        peer.session, peer.t0 = session, session.bus.t0
        peer.watch(session)
        async with trio.open_nursery() as reporter:
            reporter.start_soon(peer.report_forever)
            session.push_text("tell me a long story")
            await trio.sleep(1)
            while not all_sent(session):  # noqa: ASYNC110 - polling on the virtual clock
                await trio.sleep(0.01)
            if interrupt_before_end_s is not None:
                await trio.sleep_until(peer.end() - interrupt_before_end_s)
                assert peer.played(trio.current_time()) < session.egress.sent_ms(1) * 16
                session.interrupt()
            await trio.sleep(settle_s)
            reporter.cancel_scope.cancel()
    return session


@pytest.mark.parametrize("lead_ms", [0, 200])
async def test_barge_in_is_live_until_a_lagging_peer_played_the_last_sample(
    autojump_clock: trio.testing.MockClock, lead_ms: int
) -> None:
    peer = LaggingPeer(HICCUPS)
    session = await run_long_reply(peer, lead_ms, interrupt_before_end_s=0.1)
    kinds = [e.type for e in peer.events if e.turn == 1]
    assert EventType.BARGE_IN in kinds and EventType.TURN_COMPLETED not in kinds, kinds
    assert ("clear", 1) in peer.log
    assert session.stats()["interrupts_late"] == 0
    (cancelled,) = peer.of_type(EventType.TURN_CANCELLED)
    heard = cancelled.data["heard_text"]
    assert heard != LONG and LONG.startswith(heard) and len(heard) > len(LONG) * 0.9
    assert_turn_truth(peer.events, session.messages)


@pytest.mark.parametrize("lead_ms", [0, 200])
async def test_a_lagging_peer_completes_the_turn_with_the_whole_reply_heard(
    autojump_clock: trio.testing.MockClock, lead_ms: int
) -> None:
    peer = LaggingPeer(HICCUPS)
    session = await run_long_reply(peer, lead_ms, interrupt_before_end_s=None)
    (done,) = peer.of_type(EventType.TURN_COMPLETED)
    assert done.data["heard_text"] == LONG == done.data["committed_text"]
    assert done.t >= peer.end() - peer.t0  # not before the peer played the last sample
    assert [m.content for m in session.messages if m.role == "assistant"] == [LONG]
    assert_turn_truth(peer.events, session.messages)


class CrawlingPeer(LaggingPeer):
    """From `from_s` on its playback crawls: each report has moved on by `step` samples only
    (`step` 0: it stopped playing, and keeps reporting where it stopped)."""

    def __init__(self, from_s: float, step: int) -> None:
        super().__init__([])
        self.from_s, self.step = from_s, step
        self.at: int | None = None

    def played(self, now: float) -> int:
        if now < self.t0 + self.from_s:
            return super().played(now)
        if self.at is None:
            self.at = super().played(self.t0 + self.from_s)
        self.at += self.step
        return self.at


def last_frame_plays_out(peer: LaggingPeer) -> float:
    """Session time at which, on our clock, the last frame of turn 1 has played."""
    sent_at, frame = [(t, f) for t, f in peer.frames if f.turn == 1][-1]
    return sent_at - peer.t0 + len(frame.pcm) / RATE


@pytest.mark.parametrize(("step", "after_s"), [(0, 0.3), (1, 0.3 + MAX_PLAYBACK_LAG_S)])
async def test_a_peer_whose_playback_stops_or_crawls_cannot_hold_the_turn(
    autojump_clock: trio.testing.MockClock, step: int, after_s: float
) -> None:
    """Stopped: its last report that moved on says when it would have ended, and the grace
    runs from there. Crawling (every report moves on a little): followed up to the cap."""
    peer = CrawlingPeer(from_s=10.0, step=step)
    session = await run_long_reply(peer, 0, interrupt_before_end_s=None, settle_s=8.0)
    (done,) = peer.of_type(EventType.TURN_COMPLETED)
    ours = last_frame_plays_out(peer)
    assert ours + after_s - 0.06 <= done.t <= ours + after_s + 1e-6  # (reports every 50 ms)
    heard = done.data["heard_text"]
    assert heard != LONG and LONG.startswith(heard) and done.data["committed_text"] == heard
    assert_turn_truth(peer.events, session.messages)


async def test_speech_over_a_lagging_peers_tail_barges_in(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    """The VAD's barge-in, like the client's: the user talks over the last words the peer is
    still playing, after our own clock (+ the grace) has passed the reply's end."""
    from bargein.actors.policy import InterruptionPolicy
    from bargein.testing.audio import load, silence

    peer = LaggingPeer(HICCUPS)
    speech = load("pocketsphinx_goforward.raw")
    config = SessionConfig(policy=InterruptionPolicy(mode="onset"))
    stt = ScriptedStt(["stop"])
    engines = Engines(stt, ScriptedPlanner([LONG, "Okay."]), ScriptedTts())
    step = RATE // 50
    async with open_session(config, engines, peer) as session:
        peer.session, peer.t0 = session, session.bus.t0
        peer.watch(session)
        async with trio.open_nursery() as reporter:
            reporter.start_soon(peer.report_forever)
            session.push_text("tell me a long story")
            quiet = silence(20)
            while not all_sent(session):
                await trio.sleep(0.02)
                session.push_audio(quiet)
            ours = last_frame_plays_out(peer)
            for at in range(0, len(speech), step):
                await trio.sleep(0.02)
                session.push_audio(speech[at : at + step])
            await trio.sleep(3)
            reporter.cancel_scope.cancel()
    (onset,) = peer.of_type(EventType.SPEECH_STARTED)
    assert ours + 0.3 < onset.t < peer.end() - peer.t0  # past our clock's bound, still playing
    barge = peer.of_type(EventType.BARGE_IN)
    assert [(e.turn, e.data["reason"]) for e in barge] == [(1, "barge_in")]
    assert ("clear", 1) in peer.log and peer.frames_after(barge[0]) == []
    assert [e.turn for e in peer.of_type(EventType.TURN_CANCELLED)] == [1]
    assert_turn_truth(peer.events, session.messages)
