"""Turn-taking as a pure state machine: feed what was heard (with the time), get actions out.

The floor decides when the user's turn has ended (a final transcript with the user silent),
opens assistant turns, and applies the interruption policy when the user talks over one.
Time is passed in by the caller, so the machine runs the same under any clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bargein.actors.policy import InterruptionPolicy, OverlapView, Trigger, utterance_words
from bargein.decide.backchannel import Decision, Kind, normalize
from bargein.decide.side_talk import F32

from .overlap_audio import OverlapAudio

# Deadlines are sums of floats; a tick at the deadline must count as reaching it.
_EPSILON = 1e-9


class FloorState(enum.StrEnum):
    LISTENING = "listening"
    USER_SPEAKING = "user_speaking"
    THINKING = "thinking"
    SPEAKING = "speaking"
    PAUSED = "paused"
    DUCKED = "ducked"  # the reply plays on, turned down, while an overlap is judged
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class StartTurn:
    turn: int
    user_text: str


@dataclass(frozen=True, slots=True)
class CancelTurn:
    turn: int
    reason: str  # "barge_in" | "client" | "text_input"
    onset: float | None = None  # session time the interrupting speech began


@dataclass(frozen=True, slots=True)
class PauseOutput:
    turn: int
    onset: float


@dataclass(frozen=True, slots=True)
class ResumeOutput:
    turn: int
    text: str  # what the false interruption turned out to be ('' if nothing was recognised)
    paused_at: float


@dataclass(frozen=True, slots=True)
class DuckOutput:
    turn: int
    onset: float


@dataclass(frozen=True, slots=True)
class RestoreOutput:
    turn: int
    text: str  # what the false interruption turned out to be ('' if nothing was recognised)
    ducked_at: float
    announce: bool = True  # also report the false interruption (False: a ResumeOutput does)


@dataclass(frozen=True, slots=True)
class EndSession:
    reason: str


Action = (
    StartTurn | CancelTurn | PauseOutput | ResumeOutput | DuckOutput | RestoreOutput | EndSession
)


@dataclass(slots=True)
class _Overlap:
    """User speech heard while a turn is active, not yet judged."""

    turn: int
    onset: float
    decided_at: float
    paused: bool
    ducked: bool = False
    words: int = 0
    stopped_at: float | None = None
    text: str = ""  # the latest transcript (for an outside judge)
    final: bool = False


@dataclass(slots=True)
class _Turn:
    id: int
    speaking: bool = False
    audio_since: float | None = None
    cancelled: bool = False


class FloorMachine:
    def __init__(self, policy: InterruptionPolicy, first_turn: int = 1) -> None:
        self.policy = policy
        self.user_speaking = False
        self._voiced = False  # within the user's utterance, is the voice on right now?
        self._next_turn = first_turn  # a resumed conversation continues its numbering
        self._turn: _Turn | None = None
        self._overlap: _Overlap | None = None
        self._pending_text: list[str] = []
        self._input_ended = False
        self._ended = False
        self._now = 0.0  # time of the latest input (an outside judge's view of "now")
        # A judge called an utterance false before its final: that final belongs to it.
        self._judged_false = False
        # The classifier called an overlap false while the VAD still hears the utterance (echo,
        # a TV): (words then, only an interrupt phrase re-opens it). New words in its partials
        # re-open the overlap, so a user talking over our echo or the TV is still heard.
        self._rearm: tuple[int, bool] | None = None
        # Levels, the user's calibrated voice, the classifier and side talk (when they are used).
        self.audio = OverlapAudio(policy) if policy.hears_levels else None

    # -- what the machine exposes ------------------------------------------------------------

    @property
    def state(self) -> FloorState:
        t = self._turn
        if t is not None:
            if t.cancelled:
                return FloorState.INTERRUPTED
            if self._overlap is not None and self._overlap.paused:
                return FloorState.PAUSED
            if self._overlap is not None and self._overlap.ducked:
                return FloorState.DUCKED
            return FloorState.SPEAKING if t.speaking else FloorState.THINKING
        return FloorState.USER_SPEAKING if self.user_speaking else FloorState.LISTENING

    @property
    def active_turn(self) -> int | None:
        return self._turn.id if self._turn is not None else None

    @property
    def idle(self) -> bool:
        return self._turn is None and not self.user_speaking and not self._pending_text

    def next_deadline(self) -> float | None:
        o = self._overlap
        if o is None:
            return None
        if self.policy.judge is not None:
            return self.policy.judge.deadline(self._view("tick", self._now))
        if self._classifying:
            assert self.audio is not None
            return self.audio.deadline()
        if o.stopped_at is not None:
            return o.stopped_at + self.policy.resume_timeout_ms / 1000
        if self._voiced and o.words >= self.policy.min_words:
            return o.onset + self.policy.min_speech_ms / 1000
        return None

    # -- inputs ------------------------------------------------------------------------------

    def speech_started(self, now: float, onset: float) -> list[Action]:
        self.user_speaking = self._voiced = True
        self._rearm = None
        t = self._turn
        if t is None or t.cancelled:
            if self.audio is not None:
                self.audio.utterance_started(now, onset, overlap=False)
            return []
        if self._overlap is not None:  # the same overlap resumed after a short gap
            self._overlap.stopped_at = None
            if self.policy.judge is not None:
                return self._ask("speech_started", now)
            if self._classifying:
                return self._classified(now, self._audio.speech_resumed(now))
            return self._confirm_if_due(now)
        guard = self.policy.echo_guard_ms / 1000
        guarded = guard and t.audio_since is not None and onset - t.audio_since < guard
        decision = None
        if self.audio is not None:
            decision = self.audio.utterance_started(now, onset, overlap=not guarded)
        if guarded:
            return []
        if self.policy.judge is not None:
            self._overlap = _Overlap(t.id, onset, now, paused=False)
            return self._ask("speech_started", now)
        if self.policy.mode == "onset":
            return self._cancel(CancelTurn(t.id, "barge_in", onset))
        self._overlap = _Overlap(t.id, onset, now, paused=False)
        actions = self._hold(now) if t.speaking else []
        if self._classifying:
            return actions + self._classified(now, decision)
        return actions + self._confirm_if_due(now)

    def levels(
        self, now: float, times: list[float], levels: list[float], shapes: list[F32] | None
    ) -> list[Action]:
        """Frames the microphone heard while the VAD heard speech (session times)."""
        if self.audio is None:
            return []
        decision = self.audio.frames(times, levels, shapes)
        if self._classifying:
            return self._classified(now, decision)
        return []

    def voice(self, now: float, active: bool) -> list[Action]:
        """The voice paused or resumed inside an utterance (before the VAD's hang-over ends)."""
        self._voiced = active and self.user_speaking
        if self.policy.judge is not None:
            return self._ask("voice", now)
        if self._classifying:
            return self._classified(now, self._audio.tick(now))
        return self._confirm_if_due(now) if self._voiced else []

    def speech_stopped(self, now: float) -> list[Action]:
        self.user_speaking = self._voiced = False
        self._rearm = None
        decision = self.audio.utterance_ended(now) if self.audio is not None else None
        if self._overlap is not None:
            self._overlap.stopped_at = now
            if self._classifying:
                return self._classified(now, decision)
        return self._ask("speech_stopped", now)

    def transcript(self, now: float, text: str, final: bool) -> list[Action]:
        text = text.strip()
        o = self._overlap
        if o is not None and self._classifying:
            o.text, o.final = text, final
            o.words = max(o.words, self.policy.content_words(text))
            actions = self._classified(now, self._audio.words(now, text, final))
            if final and self._turn is not None and self._turn.cancelled:
                actions += self._user_text(text)
            return actions
        if o is not None and self.policy.judge is not None:
            o.text, o.final, o.words = text, final, self.policy.content_words(text)
            actions = self._ask("transcript", now)
            if final and self._overlap is o:  # after a final, anything but cancel is false
                actions += self._false_interruption(now, text)
            elif final and self._turn is not None and self._turn.cancelled:
                actions += self._user_text(text)
            return actions
        if o is not None:
            o.words = max(o.words, self.policy.content_words(text))
            if not final:
                return self._confirm_if_due(now)
            o.text = text
            if o.words >= max(1, self.policy.min_words) and not self._side_talk(text):
                actions = self._cancel(CancelTurn(o.turn, "barge_in", o.onset))
                return actions + self._user_text(text)
            return self._false_interruption(now, text)
        if not final:
            return self._rearmed(now, text)
        if self._judged_false:  # the final of an utterance a judge already called false
            self._judged_false = False
            return []
        t = self._turn
        if t is not None and not t.cancelled and text:
            # Words arrived for an active turn without an overlap (e.g. the echo guard let the
            # onset pass, or the VAD missed it): the user spoke, so the floor is theirs.
            actions = self._cancel(CancelTurn(t.id, "barge_in", None))
            return actions + self._user_text(text)
        if text and self.audio is not None and t is None:
            self.audio.user_turn()  # the user spoke to us: calibrate on their voice
        return self._user_text(text)

    def text_input(self, now: float, text: str) -> list[Action]:
        actions: list[Action] = []
        t = self._turn
        if t is not None and not t.cancelled:
            actions = self._cancel(CancelTurn(t.id, "text_input", None))
        return actions + self._user_text(text.strip(), force=True)

    def is_stale(self, turn: int | None) -> bool:
        """A client interrupt naming `turn` that is not the current turn (it ended, or never
        began): the client saw an older state, so it must not stop the reply now playing."""
        return turn is not None and turn != self.active_turn

    def interrupt(self, now: float, turn: int | None = None) -> list[Action]:
        t = self._turn
        if t is None or t.cancelled or self.is_stale(turn):
            return []
        return self._cancel(CancelTurn(t.id, "client", None))

    def audio_started(self, now: float, turn: int) -> list[Action]:
        t = self._turn
        if t is not None and t.id == turn and not t.cancelled:
            t.speaking = True
            t.audio_since = now
            if self.policy.judge is not None:
                return self._ask("audio_started", now)
            o = self._overlap
            if o is not None and not (o.paused or o.ducked):
                # Audio began while an overlap was being judged: hold it until judged.
                return self._hold(now)
        return []

    def turn_finished(self, now: float, turn: int) -> list[Action]:
        if self._turn is not None and self._turn.id == turn:
            self._turn = None
            self._end_overlap()
        return self._maybe_start() + self._maybe_end()

    def input_ended(self, now: float) -> list[Action]:
        self._input_ended = True
        self.user_speaking = self._voiced = False
        return self._maybe_start() + self._maybe_end()

    def tick(self, now: float) -> list[Action]:
        o = self._overlap
        if o is None:
            return []
        if self.policy.judge is not None:
            return self._ask("tick", now)
        if self._classifying:
            return self._classified(now, self._audio.tick(now))
        if o.stopped_at is not None:
            if now >= o.stopped_at + self.policy.resume_timeout_ms / 1000 - _EPSILON:
                return self._false_interruption(now, "")
            return []
        return self._confirm_if_due(now)

    # -- internals ---------------------------------------------------------------------------

    def _view(self, trigger: Trigger, now: float) -> OverlapView:
        o, t, a = self._overlap, self._turn, self.audio
        assert o is not None and t is not None
        return OverlapView(
            trigger=trigger,
            now=now,
            turn=o.turn,
            onset=o.onset,
            assistant_audio=t.speaking,
            audio_since=t.audio_since,
            paused=o.paused,
            ducked=o.ducked,
            voiced=self._voiced,
            stopped_at=o.stopped_at,
            text=o.text,
            final=o.final,
            content_words=o.words,
            level_dbfs=a.level_dbfs if a is not None else None,
            utterance_dbfs=a.utterance_dbfs if a is not None else None,
            user_dbfs=a.user_dbfs if a is not None else None,
            relative_db=a.relative_db if a is not None else None,
        )

    def _ask(self, trigger: Trigger, now: float) -> list[Action]:
        """An outside judge's verdict on the open overlap, carried out (nothing without one)."""
        o, judge = self._overlap, self.policy.judge
        if judge is None or o is None or self._turn is None:
            return []
        self._now = now
        verdict = judge.judge(self._view(trigger, now))
        if verdict == "cancel":
            return self._cancel(CancelTurn(o.turn, "barge_in", o.onset))
        if verdict == "resume":
            self._judged_false = not o.final
            return self._false_interruption(now, o.text)
        if verdict in ("pause", "duck"):
            if not self._turn.speaking:
                return []  # before audio starts, the judge is asked again at audio_started
            return self._hold(now, "duck" if verdict == "duck" else "pause")
        if verdict != "wait":
            raise ValueError(
                f"judge returned {verdict!r}; expected wait, pause, duck, cancel or resume"
            )
        return []

    @property
    def _classifying(self) -> bool:
        """The built-in classifier judges the open overlap (no outside judge)."""
        return (
            self.policy.classifier and self.policy.judge is None and self._overlap is not None
        )

    @property
    def _audio(self) -> OverlapAudio:
        assert self.audio is not None
        return self.audio

    def _hold(self, now: float, how: str | None = None) -> list[Action]:
        """Pause or duck the turn's audio for the open overlap (the policy's overlap_action
        unless a judge said which); nothing if it is already held that way."""
        o = self._overlap
        assert o is not None
        if (how or self.policy.overlap_action) == "duck":
            if o.ducked:
                return []
            o.ducked = True
            if self.audio is not None:
                self.audio.ducked(now)
            return [DuckOutput(o.turn, o.onset)]
        if o.paused:
            return []
        o.paused = True
        return [PauseOutput(o.turn, o.onset)]

    def _classified(self, now: float, decision: Decision | None) -> list[Action]:
        """Carry out the classifier's decision on the open overlap, once it has one."""
        o = self._overlap
        if decision is None or decision.kind is Kind.UNDECIDED or o is None:
            return []
        if decision.kind is Kind.INTERRUPTION and not self._side_talk(o.text):
            self._audio.interruption()
            return self._cancel(CancelTurn(o.turn, "barge_in", o.onset))
        self._judged_false = not o.final
        if self.user_speaking and not o.final:
            self._rearm = (len(utterance_words(o.text)), o.words > 0)
        return self._false_interruption(now, o.text)

    def _rearmed(self, now: float, text: str) -> list[Action]:
        """A partial of an utterance already called false: new content words (or, after side
        talk with words, a new interrupt phrase) open a new overlap at once."""
        t, armed, audio = self._turn, self._rearm, self.audio
        if armed is None or t is None or t.cancelled or audio is None:
            return []
        new = " ".join(utterance_words(text)[armed[0] :])
        clf = audio.classifier
        if clf is None or not new:
            return []
        phrase, content = clf.lexicon.scan(normalize(new))
        if phrase is None and (armed[1] or not content):
            return []
        self._rearm, self._judged_false = None, False
        audio.utterance_started(now, now, overlap=True)
        self._overlap = _Overlap(t.id, now, now, paused=False, text=new)
        actions = self._hold(now) if t.speaking else []
        return actions + self._classified(now, audio.words(now, new, False))

    def _side_talk(self, text: str) -> bool:
        """Would-be cancel of speech that is not addressed to us (policy `side_talk`)?"""
        if not self.policy.side_talk or self.audio is None:
            return False
        return self.audio.side_talk(text).side_talk

    def _confirm_if_due(self, now: float) -> list[Action]:
        o = self._overlap
        if o is None or o.stopped_at is not None or not self._voiced:
            return []
        long_enough = now - o.onset >= self.policy.min_speech_ms / 1000 - _EPSILON
        if long_enough and o.words >= self.policy.min_words:
            if self._side_talk(o.text):
                self._judged_false = True
                return self._false_interruption(now, o.text)
            return self._cancel(CancelTurn(o.turn, "barge_in", o.onset))
        return []

    def _false_interruption(self, now: float, text: str) -> list[Action]:
        o = self._overlap
        assert o is not None
        self._end_overlap()
        actions: list[Action] = []
        if o.ducked:
            actions.append(RestoreOutput(o.turn, text, o.decided_at, announce=not o.paused))
        if o.paused:
            actions.append(ResumeOutput(o.turn, text, o.decided_at))
        if actions and self._turn is not None:
            self._turn.audio_since = now  # resumed audio can echo too
        return actions

    def _end_overlap(self) -> None:
        self._overlap = None
        if self.audio is not None:
            self.audio.overlap_ended()

    def _cancel(self, action: CancelTurn) -> list[Action]:
        assert self._turn is not None
        self._turn.cancelled = True
        self._end_overlap()
        return [action]

    def _user_text(self, text: str, *, force: bool = False) -> list[Action]:
        if text:
            self._pending_text.append(text)
        if force or not self.user_speaking:
            return self._maybe_start()
        return []

    def _maybe_start(self) -> list[Action]:
        # A cancelled turn still winding down does not block the next one: the turn runner
        # waits for its predecessor before touching the history.
        if not self._pending_text or (self._turn is not None and not self._turn.cancelled):
            return []
        text = " ".join(self._pending_text)
        self._pending_text.clear()
        self._turn = _Turn(self._next_turn)
        self._next_turn += 1
        return [StartTurn(self._turn.id, text)]

    def _maybe_end(self) -> list[Action]:
        if self._input_ended and self.idle and not self._ended:
            self._ended = True
            return [EndSession("input_ended")]
        return []
