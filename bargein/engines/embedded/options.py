"""The checks every embedded-engine option passes before it reaches C, and what espeak-ng offers.

Options reach espeak-ng's C code from untrusted clients (`session.start.options`), and the C code
does not check them: `espeak_SetVoiceByName` copies a ``+variant`` suffix into a 40-byte static
buffer with ``sprintf``, so a 37-character variant aborts the process (``*** buffer overflow
detected ***``); a float rate passes a range check and then fails every synthesis. So nothing is
handed to espeak unless it is in the catalogue below or is an integer in range.

The catalogue is parsed from the data directory in pure Python (~250 small files, read once per
process) instead of asking `espeak_ListVoices`: the C call needs `espeak_Initialize` first, which
costs ~0.6 s and holds the process-wide espeak lock — too much for the event loop, where engine
factories run for every connection. Tests check that the two agree, and that espeak accepts every
name the catalogue accepts.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CHUNK_MS_MAX",
    "MAX_VOICE_CHARS",
    "PITCH_MAX",
    "PITCH_MIN",
    "RATE_MAX",
    "RATE_MIN",
    "EspeakCatalogue",
    "check_bool",
    "check_int",
    "check_probability",
    "check_voice",
    "espeak_catalogue",
]

RATE_MIN, RATE_MAX = 80, 450  # espeakRATE_MINIMUM / espeakRATE_MAXIMUM, words per minute
PITCH_MIN, PITCH_MAX = 0, 100
CHUNK_MS_MAX = 10_000
# Longer than any catalogue name plus variant; checked first so a huge string costs nothing.
MAX_VOICE_CHARS = 64


@dataclass(frozen=True)
class EspeakCatalogue:
    """Voices ``(identifier, languages)`` as `espeak_ListVoices` lists them, variant names, and
    the native sample rate (bytes 4–7 of ``phondata``, as espeak-ng itself reads it)."""

    voices: tuple[tuple[str, tuple[str, ...]], ...]
    variants: frozenset[str]
    sample_rate: int

    @functools.cached_property
    def bases(self) -> frozenset[str]:
        """Lower-cased names `espeak_SetVoiceByName` resolves: voice identifiers and their last
        path component (the file name; espeak lower-cases the name and looks the file up). A
        language code alone ("en-gb") resolves only when it is also a file name, so languages
        are not listed (the test checks every name here against espeak)."""
        names: set[str] = set()
        for identifier, _ in self.voices:
            names.add(identifier.lower())
            names.add(identifier.rsplit("/", 1)[-1].lower())
        return frozenset(names)


def _data_path() -> Path:
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


def _voice_file(path: Path) -> tuple[str | None, tuple[str, ...]]:
    """(name, languages) from an espeak voice file's ``name`` and ``language`` lines."""
    name: str | None = None
    languages: list[str] = []
    for line in path.read_text("utf-8", "replace").splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "language":
            languages.append(words[1])
        elif len(words) >= 2 and words[0] == "name" and name is None:
            name = " ".join(words[1:])
    return name, tuple(languages)


@functools.cache
def espeak_catalogue() -> EspeakCatalogue:
    data = _data_path()
    voices = []
    lang = data / "lang"
    for path in sorted(p for p in lang.rglob("*") if p.is_file()):
        _, languages = _voice_file(path)
        if languages:  # espeak lists only voices that declare a language
            voices.append((path.relative_to(lang).as_posix(), languages))
    variants = frozenset(p.name for p in (data / "voices" / "!v").iterdir() if p.is_file())
    header = (data / "phondata").read_bytes()[:8]
    return EspeakCatalogue(tuple(voices), variants, int.from_bytes(header[4:8], "little"))


def check_int(name: str, value: object, low: int, high: int) -> int:
    """``value`` if it is an integer (not a bool, not a float such as 200.5 or 200.0) in range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {_show(value)}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}, got {value}")
    return value


def check_voice(value: object) -> str:
    """``value`` if it is ``base`` or ``base+variant`` with both in the catalogue."""
    if not isinstance(value, str):
        raise TypeError(f"voice must be a string, got {_show(value)}")
    if not value or len(value) > MAX_VOICE_CHARS:
        raise ValueError(f"voice must be 1..{MAX_VOICE_CHARS} characters, got {len(value)}")
    catalogue = espeak_catalogue()
    base, plus, variant = value.partition("+")
    if base.lower() not in catalogue.bases:
        raise ValueError(
            f"voice: espeak-ng has no voice {base!r}; use a language such as 'en-us', 'en', "
            "'fr', optionally with a variant ('en-us+f3'); see espeak_voices()"
        )
    if plus and variant not in catalogue.variants:
        raise ValueError(
            f"voice: espeak-ng has no variant {variant[:MAX_VOICE_CHARS]!r}; "
            "see espeak_variants() (e.g. 'f3', 'm2', 'klatt')"
        )
    return value


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false, got {_show(value)}")
    return value


def check_probability(name: str, value: object) -> float:
    """A float in the open interval (0, 1): pocketsphinx thresholds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {_show(value)}")
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return float(value)


def _show(value: object) -> str:
    """The value's type, and the value itself when it is short (never a huge echo)."""
    text = repr(value)
    return f"{type(value).__name__} {text}" if len(text) <= 40 else type(value).__name__
