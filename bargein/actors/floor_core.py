"""The floor machine's state and the steps its inputs share (pure): the open overlap and turn,
carrying out the policy's decisions (pause or duck, cancel, false interruption), asking an
outside judge, and the built-in classifier with side talk. `FloorMachine` (floor_machine.py)
adds the inputs; this is its base, split off to keep each module small."""

from __future__ import annotations

from dataclasses import dataclass

from bargein.actors.policy import InterruptionPolicy, OverlapView, Trigger, utterance_words
from bargein.decide.addressed import form_within
from bargein.decide.backchannel import Decision, Kind, normalize
from bargein.decide.side_talk import SideTalkVerdict, may_be_ours

from .floor_actions import (
    Action,
    CancelTurn,
    DuckOutput,
    EndSession,
    FloorState,
    PauseOutput,
    RestoreOutput,
    ResumeOutput,
    StartTurn,
)
from .overlap_audio import OverlapAudio

# Deadlines are sums of floats; a tick at the deadline must count as reaching it.
EPSILON = 1e-9
# After an utterance was called false, an addressed form re-opens it only where its new words
# begin, or where words resume after the recognizer's hypothesis stopped growing this long (a
# pause the VAD would have ended the utterance for, were our echo not holding it open): not
# inside a stream of words, where pocketsphinx's transcript of our echo makes forms ("… they
# are you", `--engines embedded`, heldout_f's hf_reader_phone_echo).
RESUME_GAP_S = 1.0
# An overlap re-opened on such words alone waits this long at most for what tells our echo's
# transcript from the user's (the duck's effect, word pairs): a lone "hey" is not held for good.
WORDS_WAIT_S = 1.0


@dataclass(slots=True)
class Overlap:
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
    # The classifier called it an interruption and side talk said not addressed, provisionally
    # (near the level margin on too little audio): judged again on later frames, words, stop.
    side_pending: bool = False
    # Re-opened inside an utterance already called false: the words of the recognizer's
    # utterance judged before it; its partials and final are judged without them.
    skip: int = 0
    # Re-opened on content words alone (after a pause): not cancelled while it may still be
    # our echo (`FloorCore._may_be_echo`, up to `WORDS_WAIT_S`); `echo_held`: held for that
    # now (not as side talk: a reply ending meanwhile leaves its final a request).
    words_only: bool = False
    echo_held: bool = False


@dataclass(slots=True)
class Turn:
    id: int
    speaking: bool = False
    audio_since: float | None = None
    cancelled: bool = False


class FloorCore:
    def __init__(self, policy: InterruptionPolicy, first_turn: int = 1) -> None:
        self.policy = policy
        self.user_speaking = False
        self._voiced = False  # within the user's utterance, is the voice on right now?
        self._next_turn = first_turn  # a resumed conversation continues its numbering
        self._turn: Turn | None = None
        self._overlap: Overlap | None = None
        self._pending_text: list[str] = []
        self._input_ended = False
        self._ended = False
        self._now = 0.0  # time of the latest input (an outside judge's view of "now")
        # A judge called an utterance false before its final: that final belongs to it.
        self._judged_false = False
        # The classifier called an overlap false while the VAD still hears the utterance (echo,
        # a TV): (words then, only an interrupt phrase re-opens it). New words in its partials
        # re-open the overlap, so a user talking over our echo or the TV is still heard.
        self._rearm: tuple[int, bool, float] | None = None  # (..., when it was called false)
        # Since that call: the word indices where words resumed after `RESUME_GAP_S`, and the
        # latest partial's word count with when it last grew.
        self._resumed: list[int] = []
        self._heard: tuple[int, float] = (0, 0.0)
        # The same, kept from the VAD's stop until that utterance's final: with finals only (no
        # partials), the final is the first the floor hears of words said after the call.
        self._rearm_final: tuple[int, bool, float] | None = None
        self._orphan = False  # the overlap being classified lost its turn (the reply ended)
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
        return self.policy.classifier and self.policy.judge is None and self._overlap is not None

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
        if decision.kind is Kind.INTERRUPTION:
            return self._unless_side_talk(now)
        return self._called_false(now)

    def _unless_side_talk(self, now: float) -> list[Action]:
        """The classifier's interruption: cancel unless it is side talk; a provisional side
        talk verdict keeps the reply held and the overlap open (`Overlap.side_pending`)."""
        o = self._overlap
        assert o is not None
        verdict = None
        if self.policy.side_talk and self.audio is not None:
            verdict = self.audio.side_talk(
                o.text, going=self.user_speaking and not o.final, final=o.final
            )
        if verdict is None or not verdict.side_talk:
            if self._may_be_echo(o, verdict, now):
                # held, judged again on its next frames, words or stop
                o.side_pending = o.echo_held = True
                return []
            self._audio.interruption()
            return self._cancel(CancelTurn(o.turn, "barge_in", o.onset))
        o.echo_held = False
        o.side_pending = not verdict.settled
        return [] if o.side_pending else self._called_false(now)

    def _may_be_echo(self, o: Overlap, verdict: SideTalkVerdict | None, now: float) -> bool:
        """An overlap re-opened on content words alone (`Overlap.words_only`) that may still be
        a recognizer's transcript of our echo, for up to `WORDS_WAIT_S`: the duck's effect on
        it is not measured yet (side talk's rule 2), or its words may yet be a run of ours
        (rule 3). Words that address us (a phrase, a form) are not held."""
        if (not o.words_only or o.final or not self.user_speaking
                or now - o.onset >= WORDS_WAIT_S - EPSILON
                or (verdict is not None and verdict.addressed)):
            return False
        unmeasured = o.ducked and verdict is not None and verdict.drop_db is None
        return unmeasured or may_be_ours(normalize(o.text), self._audio.our_words)

    def _called_false(self, now: float) -> list[Action]:
        o = self._overlap
        assert o is not None
        self._judged_false = not o.final
        if self.user_speaking:  # after a final, the recognizer's next utterance counts anew
            judged = 0 if o.final else o.skip + len(utterance_words(o.text))
            self._rearm = (judged, o.words > 0, now)
            self._resumed, self._heard = [], (judged, now)
        return self._false_interruption(now, o.text)

    def _rearmed(
        self,
        now: float,
        text: str,
        armed: tuple[int, bool, float] | None = None,
        final: bool = False,
    ) -> list[Action]:
        """A partial (or, `final`, the final) of an utterance already called false: a new
        interrupt phrase or addressed form (`addressed.form_within`: "could you go back …"),
        or after a wordless call new content words, open a new overlap at once, judged on the
        new words only (`Overlap.skip`). Its speech began before the partial that shows its
        words (a recognizer's first hypothesis of a word comes 200-340 ms after the word
        starts, docs/research.md): the classifier dates it `early_content_ms` back (not before
        the false call) and has the frames heard since, so content at the user's level is not
        made to wait that long again. A final re-opens only on a new interrupt phrase or
        addressed form, and is judged at once (the classifier decides on a final); its words
        are the user's next request once it cancels, or when the reply ended since the call."""
        t, audio = self._turn, self.audio
        armed = self._rearm if armed is None else armed
        if armed is None or audio is None or (t is not None and t.cancelled):
            return []
        words = utterance_words(text)
        if armed is self._rearm and not final:
            last, grew = self._heard
            if len(words) > last:
                if now - grew >= RESUME_GAP_S - EPSILON:
                    self._resumed.append(last)
                self._heard = (len(words), now)
            else:
                self._heard = (len(words), grew)
        new = " ".join(words[armed[0] :])
        clf = audio.classifier
        if clf is None or not new or (t is None and not final):
            return []
        tokens = normalize(new)
        phrase, content = clf.lexicon.scan(tokens)
        skip, only = armed[0], False
        if phrase is None and skip > 0:
            # A phrase the call cut in two ("hang" called quiet side talk, then "on can you
            # repeat": heldout_l) re-opens from its first word, judged with it.
            joined = normalize(" ".join(words[skip - 1 :]))
            split = clf.lexicon.scan(joined)
            if split[0] is not None and clf.lexicon.scan(joined[:1])[0] is None:
                skip -= 1
                tokens, (phrase, content) = joined, split
                new = " ".join(words[skip:])
        # Content words alone do not re-open after side talk with words (it goes on), nor in a
        # final: with the VAD held open by our echo, a real recognizer ends utterances of its
        # own, and its finals of our echo are content words (pocketsphinx: "then it rude or if
        # you at all rooted out ..."; docs/turn_detection.md). A form addressing the assistant
        # does; a run of our own words is not one, and side talk's rules 2-3 (our echo, our
        # words) still judge the new words.
        if phrase is None and (armed[1] or not content or final):
            resumed = [i - armed[0] for i in self._resumed if i >= armed[0]]
            at = form_within(tokens, normalize(" ".join(audio.our_words)), [0, *resumed])
            if at is None and armed[1] and not final:
                # Content words after a pause the VAD would have ended the utterance for (our
                # echo held it open): a new utterance, judged anew and held while it may still
                # be our echo (`_may_be_echo`; "i need six eggs" 3 s after side talk: heldout_l).
                at = next((s for s in resumed if clf.lexicon.scan(tokens[s:])[1]), None)
                only = at is not None
            if at is None:
                return []
            skip += at  # judged from the form on: the talk called false may have gone on
            new = " ".join(words[skip:])
        self._rearm, self._judged_false = None, False
        if t is None:  # the reply ended while the utterance went on: words for us
            return self._user_text(text)
        began = max(armed[2], now - clf.config.early_content_ms / 1000)
        audio.utterance_started(now, began, overlap=True, keep_since=began)
        self._overlap = Overlap(
            t.id,
            now,
            now,
            paused=False,
            text=new,
            final=final,
            words=self.policy.content_words(new),
            skip=skip,
            words_only=only,
        )
        actions = self._hold(now) if t.speaking else []
        actions += self._classified(now, audio.words(now, new, final))
        if final and t.cancelled:  # the user spoke: as a partial's overlap's final would be
            actions += self._user_text(text)
        return actions

    def _only_backchannel(self, text: str) -> bool:
        """By the classifier's lexicon: nothing but backchannel words (or nothing at all)."""
        clf = self.audio.classifier if self.audio is not None else None
        if clf is None:
            return False
        phrase, content = clf.lexicon.scan(normalize(text))
        return phrase is None and content == 0

    def _side_talk(self, text: str) -> bool:
        """Would-be cancel of speech that is not addressed to us (policy `side_talk`)?"""
        if not self.policy.side_talk or self.audio is None:
            return False
        return self.audio.side_talk(text).side_talk

    def _confirm_if_due(self, now: float) -> list[Action]:
        o = self._overlap
        if o is None or o.stopped_at is not None or not self._voiced:
            return []
        long_enough = now - o.onset >= self.policy.min_speech_ms / 1000 - EPSILON
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
        self._turn = Turn(self._next_turn)
        self._next_turn += 1
        return [StartTurn(self._turn.id, text)]

    def _maybe_end(self) -> list[Action]:
        if self._input_ended and self.idle and not self._ended:
            self._ended = True
            return [EndSession("input_ended")]
        return []
