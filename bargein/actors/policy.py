"""How the floor treats user speech that overlaps the assistant: configuration, the backchannel
lexicon, and the Protocol an outside overlap judge implements. No state, no I/O."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

# Whole short utterances that acknowledge without taking the floor. Entries may be phrases
# ("i see"); "i" or "see" alone are not backchannels, so "Right, I was thinking" is 4 words.
BACKCHANNELS = frozenset(
    {
        "mm", "mhm", "mmhmm", "mmhm", "hmm", "hm", "uh huh", "uhhuh", "um", "uh", "yeah", "yep",
        "yup", "yes", "ok", "okay", "right", "sure", "oh", "ah", "aha", "i see", "got it",
        "oh okay", "alright", "all right",
    }
)  # fmt: skip
# Phrases that take the floor at once, however short or quiet the utterance (the floor's
# classifier and side-talk check; `InterruptionPolicy.interrupt_phrases` replaces them: add the
# assistant's name, and addressing it by name always interrupts).
INTERRUPT_PHRASES = frozenset(
    {
        "stop", "wait", "hold on", "hang on", "actually", "excuse me", "pause", "sorry",
        "no no", "not that", "listen", "let me", "one moment", "one second", "shut up", "enough",
        "cancel", "never mind", "nevermind",
    }
)  # fmt: skip
# An utterance longer than this is never a backchannel, whatever its words.
BACKCHANNEL_MAX_WORDS = 3

HistoryCommit = Literal["heard_words", "heard_sentences", "generated"]
Verdict = Literal["wait", "pause", "duck", "cancel", "resume"]
OverlapAction = Literal["pause", "duck"]
Trigger = Literal[
    "speech_started", "voice", "levels", "transcript", "speech_stopped", "audio_started", "tick"
]


def utterance_words(text: str) -> list[str]:
    """Lower-case words without punctuation; hyphens join ("Mm-hmm" -> "mmhmm")."""
    return re.sub(r"[^\w' ]+", " ", text.lower().replace("-", "")).split()


@dataclass(frozen=True, slots=True)
class OverlapView:
    """What the floor knows about one overlap (user speech while a turn is active) when it asks
    a judge. Times are session seconds."""

    trigger: Trigger  # what just happened
    now: float
    turn: int  # the assistant turn being overlapped
    onset: float  # when the overlapping speech began (the VAD's onset)
    assistant_audio: bool  # the turn's audio has started (playout state)
    audio_since: float | None  # when the turn's audio last (re)started
    paused: bool  # output is paused for this overlap right now
    ducked: bool  # output is ducked (turned down) for this overlap right now
    voiced: bool  # the user's voice is on now (VAD frames, before any hang-over)
    stopped_at: float | None  # the VAD ended the utterance at (None: still speaking)
    text: str  # the latest transcript of the utterance ("" until one arrives)
    final: bool  # `text` is the final transcript
    content_words: int  # words of `text` that count, by the policy's backchannel lexicon
    # Audio levels (dBFS of 20 ms frames; None until known), the same the built-in rules see:
    level_dbfs: float | None = None  # the latest frame of the overlapping speech
    utterance_dbfs: float | None = None  # 90th percentile of its frames so far
    user_dbfs: float | None = None  # this user's own level (90th pct. of their turns' frames)
    relative_db: float | None = None  # utterance_dbfs - user_dbfs


@runtime_checkable
class OverlapJudge(Protocol):
    """An interruption policy from outside the package (docs/research.md, "Your own policy").

    The floor calls `judge` on every input during an overlap and follows the verdict:
    `wait` (keep judging; playout unchanged), `pause` (hold the turn's audio; before the audio
    has started it is asked again at `audio_started`), `duck` (turn the turn's audio down by
    the policy's `duck_db`, it keeps playing; asked again at `audio_started` likewise),
    `cancel` (the user takes the floor: the turn is cancelled, its words go to the next turn),
    `resume` (a false interruption: paused or ducked audio continues at full level, the
    overlap ends). After a final transcript anything but `cancel` ends the
    overlap as a false interruption. `deadline` is when to call `judge` again with `tick`
    (None: only on the next input). Both must be pure and quick: they run inside the floor."""

    def judge(self, view: OverlapView) -> Verdict: ...

    def deadline(self, view: OverlapView) -> float | None: ...


@dataclass(frozen=True, slots=True)
class InterruptionPolicy:
    """`onset`: cancel the turn as soon as the VAD hears the user.

    `confirm`: pause output at once, cancel only when the interruption is confirmed — speech has
    lasted `min_speech_ms` and the transcript holds `min_words` words that count (a whole
    utterance of at most `backchannel_max_words` words made of `backchannels` phrases counts as
    none), or the utterance ended with such words. Otherwise it was a false interruption: the
    paused audio resumes when the utterance proves to be a backchannel or noise, or when no
    transcript arrives within `resume_timeout_ms` of the speech stopping.

    `overlap_action`: what confirm mode does with the reply while it judges an overlap —
    `pause` it, or `duck` it (the audio keeps playing `duck_db` quieter, ramped over
    `duck_ramp_ms` with a raised cosine, `bargein.dsp.duck`); a ducked overlap that proves false
    ramps back up, one that proves an interruption fades out over the ramp and is cancelled.

    `classifier`: judge the overlap with `bargein.decide.backchannel.BackchannelClassifier`
    (the whole short utterance: duration, level relative to this user's own turns, partial and
    final words with the classifier's lexicon) instead of `min_speech_ms` / `min_words`.

    `side_talk`: before any cancel by the built-in rules, speech that does not sound addressed
    to the assistant — at least `side_talk_db` below this user's own level, with none of the
    `interrupt_phrases` — is a false interruption (`bargein.decide.side_talk`).
    `side_talk_voice` (opt-in) adds whose voice it is: speech softer than the user's turns but
    in their own voice (MFCC statistics of their turns) is the user, not side talk
    (`side_talk.SideTalkConfig.for_policy`). `side_talk_speaker` (opt-in, needs
    `side_talk_voice`) judges whose voice by a trained speaker embedding instead
    (`bargein.decide.speaker_voice`; the Resemblyzer wheel's weights), and speech at the user's
    level in another voice is side talk too.
    docs/turn_detection.md says what each can and cannot tell apart.

    `judge`: an `OverlapJudge` decides instead of `mode` (the echo guard and the history commit
    still apply).

    `echo_guard_ms` ignores onsets that start within that long after assistant audio (re)starts,
    where a speakerphone's echo of our own voice would appear.
    """

    mode: Literal["onset", "confirm"] = "confirm"
    min_speech_ms: int = 400
    min_words: int = 0
    backchannels: frozenset[str] = field(default=BACKCHANNELS)
    backchannel_max_words: int = BACKCHANNEL_MAX_WORDS
    resume_timeout_ms: int = 1500
    echo_guard_ms: int = 0
    history_commit: HistoryCommit = "heard_words"
    judge: OverlapJudge | None = None
    overlap_action: OverlapAction = "pause"
    duck_db: float = -15.0
    duck_ramp_ms: float = 30.0
    classifier: bool = False
    side_talk: bool = False
    side_talk_db: float = -3.0
    side_talk_voice: bool = False
    side_talk_speaker: bool = False
    interrupt_phrases: frozenset[str] = field(default=INTERRUPT_PHRASES)

    def __post_init__(self) -> None:
        if self.mode not in ("onset", "confirm"):
            raise ValueError(f"unknown interruption mode {self.mode!r}")
        if self.overlap_action not in ("pause", "duck"):
            raise ValueError(f"unknown overlap_action {self.overlap_action!r}")
        if not (_number(self.duck_db) and -60.0 <= self.duck_db <= 0.0):
            raise ValueError(f"duck_db must be a number in -60..0 dB, got {self.duck_db!r}")
        if not (_number(self.duck_ramp_ms) and 1.0 <= self.duck_ramp_ms <= 500.0):
            raise ValueError(f"duck_ramp_ms must be in 1..500 ms, got {self.duck_ramp_ms!r}")
        if not (_number(self.side_talk_db) and -40.0 <= self.side_talk_db <= 0.0):
            raise ValueError(f"side_talk_db must be in -40..0 dB, got {self.side_talk_db!r}")
        for name in ("classifier", "side_talk", "side_talk_voice", "side_talk_speaker"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool")
        if self.side_talk_voice and not self.side_talk:
            raise ValueError("side_talk_voice needs side_talk")
        if self.side_talk_speaker and not self.side_talk_voice:
            raise ValueError("side_talk_speaker needs side_talk_voice")
        phrases = self.interrupt_phrases
        if isinstance(phrases, list | tuple | set):  # from a TOML table or JSON
            object.__setattr__(self, "interrupt_phrases", frozenset(phrases))
        if not (
            isinstance(self.interrupt_phrases, frozenset)
            and len(self.interrupt_phrases) <= 500
            and all(isinstance(p, str) and 0 < len(p) <= 100 for p in self.interrupt_phrases)
        ):
            raise ValueError("interrupt_phrases must be at most 500 phrases of 1-100 characters")
        if self.history_commit not in ("heard_words", "heard_sentences", "generated"):
            raise ValueError(f"unknown history_commit {self.history_commit!r}")
        if self.judge is not None and not isinstance(self.judge, OverlapJudge):
            raise TypeError("judge must implement OverlapJudge (judge() and deadline())")

    @property
    def hears_levels(self) -> bool:
        """The floor needs the microphone's frame levels (classifier, side talk, a judge)."""
        return self.classifier or self.side_talk or self.judge is not None

    def is_backchannel(self, text: str) -> bool:
        """The whole utterance is a short run of backchannel phrases ("mm yeah", "i see")."""
        words = utterance_words(text)
        if not words or len(words) > self.backchannel_max_words:
            return False
        phrases = {tuple(utterance_words(p)) for p in self.backchannels}
        longest = max((len(p) for p in phrases), default=0)
        reach = [True] + [False] * len(words)  # reach[i]: words[:i] is a run of phrases
        for i in range(len(words)):
            if reach[i]:
                for n in range(1, min(longest, len(words) - i) + 1):
                    if tuple(words[i : i + n]) in phrases:
                        reach[i + n] = True
        return reach[-1]

    def content_words(self, text: str) -> int:
        """Words that count towards an interruption: none for a backchannel, else all."""
        return 0 if self.is_backchannel(text) else len(utterance_words(text))


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
