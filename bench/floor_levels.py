"""What listening to levels costs per 20 ms frame while the user speaks (duck_classify): the mic's
LevelTap (with the side-talk spectral shapes, numpy) and the floor machine taking one 100 ms
batch (`FloorMachine.levels`, classifier on). ``python bench/floor_levels.py`` prints JSON
(microseconds per frame, median of repeats)."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bargein.actors.floor_machine import FloorMachine
from bargein.actors.level_tap import LevelTap
from bargein.actors.policy import InterruptionPolicy
from bargein.runtime.messages import AudioFrame, SpeechStarted

FRAME = 320
BATCH = 5


def per_frame_us(run: object, frames: int, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()  # type: ignore[operator]
        times.append((time.perf_counter() - t0) / frames * 1e6)
    return round(statistics.median(times), 2)


def main() -> int:
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal(FRAME * 500) * 2000).astype(np.int16)
    frames = [AudioFrame(pcm[i * FRAME : (i + 1) * FRAME], i * FRAME, 16000, -20.0)
              for i in range(500)]

    def tap(shapes: bool) -> None:
        t = LevelTap(shapes=shapes)
        t.event(SpeechStarted(0.0, 0.0))
        for i, f in enumerate(frames):
            t.frame(f)
            if i % BATCH == BATCH - 1:
                t.take()

    policy = InterruptionPolicy(overlap_action="duck", classifier=True, side_talk=True)
    shapes = list(np.zeros((BATCH, 16), np.float32))

    def floor() -> None:
        m = FloorMachine(policy)
        m.speech_started(0.2, 0.0)  # no turn: the user's own turn, calibrating
        for k in range(len(frames) // BATCH):
            times = [k * 0.1 + (i + 1) * 0.02 for i in range(BATCH)]
            m.levels(times[-1], times, [-20.0] * BATCH, shapes)

    out = {
        "level_tap_us_per_frame": per_frame_us(lambda: tap(False), len(frames)),
        "level_tap_with_shapes_us_per_frame": per_frame_us(lambda: tap(True), len(frames)),
        "floor_levels_us_per_frame": per_frame_us(floor, len(frames)),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
