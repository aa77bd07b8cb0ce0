"""The `/ws` frames `bench/fuzz_ws.py` sends: junk text and JSON, message-shaped JSON with wrong
types, lone-surrogate escapes and non-BMP text, `session.start` with odd options, any bytes as
audio (`junk_frame`, `session_start`), and the valid audio and text sent in between
(`good_frame`)."""

from __future__ import annotations

import json
import random
from typing import Any

TYPES = [
    "session.start",
    "audio.end",
    "interrupt",
    "text",
    "playback",
    "nope",
    "",
    "session.started",
]
ODD = ["\\ud800", "\\udfff", "\\ud83d", "\\ude00x", "\\ud83d\\ude00", "\U0001f600", "\u202e",
       "\x00", "\\u0000", "\x1b[2J", "é", "\ufeff", "\\\\ud800", '"', "\\", "</p>"]  # fmt: skip


def odd_string(rng: random.Random, max_len: int = 60) -> str:
    parts = [rng.choice(ODD) if rng.random() < 0.3 else chr(rng.randint(32, 0x2FFF))
             for _ in range(rng.randint(0, max_len))]  # fmt: skip
    return "".join(parts)


def json_text(obj: dict[str, Any], raw: dict[str, str]) -> str:
    """`obj` as JSON, with each `raw` value spliced in as-is (escapes like \\ud800 stay escapes:
    a client cannot put a lone surrogate on the wire any other way)."""
    text = json.dumps(obj, ensure_ascii=False)
    for key, value in raw.items():
        text = text[:-1] + ("," if len(text) > 2 else "") + json.dumps(key) + ':"' + value + '"}'
    return text


def odd_value(rng: random.Random) -> Any:
    return rng.choice([
        None, True, 0, -1, 1.0, 16000.0, "16000", 2**64, -(10**7), 1e308, [], {}, [1, "a"],
        {"a": {"b": [None]}}, "x" * rng.randint(0, 5000), rng.randint(-(2**40), 2**40),
    ])  # fmt: skip


def odd_options(rng: random.Random) -> tuple[dict[str, Any], dict[str, str]]:
    options: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for _ in range(rng.randint(0, 5)):
        pick = rng.random()
        if pick < 0.3:  # the espeak-ng overflow: voice+variant of 37 and more characters
            options["voice"] = (
                rng.choice(["en", "en-us", "de", "xx", ""])
                + "+"
                + "v" * rng.choice([1, 3, 36, 37, 40, 100, 255, 256, 257, 2000])
            )
        elif pick < 0.45:
            options["voice"] = odd_string(rng, 40)
        elif pick < 0.6:
            options[rng.choice(["rate_wpm", "pitch"])] = odd_value(rng)
        elif pick < 0.7:
            options["policy"] = rng.choice(["onset", "confirm", "x", odd_string(rng, 10)])
        elif pick < 0.8:
            options[odd_string(rng, 10) or "k"] = odd_value(rng)
        else:
            raw["voice"] = "en" + rng.choice(ODD[:5])
    if rng.random() < 0.3:
        options = {"voice": rng.choice(["en-us", "en+f3", "en"]), "rate_wpm": rng.randint(80, 450)}
    return options, raw


def session_start(rng: random.Random, *, valid: bool) -> str:
    if valid:
        return json.dumps({"type": "session.start", "v": 1, "sample_rate": 16000})
    if rng.random() < 0.4:  # a well-formed start whose options must reach the engines' checks
        options, _ = odd_options(rng)
        obj = {"type": "session.start", "v": 1, "sample_rate": 16000, "options": options}
        return json.dumps(obj)
    rate = rng.choice([16000, 16000, 24000, 16000.0, "16000", True, 11025, 0, None])
    obj: dict[str, Any] = {"type": "session.start", "v": rng.choice([1, 1, 1, 1.0, 2, "1"])}
    obj["sample_rate"] = rate
    options, raw = odd_options(rng)
    obj["options"] = options
    if rng.random() < 0.2:
        obj["session_id"] = rng.choice(["nosuch", "../x", "", odd_string(rng, 8)])
        obj["resume_secret"] = rng.choice(["x" * 43, "", "y" * 300, odd_string(rng, 10)])
    if rng.random() < 0.1:
        raw["token"] = rng.choice(ODD[:4])
    return json_text(obj, raw)


def junk_frame(rng: random.Random) -> str | bytes:
    pick = rng.random()
    if pick < 0.15:
        return rng.randbytes(rng.choice([0, 1, 3, 320, 640, 641, 32000, 32002, 100_000]))
    if pick < 0.35:
        return (rng.randbytes(2) * 320)[: rng.choice([640, 640, 320, 2])]  # plausible audio
    if pick < 0.45:
        return rng.choice(["", "{", "[]", "null", '{"v":1}', "{'a':1}", "NaN", odd_string(rng)])
    kind = rng.choice(TYPES)
    obj: dict[str, Any] = {"type": kind, "v": rng.choice([1, 1, 1, 1.0, True])}
    raw: dict[str, str] = {}
    for key in rng.sample(["text", "turn", "played_samples", "sample_rate", "extra"], 2):
        obj[key] = odd_value(rng) if rng.random() < 0.5 else rng.randint(0, 5)
    if kind == "text" and rng.random() < 0.6:
        obj.pop("text", None)
        if rng.random() < 0.5:
            raw["text"] = "hi " + rng.choice(ODD)
        else:
            obj["text"] = rng.choice(
                ["what is two plus two", "\U0001f600 tell me more", "x" * 4001]
            )
    return json_text(obj, raw)


def good_frame(rng: random.Random) -> str | bytes:
    pick = rng.random()
    if pick < 0.9:  # 20 ms of microphone audio: silence or noise (the VAD may hear speech)
        return bytes(640) if rng.random() < 0.9 else rng.randbytes(640)
    if pick < 0.95:
        return '{"type":"interrupt","v":1}'
    if pick < 0.98:
        return json.dumps({"type": "interrupt", "v": 1, "turn": rng.randint(0, 9)})
    return json.dumps({"type": "text", "v": 1, "text": rng.choice(["hello", "what is two plus two",
                       "tell me a story 😀", "déjà vu"])})  # fmt: skip
