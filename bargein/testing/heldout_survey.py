"""What a held-out set holds, for the tests that keep each set to what it was written to hold.

`survey` builds every scenario of a set (every file, trim, label and word time resolves) and
checks the conventions the sets written from the docs share: timed words inside their item; the
user's items (interruptions, corrections, backchannels, user pauses) in the user's own recording
and channel (the first request or opening pause, `Scenario.user_turn`); side talk from another
recording, whatever it says. It counts the rest; each set's test asserts its own counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise

from bargein.research.audio import RATE, Truth, build_input
from bargein.research.experiment import HELDOUT_SETS, resolve_scenarios
from bargein.research.scenario import INTERRUPTIONS, Scenario
from bargein.research.voices import voice

USER_ITEMS = INTERRUPTIONS | {"backchannel", "user_pause"}

# For the sets' tests of what their items say: words that announce an interruption or give a
# command to the assistant
INTERRUPT_WORDS = {
    "wait", "stop", "hold", "hang", "sorry", "excuse", "pardon", "no", "nope", "actually",
    "hey", "listen", "pause", "enough", "cancel", "quiet", "shh", "hush", "halt", "repeat",
    "skip", "again", "but",
}  # fmt: skip
# the floor policy's backchannel lexicon, word by word (docs/research.md)
BACKCHANNEL_WORDS = {
    "mm", "mhm", "mmhmm", "mmhm", "hmm", "hm", "uh", "huh", "uhhuh", "um", "yeah", "yep",
    "yup", "yes", "ok", "okay", "right", "sure", "oh", "ah", "aha", "i", "see", "got", "it",
    "alright", "all",
}  # fmt: skip


# What the sets written after `heldout_j` hold, kind by kind (`Conventions.kinds`).
KINDS = {"request": 10, "user_pause": 2, "true_interruption": 24, "correction": 12,
         "backchannel": 36, "side_talk": 24, "noise": 14, "echo": 9}
Band = tuple[float, float]


@dataclass(frozen=True)
class Conventions:
    """A set's own figures for `Survey.check_conventions` (levels in dB against the user's
    turn; delays, RT60 in ms; spacing in s: see the check each field goes to)."""

    prefix: str
    no_room_delay: float
    reverberant: int
    delays: tuple[float, float]
    longest_rt60: float
    interruptions: tuple[Band, ...]
    side_talk: tuple[Band, ...]
    seconds: Band = (35.0, 55.0)
    backchannels: Band = (-6.0, -1.0)
    kinds: dict[str, int] = field(default_factory=lambda: dict(KINDS))
    first_s: float = 2.0
    gap_s: float = 2.8
    backchannel_after: Band | None = None


@dataclass
class Survey:
    """A set's counts; levels are over an item's first 0.8 s against the user's turn (dB)."""

    scenarios: list[Scenario]
    truths: dict[str, list[Truth]] = field(default_factory=dict)  # by scenario name
    seconds: dict[str, float] = field(default_factory=dict)  # input length, by scenario name
    kinds: Counter[str] = field(default_factory=Counter)
    users: set[tuple[str | None, int | None]] = field(default_factory=set)
    seeds: list[int] = field(default_factory=list)  # of every noise and echo item
    echoes: set[tuple[float, float]] = field(default_factory=set)  # (delay_ms, room_rt60_ms)
    # Every recorded item but the user's turn: (kind, dB), by "scenario/label".
    item_db: dict[str, tuple[str, float]] = field(default_factory=dict)

    def db_of(self, *kinds: str) -> list[float]:
        return [db for kind, db in self.item_db.values() if kind in kinds]

    @property
    def interruption_db(self) -> list[float]:
        return self.db_of(*INTERRUPTIONS)

    @property
    def side_talk_db(self) -> list[float]:
        return self.db_of("side_talk")

    def interruptions_within(self, lo: float, hi: float) -> int:
        return sum(lo <= db <= hi for db in self.interruption_db)

    def side_talk_within(self, lo: float, hi: float) -> int:
        return sum(lo <= db <= hi for db in self.side_talk_db)

    def check_interruptions_timed(self) -> None:
        """Every interruption and correction has timed words."""
        untimed = [k for k, t in self.by_key.items() if t.kind in INTERRUPTIONS and not t.words]
        assert not untimed, untimed

    def plain_interruptions(self, lo: float, hi: float) -> list[str]:
        """True interruptions within lo..hi dB with no interrupt or backchannel word in their
        first two words (`INTERRUPT_WORDS`, `BACKCHANNEL_WORDS`), by "scenario/label"."""
        first_two = self.first_words(2)
        return [k for k, (kind, db) in self.item_db.items()
                if kind == "true_interruption" and lo <= db <= hi
                and not set(first_two[k]) & (INTERRUPT_WORDS | BACKCHANNEL_WORDS)]

    @property
    def interruptions_in_echo(self) -> list[str]:
        """The user's interruptions said while our own echo is in the microphone (inside an
        echo window), by "scenario/label"."""
        return [f"{name}/{t.label}" for name, ts in self.truths.items()
                for echo in ts if echo.kind == "echo" for t in ts
                if t.kind in INTERRUPTIONS and echo.onset < t.onset and t.offset < echo.offset]

    @property
    def backchannels_after_noise(self) -> list[str]:
        """Backchannels that begin less than 1 s after a noise ends, by "scenario/label"."""
        return [f"{name}/{t.label}" for name, ts in self.truths.items()
                for noise in ts if noise.kind == "noise" for t in ts
                if t.kind == "backchannel" and 0.0 < t.onset - noise.offset < 1.0]

    def check_timed_over_replies(self) -> None:
        """The conventions of the sets written after `heldout_g`: the user speaks first; a user
        pause expects "any", every other item but requests and echo is timed over a reply; a
        different user in each scenario, each noise and echo its own seed."""
        for scn in self.scenarios:
            assert scn.user_turn is scn.items[0], scn.name  # the user speaks first
            for t in self.truths[scn.name]:
                if t.kind == "user_pause":
                    assert t.expect == "any", t
                elif t.kind not in ("request", "echo"):
                    assert t.expect == "speaking", t
        assert len(self.users) == len(self.scenarios), self.users
        assert len(self.seeds) == len(set(self.seeds)), sorted(self.seeds)

    def check_scenarios(self, prefix: str, count: int = 12,
                        seconds: tuple[float, float] = (35.0, 55.0)) -> None:
        """`count` scenarios named `prefix`*, each input `seconds` long, and the conventions of
        `check_timed_over_replies`."""
        assert len(self.scenarios) == count, [s.name for s in self.scenarios]
        assert all(s.name.startswith(prefix) for s in self.scenarios), prefix
        assert all(seconds[0] <= s <= seconds[1] for s in self.seconds.values()), self.seconds
        self.check_timed_over_replies()

    @property
    def by_key(self) -> dict[str, Truth]:
        """Every item's truth by "scenario/label" (the keys of `item_db`)."""
        return {f"{n}/{t.label}": t for n, ts in self.truths.items() for t in ts}

    def first_words(self, n: int = 2) -> dict[str, list[str]]:
        """The first `n` timed words of every item that has timed words, by "scenario/label"."""
        return {k: [w for _, _, w in t.words[:n]] for k, t in self.by_key.items() if t.words}

    def check_spacing(self, first_s: float = 2.0, gap_s: float = 2.8,
                      backchannel_after: tuple[float, float] | None = None) -> None:
        """The first item over the reply comes >= `first_s` after the user's turn (past the
        reply's first audio), each later one >= `gap_s` after the previous one ends, except a
        noise laid right before a backchannel (< 1 s: the sets' deliberate overlaps) and, with
        `backchannel_after` (lo, hi), a backchannel lo..hi s after an interruption (said as the
        answer to it would start)."""
        for name, truths in self.truths.items():
            speech = sorted((t for t in truths if t.kind != "echo"), key=lambda t: t.onset)
            assert speech[1].onset - speech[0].offset >= first_s, (name, speech[1].label)
            for prev, nxt in pairwise(speech[1:]):
                gap = nxt.onset - prev.offset
                if prev.kind == "noise" and nxt.kind == "backchannel" and gap < 1.0:
                    continue
                if (backchannel_after is not None and prev.kind in INTERRUPTIONS
                        and nxt.kind == "backchannel"
                        and backchannel_after[0] <= gap < backchannel_after[1]):
                    continue
                assert gap >= gap_s, (name, prev.label, nxt.label, gap)

    def check_echo_rooms(self, no_room_delay: float, rooms: int, reverberant: int,
                         delays: tuple[float, float] | None = None,
                         longest_rt60: float | None = None) -> None:
        """At least `rooms` echo windows, one with no room (at `no_room_delay` ms), every delay
        its own, `reverberant` or more rooms with RT60 300-900 ms; with `delays`, the shortest
        and longest delay (ms); with `longest_rt60`, every RT60 its own and that the longest."""
        echoes = self.echoes
        assert len(echoes) >= rooms and (no_room_delay, 0) in echoes, echoes
        assert len({delay for delay, _ in echoes}) == len(echoes), echoes
        assert sum(300 <= rt60 <= 900 for _, rt60 in echoes) >= reverberant, echoes
        if delays is not None:
            spread = (min(d for d, _ in echoes), max(d for d, _ in echoes))
            assert spread == delays, echoes
        if longest_rt60 is not None:
            assert max(rt for _, rt in echoes) == longest_rt60, echoes
            assert len({rt for _, rt in echoes}) == len(echoes), echoes


    def check_conventions(self, c: Conventions) -> None:
        """Every check of a set's conventions, with its own figures."""
        self.check_scenarios(c.prefix, seconds=c.seconds)
        self.check_echo_rooms(c.no_room_delay, rooms=c.kinds["echo"], reverberant=c.reverberant,
                              delays=c.delays, longest_rt60=c.longest_rt60)
        self.check_levels(c.interruptions, side_talk=c.side_talk, backchannels=c.backchannels)
        self.check_kinds(**c.kinds)
        self.check_noise_shapes()
        self.check_spacing(c.first_s, c.gap_s, backchannel_after=c.backchannel_after)

    def check_kinds(self, **counts: int) -> None:
        """The set holds exactly `counts` items of each kind (`request=10, noise=14, …`) and
        no other kind."""
        assert {k: self.kinds[k] for k in counts} == counts, self.kinds
        assert sum(self.kinds.values()) == sum(counts.values()), self.kinds

    def check_levels(self, interruptions: tuple[tuple[float, float], ...], side_talk:
                     tuple[tuple[float, float], ...], backchannels: tuple[float, float],
                     each: int = 12) -> None:
        """`each` interruptions in each band of `interruptions` and `each` side talk in each
        band of `side_talk` (dB against the user's turn, no item outside them), every
        backchannel within `backchannels`."""
        for within, bands, dbs in ((self.interruptions_within, interruptions,
                                    self.interruption_db),
                                   (self.side_talk_within, side_talk, self.side_talk_db)):
            got = [within(*band) for band in bands]
            assert got == [each] * len(bands) and sum(got) == len(dbs), (got, bands, dbs)
        lo, hi = backchannels
        assert all(lo <= db <= hi for db in self.db_of("backchannel")), self.db_of("backchannel")

    def check_noise_shapes(self, at_least: int = 4) -> None:
        """Each noise shape (cough, clicks, steady) at least `at_least` times."""
        shapes = [it.shape for s in self.scenarios for it in s.items if it.source == "noise"]
        assert all(shapes.count(sh) >= at_least for sh in ("cough", "clicks", "steady")), shapes


def survey(name: str) -> Survey:
    """Build the held-out set `name`, check the shared conventions (AssertionError naming the
    scenario or item), and count what it holds."""
    scenarios = resolve_scenarios([name])
    assert len(scenarios) == len(list(HELDOUT_SETS[name].glob("*.toml"))), name
    out = Survey(scenarios)
    for scn in scenarios:
        mic, truths = build_input(scn)
        out.truths[scn.name], out.seconds[scn.name] = truths, len(mic) / RATE
        out.kinds.update(t.kind for t in truths)
        for t in truths:
            # a <= b: LibriSpeech 1272's own labels give "are" no length (3.65-3.65 s)
            assert all(t.onset - 1e-6 <= a <= b <= t.offset + 1e-6 for a, b, _ in t.words), t
        user_turn = scn.user_turn
        assert user_turn is not None, scn.name
        mine = (user_turn.file, user_turn.channel)
        out.users.add(mine)
        user_db = voice(user_turn, scn).level_dbfs
        for item in scn.items:
            if item.source in ("noise", "echo"):
                out.seeds.append(item.seed)
            if item.kind == "echo":
                out.echoes.add((item.delay_ms, item.room_rt60_ms))
            elif item.kind in USER_ITEMS:
                assert (item.file, item.channel) == mine, (scn.name, item.label)
            elif item.kind == "side_talk":
                assert item.source == "file" and item.file is not None, (scn.name, item.label)
                assert (item.file, item.channel) != mine, (scn.name, item.label)
            if item.source == "file" and item is not user_turn:
                level = voice(item, scn, first_s=0.8).level_dbfs - user_db
                out.item_db[f"{scn.name}/{item.label}"] = (item.kind, level)
    return out
