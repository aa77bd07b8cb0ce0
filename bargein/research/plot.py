"""timeline.png: one picture of a run — what the user said (and what it truly was), what the VAD
decided, what the assistant sent and the user heard, and every floor decision; compare.png: the
headline metrics of several policies as small multiples. Pure Pillow."""

from __future__ import annotations

import math
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
DUCK_COLOR = (250, 225, 120)
TURN_COLORS = [(230, 120, 20), (120, 60, 170), (20, 140, 120), (190, 60, 90)]
WIDTH = 1600
LEFT = 150
ROWS = [("user mic", 70), ("ground truth", 62), ("VAD", 26), ("transcripts", 54),
        ("assistant heard", 70), ("floor", 62)]  # fmt: skip
TITLE_H, AXIS_H, LEGEND_H = 30, 24, 58
# Every mark the timeline draws: (name, fill colour or how it is drawn).
LEGEND: list[tuple[str, Any]] = [(kind, color) for kind, color in KIND_COLORS.items()] + [
    ("VAD speech", (60, 110, 220)),
    ("VAD end decided", "vad_end"),
    ("final transcript", "transcript"),
    ("turn life", "turn"),
    ("output paused", (250, 170, 60)),
    ("output ducked", DUCK_COLOR),
    ("resumed", "resumed"),
    ("restored", "restored"),
    ("barge-in", "barge_in"),
    ("output cleared", "cleared"),
]
LANE_H = 14
Box = tuple[int, int, int, int]


class Lanes:
    """Text labels in a row without overlap: each goes into the first lane where it fits after
    the labels already there; when none has room it is cut to the room there is (at least a
    few characters) or left out — the mark it names is drawn regardless."""

    def __init__(self, draw: ImageDraw.ImageDraw, font: Any, top: int, lanes: int) -> None:
        self.draw, self.font, self.top = draw, font, top
        self.ends = [-(10**9)] * lanes
        self.boxes: list[Box] = []

    def place(self, x: int, text: str, fill: Any) -> Box | None:
        for cut in (len(text), 12, 6):
            label = text if cut >= len(text) else text[:cut] + "…"
            w = round(self.draw.textlength(label, font=self.font))
            for lane, end in enumerate(self.ends):
                if x >= end + 4:
                    y = self.top + lane * LANE_H
                    self.ends[lane] = x + w
                    self.draw.text((x, y), label, fill=fill, font=self.font)
                    box = (x, y, x + w, y + LANE_H - 1)
                    self.boxes.append(box)
                    return box
        return None


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
) -> list[Box]:
    """Draw the timeline; returns the boxes of the text labels placed (none overlap)."""
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

    boxes: list[Box] = []
    # ground truth: bars in two lanes (overlapping items side by side), labels below
    top, h = tops["ground truth"]
    bar_end = [-math.inf, -math.inf]
    lanes = Lanes(d, small, top + 22, 3)
    for tr in sorted(truths, key=lambda t: t.onset):
        color = KIND_COLORS.get(tr.kind, (0, 0, 0))
        lane = 0 if tr.onset >= bar_end[0] else 1
        bar_end[lane] = max(bar_end[lane], tr.offset)
        y0 = top + 3 + lane * 9
        d.rectangle([x(tr.onset), y0, max(x(tr.offset), x(tr.onset) + 2), y0 + 7], fill=color)
        lanes.place(x(tr.onset), f"{tr.kind}: {tr.label}", color)
    boxes += lanes.boxes

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
    lanes = Lanes(d, small, top + 3, 3)
    for e in (e for e in events if e["type"] == "transcript_final"):
        tx = x(float(e["t"]))
        d.line([tx, top + 2, tx, top + h - 2], fill=(0, 0, 0))
        lanes.place(tx + 3, repr(e["text"]) if e["text"] else "(nothing)", "black")
    boxes += lanes.boxes

    # turn spans under the assistant audio: thin = thinking, thick = audio flowing
    top, h = tops["assistant heard"]
    started: dict[int, float] = {}
    lanes = Lanes(d, small, top + 1, 1)
    for e in events:
        turn = e.get("turn")
        if e["type"] == "turn_started" and turn is not None:
            started[int(turn)] = float(e["t"])
            lanes.place(x(float(e["t"])) + 2, f"turn {turn}", "black")
        elif e["type"] in ("turn_cancelled", "turn_completed") and turn in started:
            c = TURN_COLORS[(int(turn) - 1) % len(TURN_COLORS)]
            d.line([x(started.pop(int(turn))), top + h - 3, x(float(e["t"])), top + h - 3],
                   fill=c, width=2)  # fmt: skip

    # floor: pauses (orange span), ducks (yellow span below), barge-ins (red line through every
    # row), resumes and restores (green triangles), clears
    boxes += lanes.boxes
    top, h = tops["floor"]
    paused_at: dict[int, float] = {}
    ducked_at: dict[int, float] = {}
    lanes = Lanes(d, small, top + 22, 2)
    for e in events:
        t, turn, kind = float(e["t"]), int(e.get("turn") or 0), e["type"]
        if kind == "output_ducked":
            ducked_at[turn] = t
        elif kind in ("output_restored", "barge_in", "turn_cancelled", "turn_completed") and (
            turn in ducked_at
        ):
            d.rectangle([x(ducked_at.pop(turn)), top + 14, x(t), top + 20], fill=DUCK_COLOR)
        if kind == "output_paused":
            paused_at[turn] = t
        elif kind in ("output_resumed", "barge_in", "turn_cancelled") and turn in paused_at:
            d.rectangle([x(paused_at.pop(turn)), top + 6, x(t), top + 18],
                        fill=(250, 170, 60))  # fmt: skip
        if kind == "barge_in":
            d.line([x(t), TITLE_H, x(t), plot_bottom], fill=(220, 0, 0), width=2)
            lanes.place(x(t) + 3, "barge-in", (200, 0, 0))
        elif kind == "output_resumed":
            _resumed_mark(d, x(t), top + 4)
            lanes.place(x(t) + 3, "resumed", (0, 130, 0))
        elif kind == "output_restored":
            _resumed_mark(d, x(t), top + 4, fill=(120, 190, 0))
            lanes.place(x(t) + 3, "restored", (90, 140, 0))
        elif kind == "output_cleared":
            _cleared_mark(d, x(t), top + 4)
    boxes += lanes.boxes

    # time axis
    step = next(s for s in (0.5, 1, 2, 5, 10, 20, 30, 60) if span / s <= 30)
    for i in range(int(span / step) + 1):
        t = i * step
        d.line([x(t), plot_bottom, x(t), plot_bottom + 5], fill="black")
        d.text((x(t) - 6, plot_bottom + 6), f"{t:g}s", fill="black", font=small)
        d.line([x(t), TITLE_H, x(t), plot_bottom], fill=(225, 225, 225))

    # legend: every mark drawn above, as drawn
    ly = plot_bottom + AXIS_H + 6
    lx = LEFT
    for label, how in LEGEND:
        w = 24 + round(d.textlength(label, font=small))
        if lx + w > WIDTH - 20:
            lx, ly = LEFT, ly + 18
        if how == "vad_end":
            d.line([lx + 5, ly + 1, lx + 5, ly + 15], fill=(0, 0, 120))
        elif how == "transcript":
            d.line([lx + 5, ly + 1, lx + 5, ly + 15], fill=(0, 0, 0))
        elif how == "turn":
            d.line([lx, ly + 8, lx + 10, ly + 8], fill=TURN_COLORS[0], width=2)
        elif how == "resumed":
            _resumed_mark(d, lx, ly)
        elif how == "restored":
            _resumed_mark(d, lx, ly, fill=(120, 190, 0))
        elif how == "barge_in":
            d.line([lx + 5, ly, lx + 5, ly + 16], fill=(220, 0, 0), width=2)
        elif how == "cleared":
            _cleared_mark(d, lx + 5, ly + 3)
        else:
            d.rectangle([lx, ly + 3, lx + 10, ly + 13], fill=how)
        d.text((lx + 14, ly), label, fill="black", font=small)
        lx += w
    img.save(path)
    return boxes


def _resumed_mark(
    d: ImageDraw.ImageDraw, x0: int, y0: int, fill: tuple[int, int, int] = (0, 150, 0)
) -> None:
    d.polygon([(x0, y0), (x0 + 8, y0 + 8), (x0, y0 + 16)], fill=fill)


def _cleared_mark(d: ImageDraw.ImageDraw, x0: int, y0: int) -> None:
    d.rectangle([x0 - 2, y0, x0 + 2, y0 + 10], fill=(120, 0, 0))


# -- compare.png ---------------------------------------------------------------------------------

POLICY_COLORS = [(70, 130, 180), (200, 90, 40), (40, 150, 70), (150, 60, 160), (190, 150, 30),
                 (90, 90, 90), (200, 40, 90), (30, 150, 160), (120, 80, 40)]  # fmt: skip


def render_comparison(
    path: str | Path, summaries: Mapping[str, Mapping[str, Any]], *, scenarios: int
) -> None:
    """Small multiples: one panel per headline metric, one bar per policy, each labelled with
    its value and denominator (a missing bar is a metric with nothing to count)."""
    from bargein.research.experiment import HEADLINE, cell, headline_value

    policies = list(summaries)
    cols = 4
    rows = math.ceil(len(HEADLINE) / cols)
    pw, ph = 390, 70 + 22 * len(policies)
    img = Image.new("RGB", (cols * pw + 20, 40 + rows * ph + 10), "white")
    d = ImageDraw.Draw(img)
    font, small = _font(14), _font(11)
    d.text((10, 10), f"{len(policies)} policies x {scenarios} scenarios", fill="black", font=font)
    for i, (title, key, kind) in enumerate(HEADLINE):
        ox, oy = 10 + (i % cols) * pw, 40 + (i // cols) * ph
        d.rectangle([ox, oy, ox + pw - 10, oy + ph - 10], outline=(200, 200, 200))
        d.text((ox + 6, oy + 4), title, fill="black", font=font)
        values = [headline_value(dict(summaries[p]), key, kind) for p in policies]
        top = max([v for v in values if v is not None] + [1e-9])
        if kind == "rate":
            top = max(top, 1.0)
        bar_x, bar_w = ox + 110, pw - 10 - 110 - 120
        for j, (p, v) in enumerate(zip(policies, values, strict=True)):
            y = oy + 30 + j * 22
            d.text((ox + 6, y), p[:16], fill="black", font=small)
            if v:  # None: nothing to count; 0: no bar
                w = max(1, round(bar_w * v / top))
                d.rectangle([bar_x, y + 2, bar_x + w, y + 14],
                            fill=POLICY_COLORS[j % len(POLICY_COLORS)])  # fmt: skip
            d.text((bar_x + bar_w + 6, y), cell(dict(summaries[p]), key, kind), fill="black",
                   font=small)  # fmt: skip
    img.save(path)
