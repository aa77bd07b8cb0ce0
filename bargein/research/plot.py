"""timeline.png: one picture of a run — what the user said (and what it truly was), what the VAD
decided, what the assistant sent and the user heard, and every floor decision. Pure Pillow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bargein.research.audio import RATE, Truth
from bargein.runtime.messages import Int16Array

KIND_COLORS = {
    "request": (70, 130, 180),
    "true_interruption": (200, 40, 40),
    "correction": (160, 30, 120),
    "backchannel": (40, 150, 70),
    "noise": (140, 140, 140),
    "side_talk": (150, 110, 40),
    "echo": (90, 90, 200),
    "user_pause": (20, 150, 160),
}
TURN_COLORS = [(230, 120, 20), (120, 60, 170), (20, 140, 120), (190, 60, 90)]
WIDTH = 1600
LEFT = 150
ROWS = [("user mic", 70), ("ground truth", 44), ("VAD", 26), ("transcripts", 40),
        ("assistant heard", 70), ("floor", 44)]  # fmt: skip
TITLE_H, AXIS_H, LEGEND_H = 30, 24, 40


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _envelope(pcm: Int16Array, t_start: float, px: int, s_per_px: float) -> np.ndarray:
    """Peak |amplitude| per pixel column (0..1); pcm starts at session time t_start."""
    out = np.zeros(px)
    for x in range(px):
        a = int((x * s_per_px - t_start) * RATE)
        b = int(((x + 1) * s_per_px - t_start) * RATE)
        a, b = max(a, 0), min(b, len(pcm))
        if b > a:
            out[x] = np.abs(pcm[a:b].astype(np.int32)).max() / 32768
    return out


def render(
    path: str | Path,
    *,
    title: str,
    events: Sequence[Mapping[str, Any]],
    truths: Sequence[Truth],
    segments: Sequence[tuple[float, float, int]],
    mic: Int16Array,
    speaker: Int16Array,
    media_offset: float,
) -> None:
    end_t = max(
        [len(mic) / RATE + media_offset, len(speaker) / RATE + media_offset]
        + [float(e["t"]) for e in events]
    )
    span = max(1.0, end_t + 0.3)
    plot_w = WIDTH - LEFT - 20
    s_per_px = span / plot_w
    height = TITLE_H + sum(h for _, h in ROWS) + AXIS_H + LEGEND_H
    img = Image.new("RGB", (WIDTH, height), "white")
    d = ImageDraw.Draw(img)
    font, small = _font(14), _font(11)

    def x(t: float) -> int:
        return LEFT + round(t / s_per_px)

    d.text((10, 7), title, fill="black", font=font)
    tops: dict[str, tuple[int, int]] = {}
    y = TITLE_H
    for i, (name, h) in enumerate(ROWS):
        tops[name] = (y, h)
        if i % 2 == 0:
            d.rectangle([LEFT, y, WIDTH - 20, y + h], fill=(247, 247, 247))
        d.text((8, y + h // 2 - 8), name, fill="black", font=font)
        y += h
    plot_bottom = y

    # user mic and assistant audio envelopes
    for name, pcm, color in (("user mic", mic, (90, 90, 90)), ("assistant heard", speaker, None)):
        top, h = tops[name]
        env = _envelope(pcm, media_offset, plot_w, s_per_px)
        mid = top + h // 2
        for col, v in enumerate(env):
            if v <= 0:
                continue
            c = color
            if c is None:
                t = col * s_per_px
                seg_turn = next((s[2] for s in segments if s[0] <= t < s[1] + s_per_px), 1)
                c = TURN_COLORS[(seg_turn - 1) % len(TURN_COLORS)]
            half = max(1, round(v * (h // 2 - 3)))
            d.line([LEFT + col, mid - half, LEFT + col, mid + half], fill=c)

    # ground truth
    top, h = tops["ground truth"]
    for i, tr in enumerate(sorted(truths, key=lambda t: t.onset)):
        color = KIND_COLORS.get(tr.kind, (0, 0, 0))
        y0 = top + 4 + (i % 2) * (h // 2 - 2)
        d.rectangle([x(tr.onset), y0, max(x(tr.offset), x(tr.onset) + 2), y0 + 8], fill=color)
        d.text((x(tr.onset), y0 + 9), f"{tr.kind}: {tr.label}", fill=color, font=small)

    # VAD: onset (media time on the session clock) → offset
    top, h = tops["VAD"]
    onset: float | None = None
    for e in events:
        if e["type"] == "speech_started":
            onset = float(e["onset"]) + media_offset
        elif e["type"] == "speech_stopped" and onset is not None:
            off = float(e["offset"]) + media_offset
            d.rectangle([x(onset), top + 6, max(x(off), x(onset) + 2), top + h - 6],
                        fill=(60, 110, 220))  # fmt: skip
            d.line([x(float(e["t"])), top + 3, x(float(e["t"])), top + h - 3], fill=(0, 0, 120))
            onset = None

    # transcripts (final, at the time they arrived)
    top, h = tops["transcripts"]
    for i, e in enumerate(e for e in events if e["type"] == "transcript_final"):
        tx = x(float(e["t"]))
        d.line([tx, top + 2, tx, top + h - 2], fill=(0, 0, 0))
        d.text(
            (tx + 3, top + 3 + (i % 2) * 17),
            repr(e["text"]) if e["text"] else "(nothing)",
            fill="black",
            font=small,
        )

    # turn spans under the assistant audio: thin = thinking, thick = audio flowing
    top, h = tops["assistant heard"]
    started: dict[int, float] = {}
    for e in events:
        turn = e.get("turn")
        if e["type"] == "turn_started" and turn is not None:
            started[int(turn)] = float(e["t"])
            d.text((x(float(e["t"])) + 2, top + 1), f"turn {turn}", fill="black", font=small)
        elif e["type"] in ("turn_cancelled", "turn_completed") and turn in started:
            c = TURN_COLORS[(int(turn) - 1) % len(TURN_COLORS)]
            d.line([x(started.pop(int(turn))), top + h - 3, x(float(e["t"])), top + h - 3],
                   fill=c, width=2)  # fmt: skip

    # floor: pauses (orange span), barge-ins (red line through every row), resumes, clears
    top, h = tops["floor"]
    paused_at: dict[int, float] = {}
    for e in events:
        t, turn, kind = float(e["t"]), int(e.get("turn") or 0), e["type"]
        if kind == "output_paused":
            paused_at[turn] = t
        elif kind in ("output_resumed", "barge_in", "turn_cancelled") and turn in paused_at:
            d.rectangle([x(paused_at.pop(turn)), top + 6, x(t), top + 18],
                        fill=(250, 170, 60))  # fmt: skip
        if kind == "barge_in":
            d.line([x(t), TITLE_H, x(t), plot_bottom], fill=(220, 0, 0), width=2)
            d.text((x(t) + 3, top + 24), "barge-in", fill=(200, 0, 0), font=small)
        elif kind == "output_resumed":
            d.polygon([(x(t), top + 4), (x(t) + 8, top + 12), (x(t), top + 20)], fill=(0, 150, 0))
            d.text((x(t) + 3, top + 24), "resumed", fill=(0, 130, 0), font=small)
        elif kind == "output_cleared":
            d.rectangle([x(t) - 2, top + 30, x(t) + 2, top + 40], fill=(120, 0, 0))

    # time axis
    step = next(s for s in (0.5, 1, 2, 5, 10, 20, 30, 60) if span / s <= 30)
    for i in range(int(span / step) + 1):
        t = i * step
        d.line([x(t), plot_bottom, x(t), plot_bottom + 5], fill="black")
        d.text((x(t) - 6, plot_bottom + 6), f"{t:g}s", fill="black", font=small)
        d.line([x(t), TITLE_H, x(t), plot_bottom], fill=(225, 225, 225))

    # legend
    ly = plot_bottom + AXIS_H + 8
    lx = LEFT
    for kind, color in KIND_COLORS.items():
        d.rectangle([lx, ly + 3, lx + 10, ly + 13], fill=color)
        d.text((lx + 14, ly), kind, fill="black", font=small)
        lx += 24 + round(d.textlength(kind, font=small))
    for label, color in (("VAD speech", (60, 110, 220)), ("paused", (250, 170, 60)),
                         ("barge-in", (220, 0, 0))):  # fmt: skip
        d.rectangle([lx, ly + 3, lx + 10, ly + 13], fill=color)
        d.text((lx + 14, ly), label, fill="black", font=small)
        lx += 24 + round(d.textlength(label, font=small))
    img.save(path)
