"""One labelled event into a backchannel classifier: the replay step its tests share."""

from __future__ import annotations

from bargein.decide.backchannel import BackchannelClassifier


def feed_event(clf: BackchannelClassifier, t: float, kind: str, value: object) -> None:
    """`kind` is onset, frame (`value`: level dBFS), partial or final (`value`: the words),
    end (the VAD's speech end) or tick (time passing)."""
    if kind == "onset":
        clf.onset(t)
    elif kind == "frame":
        clf.frame(t, float(value))  # type: ignore[arg-type]
    elif kind == "partial":
        clf.words(t, str(value))
    elif kind == "final":
        clf.words(t, str(value), final=True)
    elif kind == "end":
        clf.speech_end(t)
    elif kind == "tick":
        clf.tick(t)
    else:
        raise ValueError(f"unknown event kind {kind!r}")
