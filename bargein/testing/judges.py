"""An outside overlap judge for tests (`InterruptionPolicy.judge`, docs/research.md)."""

from __future__ import annotations

from bargein.actors.policy import OverlapView, Verdict


class RecordingJudge:
    """`hold` ("pause" or "duck") at once; cancel on two counted words; resume 0.5 s after the
    speech stops. Keeps every view it was shown, so a test can check what the floor told it."""

    def __init__(self, hold: Verdict = "pause") -> None:
        self.hold: Verdict = hold
        self.views: list[OverlapView] = []

    def judge(self, view: OverlapView) -> Verdict:
        self.views.append(view)
        if view.content_words >= 2:
            return "cancel"
        if view.stopped_at is not None and view.now >= view.stopped_at + 0.5:
            return "resume"
        return self.hold

    def deadline(self, view: OverlapView) -> float | None:
        return view.stopped_at + 0.5 if view.stopped_at is not None else None
