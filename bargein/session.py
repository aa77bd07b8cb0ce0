"""A voice session: one trio nursery of actors, wired mic → vad → stt → floor → (turn) → egress.

This is the composition root for a session; `open_session` is the public entry for embedding:

    async with bargein.open_session(config, engines, transport) as session:
        session.push_audio(pcm)          # from your transport's reader, never blocks
        await session.wait_ended()
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import numpy as np
import trio

from bargein.actors.echo_path import EchoStage, session_echo_stage
from bargein.actors.egress import Egress
from bargein.actors.floor import ClientInterrupt, Floor, FloorInput, TextInput
from bargein.actors.level_tap import LevelTap
from bargein.actors.mic import run_mic
from bargein.actors.stt import run_stt
from bargein.actors.stt_inbox import SttInbox
from bargein.actors.turn import TurnSettings
from bargein.actors.vad import END_OF_INPUT, MicInput
from bargein.dsp import warm_up, warm_up_echo
from bargein.engines.base import Engines
from bargein.runtime.broadcast import DropOldestQueue, Subscription
from bargein.runtime.bus import EventBus, EventHub
from bargein.runtime.compute import set_compute_mode
from bargein.runtime.events import Event, EventType
from bargein.runtime.history import ChatMessage, History
from bargein.runtime.messages import Int16Array
from bargein.runtime.trace import TraceWriter
from bargein.runtime.transport import Transport
from bargein.session_config import SessionConfig as SessionConfig


class Session:
    """Handle to a running session. The `push_*` methods are synchronous and never block."""

    def __init__(
        self, config: SessionConfig, engines: Engines, transport: Transport, hub: EventHub | None
    ) -> None:
        self.config = config
        self.id = config.session_id or uuid.uuid4().hex[:12]
        self.bus = EventBus(self.id, trio.current_time(), hub, first_seq=config.first_seq)
        # Bounded, so a session held for hours does not grow: twice the planner budget keeps
        # every window as it would be, and (at the default 24 000) all the heard history a
        # resumed `session.started` can carry (48 000 characters).
        keep = None if config.history_chars is None else 2 * config.history_chars
        self.history = History(config.system_prompt, config.history, keep_chars=keep)
        self.rejections: Counter[str] = Counter()
        self.end_reason: str | None = None
        self._engines = engines
        self._transport = transport
        self._ingress: DropOldestQueue[MicInput] = DropOldestQueue(config.ingress_chunks)
        self._floor_send, self._floor_recv = trio.open_memory_channel[FloorInput](1024)
        self._scope = trio.CancelScope()
        self._ended = trio.Event()
        self._closing = trio.Event()  # close() was called: the session is on its way out
        self._last_drop_report = -1.0
        self._last_limit_report = -1.0
        self._burst = config.input_rate * config.ingress_burst_ms / 1000
        self._allowance = self._burst  # samples the client may still push ahead of real time
        self._allowance_at = trio.current_time()
        self._events: Subscription[Event] | None = None
        self._trace = TraceWriter(config.trace_path) if config.trace_path else None
        if self._trace is not None:
            self.bus.add_listener(self._trace)
        out_frame = config.output_rate * config.output_frame_ms // 1000
        # The echo canceller's reference: egress writes what it played, the mic reads it.
        self.echo: EchoStage | None = (
            session_echo_stage(
                input_rate=config.input_rate,
                output_rate=config.output_rate,
                frame_ms=config.frame_ms,
                origin=self.bus.t0,
            )
            if config.echo_cancel
            else None
        )
        self.egress = Egress(
            transport,
            self.bus,
            rate=config.output_rate,
            lead_ms=config.egress_lead_ms,
            grace_ms=config.playback_grace_ms,
            buffer_frames=config.tts_buffer_ms // config.output_frame_ms,
            on_audio_started=self._floor_send.clone(),
            on_played=self.echo.reference.write if self.echo is not None else None,
            duck_db=config.policy.duck_db,
            duck_ramp_ms=config.policy.duck_ramp_ms,
        )
        self.floor = Floor(
            config.policy,
            inbox=self._floor_recv,
            finished=self._floor_send.clone(),
            bus=self.bus,
            egress=self.egress,
            history=self.history,
            planner=engines.planner,
            tts=engines.tts,
            settings=TurnSettings(
                out_rate=config.output_rate,
                frame_samples=out_frame,
                quiet_flush_s=config.quiet_flush_ms / 1000,
                history_commit=config.policy.history_commit,
                history_chars=config.history_chars,
                deadline_s=None
                if config.turn_deadline_ms is None
                else config.turn_deadline_ms / 1000,
                fallback_text=config.fallback_text.strip(),
            ),
            end_session=self.close,
            first_turn=config.first_turn,
        )

    # -- inbound, from the transport ---------------------------------------------------------

    def push_audio(self, pcm: Int16Array) -> bool:
        """Queue a chunk of PCM16 at `config.input_rate`. False if the session no longer takes
        audio. An overflowing queue drops its oldest chunk; drops are counted and reported."""
        if self._ingress.closed:
            return False
        if pcm.dtype != _INT16 or pcm.ndim != 1:
            raise TypeError("push_audio takes a 1-D int16 array")
        if not self._within_rate(len(pcm)):
            return True
        if not self._ingress.put_nowait(pcm):
            now = self.bus.now()
            if now - self._last_drop_report >= 1.0:  # at most one report per second
                self._last_drop_report = now
                self.bus.emit(EventType.INPUT_DROPPED, dropped_total=self._ingress.dropped)
        return True

    def _within_rate(self, samples: int) -> bool:
        """Token bucket: real time refills the allowance, up to the burst. A chunk beyond it is
        refused, counted as `rate_limited` and reported at most once per second."""
        now = trio.current_time()
        rate = self.config.input_rate
        self._allowance = min(self._burst, self._allowance + (now - self._allowance_at) * rate)
        self._allowance_at = now
        if samples <= self._allowance:
            self._allowance -= samples
            return True
        self.rejections["rate_limited"] += 1
        if now - self._last_limit_report >= 1.0:
            self._last_limit_report = now
            self.bus.emit(
                EventType.INPUT_REJECTED,
                code="rate_limited",
                detail="audio arrives faster than real time",
                count=self.rejections["rate_limited"],
            )
        return False

    def push_text(self, text: str) -> bool:
        """Typed user input: a complete user turn (it interrupts a reply in progress)."""
        return self._to_floor(TextInput(text))

    def interrupt(self, turn: int | None = None) -> bool:
        """The client asks the assistant to stop (e.g. a button). `turn` None stops whatever is
        playing or being generated now; a `turn` that is not the current one is a no-op (the
        client saw an older turn), counted in `stats()["interrupts_stale"]`; False then."""
        if self.floor.interrupt_is_stale(turn):
            return False
        return self._to_floor(ClientInterrupt(turn))

    def report_playback(self, turn: int, played_samples: int) -> bool:
        """The peer has played `played_samples` of `turn`'s audio: the truth of what was heard."""
        return self.egress.report_playback(turn, played_samples)

    def end_input(self) -> None:
        """No more audio: the session finishes what was said, answers, then ends."""
        if not self._ingress.closed:
            self._ingress.put_nowait(END_OF_INPUT)
            self._ingress.close()

    def reject(self, code: str, detail: str = "") -> None:
        """Count and report input from outside that was refused (the transport decides what)."""
        self.rejections[code] += 1
        self.bus.emit(
            EventType.INPUT_REJECTED, code=code, detail=detail, count=self.rejections[code]
        )

    def _to_floor(self, message: FloorInput) -> bool:
        if self._ended.is_set():
            return False
        try:
            self._floor_send.send_nowait(message)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self.reject("floor_busy", type(message).__name__)
            return False
        return True

    # -- outbound ----------------------------------------------------------------------------

    def subscribe(self, capacity: int = 1024) -> Subscription[Event]:
        """This session's events from now on (a slow reader loses the oldest, counted)."""
        return self.bus.subscribe(capacity)

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    @property
    def messages(self) -> tuple[ChatMessage, ...]:
        return self.history.messages()

    def stats(self) -> dict[str, Any]:
        return {
            "ingress_dropped": self._ingress.dropped,
            "rejected": dict(self.rejections),
            "frames_sent": self.egress.frames_sent,
            "frames_dropped": self.egress.frames_dropped,
            "clears": self.egress.clears,
            "interrupts_stale": self.floor.interrupts_stale,
            "interrupts_late": self.floor.interrupts_late,
            "events_dropped": self._events.dropped if self._events is not None else 0,
            "events": dict(self.bus.counts),
            **({"echo": dataclasses.asdict(self.echo.stats())} if self.echo is not None else {}),
        }

    # -- lifetime ----------------------------------------------------------------------------

    def close(self, reason: str = "closed") -> None:
        if self.end_reason is None:
            self.end_reason = reason
        self._closing.set()
        self._scope.cancel()

    async def wait_closing(self) -> None:
        """Until `close` was called (by the session itself, e.g. when its input has ended and
        it is idle, or by its owner); `wait_ended` then waits for its bounded shutdown."""
        await self._closing.wait()

    async def wait_ended(self) -> str:
        await self._ended.wait()
        return self.end_reason or "closed"

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        set_compute_mode(self.config.compute)  # inherited by every actor and turn task
        cfg, engines = self.config, self._engines
        # Batches of `stt_batch_ms` of frames (and speech events): about 6 s of audio.
        batch_frames = max(1, cfg.stt_batch_ms // cfg.frame_ms)
        # STT takes most of it in the shared step, without a task step (`actors.stt_inbox`).
        to_stt = SttInbox(max(16, 300 // batch_frames))
        events = self._events = self.bus.subscribe(4096)
        try:
            with self._scope:
                async with trio.open_nursery() as actors:
                    if self._trace is not None:
                        await actors.start(self._guard, "trace", self._trace.run)
                    await actors.start(self._guard, "egress", self.egress.run)
                    await actors.start(self._guard, "floor", self.floor.run)
                    await actors.start(
                        self._guard,
                        "stt",
                        partial(
                            run_stt,
                            engines.stt,
                            to_stt,
                            self._floor_send.clone(),
                            self.bus,
                            preroll_ms=cfg.stt_preroll_ms,
                            batch_ms=cfg.stt_batch_ms,
                        ),
                    )
                    await actors.start(
                        self._guard,
                        "mic",
                        partial(
                            run_mic,
                            self._ingress,
                            cfg.vad,
                            to_stt,
                            self._floor_send.clone(),
                            self.bus,
                            input_rate=cfg.input_rate,
                            frame_ms=cfg.frame_ms,
                            batch_frames=batch_frames,
                            assistant_active=lambda: self.floor.machine.active_turn is not None,
                            echo=self.echo,
                            levels=LevelTap(shapes=cfg.policy.side_talk,
                                            voice=cfg.policy.side_talk_voice,
                                            speaker=cfg.policy.side_talk_speaker)
                            if cfg.policy.hears_levels
                            else None,
                        ),
                    )
                    actors.start_soon(self._guard, "events", partial(self._forward_events, events))
                    self.bus.emit(
                        EventType.SESSION_STARTED,
                        input_rate=cfg.input_rate,
                        output_rate=cfg.output_rate,
                        policy=cfg.policy.mode,
                        preset=cfg.preset,
                        stt=engines.stt.name,
                        planner=engines.planner.name,
                        tts=engines.tts.name,
                    )
                    task_status.started()
        finally:
            self._closing.set()  # also when it ended by itself (an actor's error)
            self._ingress.close()
            self.end_reason = self.end_reason or "closed"
            self.bus.emit(EventType.SESSION_ENDED, reason=self.end_reason, **self.stats())
            events.close()
            # The peer still gets what happened last (an error, the end), within a bound.
            with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                try:
                    await self._forward_events(events)
                except Exception:  # the peer is gone; the trace still has everything
                    pass
            if self._trace is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(_TRACE_CLOSE_S):
                    await self._trace.aclose()
            self.bus.close()
            self._ended.set()

    async def _guard(
        self,
        name: str,
        actor: Callable[..., Awaitable[None]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """An actor that raises ends its session with an error event, never the process."""
        try:
            await actor(task_status=task_status)
        except Exception as exc:
            self.bus.error(name, exc, fatal=True)
            self.close("error")
            try:
                task_status.started()  # it failed while starting: let `nursery.start` return
            except RuntimeError:
                pass

    async def _forward_events(
        self,
        events: Subscription[Event],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        send = self._transport.send_event
        async for event in events:
            await send(event)
            # That write was this step's schedule point: what queued meanwhile (a turn's
            # events come in bursts) goes out now, not one task step per event.
            while True:
                try:
                    event = events.get_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                await send(event)


_INT16 = np.dtype(np.int16)  # (compared per 20 ms chunk: cheaper than the scalar type)
# Bound on writing the rest of the trace at close (a worker thread; normally milliseconds).
_TRACE_CLOSE_S = 5.0

_dsp_warm = False
_echo_warm = False


def _warm_dsp() -> None:
    """Compile/load the DSP kernels once per process. Servers call this at start-up; if they did
    not, the first session pays it here rather than inside its first audio frame."""
    global _dsp_warm
    warm_up()
    _dsp_warm = True


@asynccontextmanager
async def open_session(
    config: SessionConfig,
    engines: Engines,
    transport: Transport,
    *,
    hub: EventHub | None = None,
) -> AsyncIterator[Session]:
    """Start a session's actors; on exit, close it and wait until every task is gone."""
    if not _dsp_warm:
        _warm_dsp()
    global _echo_warm
    if config.echo_cancel and not _echo_warm:
        warm_up_echo()  # the canceller's kernels, only for sessions that use them
        _echo_warm = True
    session = Session(config, engines, transport, hub)
    async with trio.open_nursery() as nursery:
        await nursery.start(session._run)
        try:
            yield session
        finally:
            session.close()
