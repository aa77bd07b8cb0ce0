"""Turn-taking as a pure state machine: feed what was heard (with the time), get actions out.

The floor decides when the user's turn has ended (a final transcript with the user silent),
opens assistant turns, and applies the interruption policy when the user talks over one.
Time is passed in by the caller, so the machine runs the same under any clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from bargein.actors.policy import utterance_words
from bargein.decide.side_talk import F32

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
from .floor_core import EPSILON, FloorCore, Overlap

__all__ = [
    "Action",
    "CancelTurn",
    "DuckOutput",
    "EndSession",
    "FloorMachine",
    "FloorState",
    "PauseOutput",
    "RestoreOutput",
    "ResumeOutput",
    "StartTurn",
]


class FloorMachine(FloorCore):
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
        self._rearm = self._rearm_final = None
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
            self._overlap = Overlap(t.id, onset, now, paused=False)
            return self._ask("speech_started", now)
        if self.policy.mode == "onset":
            return self._cancel(CancelTurn(t.id, "barge_in", onset))
        self._overlap = Overlap(t.id, onset, now, paused=False)
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
            if self._overlap is not None and self._overlap.side_pending:
                return self._unless_side_talk(now)
            return self._classified(now, decision)
        if self.policy.judge is not None:
            return self._ask("levels", now)
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
        self._rearm_final, self._rearm = self._rearm, None
        decision = self.audio.utterance_ended(now) if self.audio is not None else None
        if self._overlap is not None:
            self._overlap.stopped_at = now
            if self._classifying and self._overlap.side_pending:
                return self._unless_side_talk(now)  # the whole utterance: settled now
            if self._classifying:
                return self._classified(now, decision)
        return self._ask("speech_stopped", now)

    def transcript(
        self, now: float, text: str, final: bool, our_words: Sequence[str] = ()
    ) -> list[Action]:
        """A partial or final transcript; `our_words` are the active turn's words sent lately
        (the side-talk check takes words of ours coming back for our echo)."""
        text = text.strip()
        if self.audio is not None:
            self.audio.our_words = tuple(our_words)
        o = self._overlap
        if o is not None and self._classifying:
            # Re-opened inside an utterance called false: judged on the words after that call.
            mine = " ".join(utterance_words(text)[o.skip :]) if o.skip else text
            o.text, o.final = mine, final
            o.words = max(o.words, self.policy.content_words(mine))
            decision = self._audio.words(now, mine, final)
            if final:
                o.skip = 0  # the recognizer's next utterance counts its words anew
            if o.side_pending:
                actions = self._unless_side_talk(now)
            else:
                actions = self._classified(now, decision)
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
            o.text = text
            if not final:
                return self._confirm_if_due(now)
            if o.words >= max(1, self.policy.min_words) and not self._side_talk(text):
                actions = self._cancel(CancelTurn(o.turn, "barge_in", o.onset))
                return actions + self._user_text(text)
            return self._false_interruption(now, text)
        if not final:
            return self._rearmed(now, text)
        # The final of an utterance a judge already called false, or, while the reply plays, a
        # later final of the same VAD utterance (pocketsphinx ends utterances of its own inside
        # our echo's long one): the rest of it, not "words for an active turn" (which cancel).
        t = self._turn
        rest = self._rearm is not None or self._rearm_final is not None
        if self._judged_false or (rest and t is not None and not t.cancelled):
            self._judged_false = False
            armed, self._rearm_final = self._rearm or self._rearm_final, None
            if self._rearm is not None:  # the recognizer's next utterance counts words anew
                self._rearm = (0, self._rearm[1], self._rearm[2])
                self._resumed, self._heard = [], (0, now)
            # Words it holds beyond those judged (a recognizer with finals only shows them
            # first here) are judged as a partial's would be (`_rearmed`).
            return self._rearmed(now, text, armed, final=True)
        if self._orphan:
            self._orphan = False
            if self._only_backchannel(text):
                return []
        if (
            t is not None
            and not t.cancelled
            and self.policy.classifier
            and self.policy.judge is None
            and self._only_backchannel(text)
        ):
            return []  # an acknowledgement the VAD did not open an overlap for ("yeah")
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
            # The reply ended while the classifier judged speech over it: that utterance's
            # final is still an acknowledgement of the reply if it is one, not a new request.
            self._orphan = self._classifying
            o = self._overlap
            # Side talk so far: its final is not for us (one held as maybe our echo is).
            if o is not None and o.side_pending and not o.echo_held:
                self._judged_false, self._orphan = not o.final, False
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
            if now >= o.stopped_at + self.policy.resume_timeout_ms / 1000 - EPSILON:
                return self._false_interruption(now, "")
            return []
        return self._confirm_if_due(now)
