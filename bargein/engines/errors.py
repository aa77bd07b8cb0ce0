"""Errors that engines raise. Vendor exceptions are translated into these at the engine's edge,
so the runtime handles one small family and never imports an SDK to catch its errors."""

from __future__ import annotations


class EngineError(Exception):
    """An engine could not do its work (service down, bad configuration, bad response)."""


class PlannerError(EngineError):
    """The planner could not produce (or finish) a reply.

    When raised after some of the reply was already streamed, the runtime keeps that part as the
    heard-so-far text and reports the error; nothing is retried behind the user's back.
    """


class SttError(EngineError):
    """Speech recognition failed for an utterance."""


class TtsError(EngineError):
    """Speech synthesis failed for a sentence."""
