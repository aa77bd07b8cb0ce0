"""The floor: the turn supervisor. A thin trio loop around `FloorMachine` that carries out its
actions — opening turns in their own cancel scopes, cancelling them, pausing or ducking egress —
and hands it the microphone's frame levels (`VoiceLevels`) when the policy listens to them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import trio

from bargein.engines.base import PlannerEngine, TtsEngine
from bargein.runtime.bus import EventBus
from bargein.runtime.events import EventType
from bargein.runtime.history import History
from bargein.runtime.messages import (
    SpeechStarted,
    SpeechStopped,
    Transcript,
    VoiceActivity,
    VoiceLevels,
)

from .egress import AudioStarted, Egress
from .floor_machine import (
    Action,
    CancelTurn,
    DuckOutput,
    EndSession,
    FloorMachine,
    PauseOutput,
    RestoreOutput,
    ResumeOutput,
    StartTurn,
)
from .policy import InterruptionPolicy
from .turn import TurnFinished, TurnHandle, TurnSettings, run_turn

# How far back the assistant's own words are compared with what the microphone hears (the
# side-talk check's "our own words" cue): the echo path plus the recognizer's lag.
ECHO_WORDS_S = 4.0


@dataclass(frozen=True, slots=True)
class TextInput:
    text: str


@dataclass(frozen=True, slots=True)
class ClientInterrupt:
    turn: int | None = None  # None: whatever is playing or being generated now


@dataclass(frozen=True, slots=True)
class InputEnded:
    pass


FloorInput = (
    SpeechStarted
    | SpeechStopped
    | VoiceActivity
    | VoiceLevels
    | Transcript
    | TextInput
    | ClientInterrupt
    | InputEnded
    | AudioStarted
    | TurnFinished
)


class Floor:
    def __init__(
        self,
        policy: InterruptionPolicy,
        *,
        inbox: trio.MemoryReceiveChannel[FloorInput],
        finished: trio.MemorySendChannel[TurnFinished],
        bus: EventBus,
        egress: Egress,
        history: History,
        planner: PlannerEngine,
        tts: TtsEngine,
        settings: TurnSettings,
        end_session: Callable[[str], None],
        first_turn: int = 1,
    ) -> None:
        self.machine = FloorMachine(policy, first_turn)
        self._inbox = inbox
        self._finished = finished
        self._bus = bus
        self._egress = egress
        self._history = history
        self._planner = planner
        self._tts = tts
        self._settings = settings
        self._end_session = end_session
        self._turns: dict[int, TurnHandle] = {}
        self._last: TurnHandle | None = None
        # Client interrupts naming a turn that is not the current one (no-ops), and barge-ins
        # decided after the turn's audio had already played whole (the turn stays completed).
        self.interrupts_stale = 0
        self.interrupts_late = 0

    def interrupt_is_stale(self, turn: int | None) -> bool:
        """Check (and count) a client interrupt against the turn the floor has now."""
        if self.machine.is_stale(turn):
            self.interrupts_stale += 1
            return True
        return False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as turns:
            task_status.started()
            async with self._inbox:
                while await self._step(turns):
                    pass

    async def _step(self, turns: trio.Nursery) -> bool:
        """Handle one input, or the machine's next deadline; False once the inbox has ended."""
        deadline = self.machine.next_deadline()
        if deadline is None:  # nothing timed: no cancel scope per message (most messages)
            return await self._next_input(turns)
        with trio.move_on_at(self._bus.t0 + deadline):
            return await self._next_input(turns)
        self._apply(turns, self.machine.tick(self._bus.now()))
        return True

    async def _next_input(self, turns: trio.Nursery) -> bool:
        try:
            message = await self._inbox.receive()
        except trio.EndOfChannel:
            return False
        self._apply(turns, self._feed(message))
        return True

    def _feed(self, message: FloorInput) -> list[Action]:
        m, now = self.machine, self._bus.now()
        match message:
            case SpeechStarted(onset=onset, at=at):
                # Onset is media time; place it on the session clock relative to the decision.
                return m.speech_started(now, now - (at - onset))
            case SpeechStopped():
                return m.speech_stopped(now)
            case VoiceActivity(active=active):
                return m.voice(now, active)
            case VoiceLevels(levels=levels, at=at, shapes=shapes):
                # Media times of the frames' ends, placed on the session clock as an onset is.
                times = [now - (at - end) for end in message.frame_ends()]
                rows = None if shapes is None else list(shapes)
                return m.levels(now, times, list(levels), rows)
            case Transcript(text=text, final=final):
                turn = m.active_turn
                ours: tuple[str, ...] = ()
                if turn is not None and m.policy.side_talk:
                    ours = self._egress.recent_words(turn, ECHO_WORDS_S)
                return m.transcript(now, text, final, ours)
            case TextInput(text=text):
                return m.text_input(now, text)
            case ClientInterrupt(turn=turn):
                # The turn may have moved on while the message was queued.
                return [] if self.interrupt_is_stale(turn) else m.interrupt(now, turn)
            case InputEnded():
                return m.input_ended(now)
            case AudioStarted(turn=turn):
                return m.audio_started(now, turn)
            case TurnFinished(turn=turn):
                self._turns.pop(turn, None)
                return m.turn_finished(now, turn)
        raise TypeError(f"floor cannot handle {message!r}")

    def _apply(self, turns: trio.Nursery, actions: list[Action]) -> None:
        bus = self._bus
        for action in actions:
            match action:
                case StartTurn(turn=turn, user_text=text):
                    handle = TurnHandle(turn, trio.CancelScope(), trio.Event())
                    previous = self._last if self._last and not self._last.done.is_set() else None
                    self._turns[turn] = self._last = handle
                    bus.emit(EventType.TURN_STARTED, turn, user_text=text)
                    turns.start_soon(
                        partial(
                            run_turn,
                            handle,
                            text,
                            previous,
                            planner=self._planner,
                            tts=self._tts,
                            egress=self._egress,
                            history=self._history,
                            bus=bus,
                            settings=self._settings,
                            finished=self._finished,
                        )
                    )
                case CancelTurn(turn=turn, reason=reason, onset=onset):
                    handle = self._turns[turn]
                    # Egress first: not one more frame of this turn reaches the transport.
                    if not self._egress.interrupt(turn):
                        # Its audio already played whole and the turn is settling as completed
                        # (TurnFinished is on its way): nothing to stop, so no barge-in.
                        self.interrupts_late += 1
                        continue
                    handle.reason = reason
                    data: dict[str, object] = {"reason": reason}
                    if onset is not None:
                        data["onset"] = round(onset, 6)
                        data["detection_ms"] = round(1000 * (bus.now() - onset), 3)
                    data["sent_ms"] = round(self._egress.sent_ms(turn), 3)
                    bus.emit(EventType.BARGE_IN, turn, **data)
                    handle.scope.cancel()
                case PauseOutput(turn=turn, onset=onset):
                    self._egress.pause(turn)
                    bus.emit(
                        EventType.OUTPUT_PAUSED,
                        turn,
                        onset=round(onset, 6),
                        sent_ms=round(self._egress.sent_ms(turn), 3),
                    )
                case ResumeOutput(turn=turn, text=text, paused_at=paused_at):
                    self._egress.resume(turn)
                    bus.emit(
                        EventType.FALSE_INTERRUPTION,
                        turn,
                        text=text,
                        paused_ms=round(1000 * (bus.now() - paused_at), 3),
                    )
                    bus.emit(EventType.OUTPUT_RESUMED, turn)
                case DuckOutput(turn=turn, onset=onset):
                    self._egress.duck(turn)
                    bus.emit(
                        EventType.OUTPUT_DUCKED,
                        turn,
                        onset=round(onset, 6),
                        depth_db=self._egress.duck_db,
                        sent_ms=round(self._egress.sent_ms(turn), 3),
                    )
                case RestoreOutput(turn=turn, text=text, ducked_at=ducked_at, announce=announce):
                    self._egress.restore(turn)
                    ducked_ms = round(1000 * (bus.now() - ducked_at), 3)
                    if announce:
                        bus.emit(
                            EventType.FALSE_INTERRUPTION,
                            turn,
                            text=text,
                            paused_ms=0.0,
                            ducked_ms=ducked_ms,
                        )
                    bus.emit(
                        EventType.OUTPUT_RESTORED,
                        turn,
                        ducked_at=round(ducked_at, 6),
                        text=text,
                        ducked_ms=ducked_ms,
                    )
                case EndSession(reason=reason):
                    self._end_session(reason)
