"""Field validators: each reads one field of a parsed JSON object and returns it, or raises
`Invalid` with the stable code a peer gets. Transports with their own framing reuse these."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

from bargein.transports.protocol.errors import ErrorCode, fail
from bargein.transports.protocol.limits import (
    MAX_HISTORY_ENTRIES,
    MAX_INPUT_TEXT_CHARS,
    MAX_OPTION_KEY_CHARS,
    MAX_OPTION_NUMBER,
    MAX_OPTION_VALUE_CHARS,
    MAX_OPTIONS,
    MAX_RESUME_SECRET_CHARS,
    MAX_SERVER_TEXT_CHARS,
    MAX_WORDS_PER_MESSAGE,
    SUPPORTED_RATES,
    UINT32_MAX,
)
from bargein.transports.protocol.messages import (
    Capabilities,
    HistoryEntry,
    OptionValue,
    Text,
    WordSpan,
)

SESSION_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_RE: Final = re.compile(r"[a-z][a-z0-9_.]{0,39}")
RESUME_SECRET_RE: Final = re.compile(rf"[\x21-\x7e]{{1,{MAX_RESUME_SECRET_CHARS}}}")
# C0, DEL and C1 controls: never part of an option a C library should see (NUL ends its string).
CONTROL_RE: Final = re.compile("[\x00-\x1f\x7f-\x9f]")
# What `capabilities` says of one option or policy.
MAX_DESCRIPTION_CHARS: Final = 200


def field_value(obj: Mapping[str, Any], key: str, required: bool) -> Any:
    if key not in obj or obj[key] is None:
        if required:
            fail(ErrorCode.MISSING_FIELD, f"missing field {key!r}")
        return None
    return obj[key]


def integer(
    obj: Mapping[str, Any], key: str, *, lo: int = 0, hi: int = UINT32_MAX, required: bool = True
) -> Any:
    value = field_value(obj, key, required)
    if value is None:
        return None
    # bool is an int subclass; `true` is not a sample count.
    if not isinstance(value, int) or isinstance(value, bool):
        fail(ErrorCode.BAD_FIELD, f"{key!r} must be an integer")
    if not lo <= value <= hi:
        fail(ErrorCode.BAD_FIELD, f"{key!r} must be in [{lo}, {hi}]")
    return value


def string(
    obj: Mapping[str, Any],
    key: str,
    *,
    max_len: int = MAX_SERVER_TEXT_CHARS,
    required: bool = True,
    pattern: re.Pattern[str] | None = None,
) -> Any:
    value = field_value(obj, key, required)
    if value is None:
        return None
    if not isinstance(value, str):
        fail(ErrorCode.BAD_FIELD, f"{key!r} must be a string")
    if len(value) > max_len:
        fail(ErrorCode.BAD_FIELD, f"{key!r} is longer than {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        fail(ErrorCode.BAD_FIELD, f"{key!r} has an invalid format")
    return value


def boolean(obj: Mapping[str, Any], key: str, *, required: bool = True) -> Any:
    value = field_value(obj, key, required)
    if value is not None and not isinstance(value, bool):
        fail(ErrorCode.BAD_FIELD, f"{key!r} must be a boolean")
    return value


def timestamp(obj: Mapping[str, Any], key: str = "t") -> Any:
    value = field_value(obj, key, False)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(ErrorCode.BAD_FIELD, f"{key!r} must be a number")
    if not math.isfinite(value) or value < 0:
        fail(ErrorCode.BAD_FIELD, f"{key!r} must be a finite number >= 0")
    return float(value)


def number(obj: Mapping[str, Any], key: str, *, lo: float, hi: float) -> Any:
    """A required finite JSON number in [lo, hi] (an integer is a number too)."""
    value = field_value(obj, key, True)
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(ErrorCode.BAD_FIELD, f"{key!r} must be a number")
    if not (math.isfinite(value) and lo <= value <= hi):
        fail(ErrorCode.BAD_FIELD, f"{key!r} must be a number in {lo:g}..{hi:g}")
    return float(value)


def rate(obj: Mapping[str, Any], key: str, *, required: bool) -> Any:
    value = field_value(obj, key, required)
    if value is None:
        return None
    # A rate of the wrong type is a malformed field; a well-formed unsupported one is not.
    if not isinstance(value, int) or isinstance(value, bool):
        fail(ErrorCode.BAD_FIELD, f"{key!r} must be an integer")
    if value not in SUPPORTED_RATES:
        fail(
            ErrorCode.BAD_SAMPLE_RATE,
            f"{key!r} must be one of {sorted(SUPPORTED_RATES)}, got {value!r}",
        )
    return value


def options(obj: Mapping[str, Any]) -> dict[str, OptionValue]:
    value = field_value(obj, "options", False)
    if value is None:
        return {}
    if not isinstance(value, dict):
        fail(ErrorCode.BAD_FIELD, "'options' must be an object")
    if len(value) > MAX_OPTIONS:
        fail(ErrorCode.BAD_FIELD, f"'options' has more than {MAX_OPTIONS} entries")
    out: dict[str, OptionValue] = {}
    for key, item in value.items():
        if not NAME_RE.fullmatch(key) or len(key) > MAX_OPTION_KEY_CHARS:
            fail(ErrorCode.BAD_FIELD, f"option name {key[:40]!r} is invalid")
        if isinstance(item, str):
            if len(item) > MAX_OPTION_VALUE_CHARS:
                fail(ErrorCode.BAD_FIELD, f"option {key!r} is over {MAX_OPTION_VALUE_CHARS} chars")
            if CONTROL_RE.search(item):
                fail(ErrorCode.BAD_FIELD, f"option {key!r} holds a control character")
        elif isinstance(item, bool):
            pass
        elif isinstance(item, int | float):
            if not abs(item) <= MAX_OPTION_NUMBER:  # also false for NaN; no float(int) overflow
                fail(ErrorCode.BAD_FIELD, f"option {key!r} must be within ±{MAX_OPTION_NUMBER}")
        else:
            fail(ErrorCode.BAD_FIELD, f"option {key!r} must be a string, number or boolean")
        out[key] = item
    return out


def words(obj: Mapping[str, Any]) -> tuple[WordSpan, ...]:
    value = field_value(obj, "words", True)
    if not isinstance(value, list):
        fail(ErrorCode.BAD_FIELD, "'words' must be an array")
    if len(value) > MAX_WORDS_PER_MESSAGE:
        fail(ErrorCode.BAD_FIELD, f"'words' has more than {MAX_WORDS_PER_MESSAGE} entries")
    spans = []
    for item in value:
        if not isinstance(item, dict):
            fail(ErrorCode.BAD_FIELD, "each word must be an object")
        start, end = integer(item, "start"), integer(item, "end")
        if end < start:
            fail(ErrorCode.BAD_FIELD, "a word's 'end' is before its 'start'")
        spans.append(WordSpan(string(item, "text", max_len=200), start, end))
    return tuple(spans)


def text_input(obj: Mapping[str, Any]) -> Text:
    value = field_value(obj, "text", True)
    if not isinstance(value, str):
        fail(ErrorCode.BAD_FIELD, "'text' must be a string")
    if len(value) > MAX_INPUT_TEXT_CHARS:
        fail(ErrorCode.TEXT_TOO_LONG, f"'text' is longer than {MAX_INPUT_TEXT_CHARS} characters")
    if not value.strip():
        fail(ErrorCode.EMPTY_TEXT, "'text' is empty")
    return Text(value)


def turn_status(obj: Mapping[str, Any]) -> Any:
    value = string(obj, "status", max_len=20)
    if value not in ("completed", "interrupted"):
        fail(ErrorCode.BAD_FIELD, "'status' must be 'completed' or 'interrupted'")
    return value


def history(obj: Mapping[str, Any]) -> tuple[HistoryEntry, ...]:
    value = field_value(obj, "history", False)
    if value is None:
        return ()
    if not isinstance(value, list):
        fail(ErrorCode.BAD_FIELD, "'history' must be an array")
    if len(value) > MAX_HISTORY_ENTRIES:
        fail(ErrorCode.BAD_FIELD, f"'history' has more than {MAX_HISTORY_ENTRIES} entries")
    entries = []
    for item in value:
        if not isinstance(item, dict):
            fail(ErrorCode.BAD_FIELD, "each history entry must be an object")
        role = string(item, "role", max_len=20)
        if role not in ("user", "assistant"):
            fail(ErrorCode.BAD_FIELD, "a history 'role' must be 'user' or 'assistant'")
        interrupted = boolean(item, "interrupted", required=False)
        entries.append(HistoryEntry(role, string(item, "content"), bool(interrupted)))
    return tuple(entries)


def capabilities(obj: Mapping[str, Any]) -> Capabilities | None:
    value = field_value(obj, "capabilities", False)
    if value is None:
        return None
    if not isinstance(value, dict):
        fail(ErrorCode.BAD_FIELD, "'capabilities' must be an object")
    rates = field_value(value, "sample_rates", True)
    if not isinstance(rates, list) or not all(
        type(r) is int and r in SUPPORTED_RATES for r in rates
    ):
        fail(ErrorCode.BAD_FIELD, "'capabilities.sample_rates' must list supported rates")
    described = field_value(value, "options", False) or {}
    if not isinstance(described, dict) or len(described) > 4 * MAX_OPTIONS:
        fail(ErrorCode.BAD_FIELD, "'capabilities.options' must be an object of names")
    for name in described:
        if not NAME_RE.fullmatch(name):
            fail(ErrorCode.BAD_FIELD, f"option name {name[:40]!r} is invalid")
        string(described, name, max_len=MAX_DESCRIPTION_CHARS)
    policies = field_value(value, "policies", False) or []
    if not isinstance(policies, list) or not all(
        isinstance(p, str) and NAME_RE.fullmatch(p) for p in policies
    ):
        fail(ErrorCode.BAD_FIELD, "'capabilities.policies' must be an array of names")
    explained = field_value(value, "policy_descriptions", False) or {}
    if not isinstance(explained, dict) or not set(explained) <= set(policies):
        fail(ErrorCode.BAD_FIELD, "'capabilities.policy_descriptions' must describe policies")
    for name in explained:
        string(explained, name, max_len=MAX_DESCRIPTION_CHARS)
    return Capabilities(
        sample_rates=tuple(rates),
        max_audio_bytes=integer(value, "max_audio_bytes"),
        options=dict(described),
        policies=tuple(policies),
        policy_descriptions=dict(explained),
    )
