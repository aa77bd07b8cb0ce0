"""End of turn by meaning, the I/O part: load the Smart Turn model once per process, and run
each `AskTurn` as engine compute (`run_cpu`: a worker thread under the process-wide limiter), or
on the virtual clock on the loop, charged the session's fixed `VadConfig.turn_charge_ms` (or, when
that is None, its measured time, as `run_cpu` charges), handing the `TurnVerdict` back to the mic
task through its own input queue, behind the audio that arrived meanwhile.

Why a fixed charge: the verdict's arrival decides where the utterance ends, and whether a user who
resumes just after the check has the decision discarded; charged at its measured time, two
virtual-clock runs of one recording segmented the user differently (the time varies with load).

The mic task never waits for the model: the VAD, the floor and STT go on while it runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
import trio

from bargein.decide.features import RATE
from bargein.decide.smart_turn import (
    SmartTurn,
    SmartTurnUnavailable,
    TurnPrediction,
    unavailable_reason,
)
from bargein.runtime.broadcast import DropOldestQueue
from bargein.runtime.bus import EventBus
from bargein.runtime.compute import compute_mode, run_cpu

from .end_of_turn import AskTurn, TurnVerdict
from .vad import MicInput, VadConfig

log = logging.getLogger(__name__)

_model: SmartTurn | None = None
_model_lock = threading.Lock()
_QUEUED = 2  # requests waiting for the model; more means it cannot keep up (then: silence)


def shared_model() -> SmartTurn:
    """The process's one loaded model (onnxruntime sessions are safe to share across threads)."""
    global _model
    with _model_lock:
        if _model is None:
            model = SmartTurn()
            model.predict(np.zeros(RATE, np.float32))  # onnxruntime's first run costs several
            _model = model
        return _model


@dataclass(frozen=True, slots=True)
class SessionModel:
    """The process's model as one session uses it: `charge_s`, the fixed virtual-clock cost of a
    decision (None: its measured time)."""

    model: SmartTurn
    charge_s: float | None

    async def predict(self, request: AskTurn) -> TurnPrediction:
        if self.charge_s is not None and compute_mode() == "inline":
            # On the loop, as run_cpu's inline mode, but charged the stated cost, not the
            # measured one: the verdict lands at the same session time on every run.
            prediction = self.model.predict(request.audio, request.rate)
            await trio.sleep(self.charge_s)
            return prediction
        return await run_cpu(self.model.predict, request.audio, request.rate)


async def load_end_of_turn(config: VadConfig, bus: EventBus) -> SessionModel | None:
    """The model a session with `end_of_turn="smart_turn"` uses, or None: silence endpointing
    (also the fallback, with an `error` event and a log line saying why, when the model or
    onnxruntime is missing or fails to load)."""
    if config.end_of_turn != "smart_turn":
        return None
    charge = None if config.turn_charge_ms is None else config.turn_charge_ms / 1000
    reason = unavailable_reason()
    if reason is None:
        try:
            model = _model if _model is not None else await trio.to_thread.run_sync(shared_model)
            return SessionModel(model, charge)
        except Exception as exc:  # a broken file or runtime: the session still runs
            reason = f"{type(exc).__name__}: {exc}"
    message = f"end_of_turn smart_turn unavailable, using silence endpointing: {reason}"
    log.warning(message)
    bus.error("end_of_turn", SmartTurnUnavailable(message), fatal=False)
    return None


def _never(ask: AskTurn) -> None:
    raise RuntimeError("no end-of-turn model in this session")


@asynccontextmanager
async def turn_model(
    model: SessionModel | None,
    verdicts: DropOldestQueue[MicInput],
    bus: EventBus,
    wanted: Callable[[int], bool],
) -> AsyncIterator[Callable[[AskTurn], None]]:
    """A task serving the model while the block runs; yields `ask(request)`, which never
    blocks. `wanted(id)` says whether a queued request is still current when its turn comes."""
    if model is None:
        yield _never
        return
    send, receive = trio.open_memory_channel[AskTurn](_QUEUED)

    def ask(request: AskTurn) -> None:
        try:
            send.send_nowait(request)
        except trio.WouldBlock:  # the model is behind: this pause ends by silence
            if not verdicts.closed:
                verdicts.put_nowait(TurnVerdict(request.id, None))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, model, receive, verdicts, bus, wanted)
        try:
            yield ask
        finally:
            # A decision in its worker thread finishes first (run_cpu does not abandon it).
            nursery.cancel_scope.cancel()


async def _serve(
    model: SessionModel,
    requests: trio.MemoryReceiveChannel[AskTurn],
    verdicts: DropOldestQueue[MicInput],
    bus: EventBus,
    wanted: Callable[[int], bool],
) -> None:
    async with requests:
        async for request in requests:
            if not wanted(request.id):
                continue  # the user resumed while it queued
            try:
                p = await model.predict(request)
            except Exception as exc:  # this pause falls back to silence endpointing
                bus.error("end_of_turn", exc, fatal=False)
                verdict = TurnVerdict(request.id, None)
            else:
                verdict = TurnVerdict(
                    request.id, p.probability, round(p.features_ms + p.inference_ms, 3)
                )
            if verdicts.closed:
                return
            verdicts.put_nowait(verdict)
