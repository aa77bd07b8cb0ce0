"""`TelephonyServer`: one carrier media stream -> one `Session`, the same API `/ws` drives.

Per call: read frames until `start` (bounded), take the session options from its custom
parameters, run the session at 8 kHz in and out (the session resamples for its engines with
the dsp `Resampler`; the codec converts G.711 with the dsp tables), and until the session ends
feed it what the carrier sends: `media` -> `push_audio`, the echo of one of our marks ->
`report_playback` (heard truth), `dtmf` -> a status event and typed text, `stop` -> the end.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from bargein.engines.base import Engines
from bargein.presets import PRESETS, preset
from bargein.runtime.bus import EventHub
from bargein.runtime.events import EventType
from bargein.session import Session, SessionConfig, open_session
from bargein.transports.protocol.errors import Invalid
from bargein.transports.protocol.fields import options as checked_options
from bargein.transports.protocol.messages import OptionValue
from bargein.transports.telephony.carriers import Carrier
from bargein.transports.telephony.codec import (
    SAMPLE_RATE,
    UNSUPPORTED_CODEC,
    CarrierCodec,
    Dtmf,
    MarkEcho,
    Media,
    Rejected,
    Start,
    Stop,
)
from bargein.transports.telephony.dtmf import DtmfCollector, dtmf_text
from bargein.transports.telephony.marks import Dropped, MarkStats, MarkTracker, Played, Unknown
from bargein.transports.telephony.transport import (
    CarrierStalled,
    TelephonyLimits,
    TelephonyTransport,
    WriteLog,
)
from bargein.transports.websocket.transport import WebSocketLike

log = logging.getLogger("bargein.transports.telephony")

EnginesFactory = Callable[[Mapping[str, OptionValue]], Engines]

# Custom parameters a call may set (docs/telephony.md); any other parameter is ignored.
CALL_OPTIONS: Final = frozenset({"voice", "rate_wpm", "pitch", "policy"})
_INTEGER_OPTIONS: Final = frozenset({"rate_wpm", "pitch"})
# How far ahead of real time our media may be (the carrier's jitter cushion; a barge-in's
# `clear` flushes it). Every ms of it the caller may hear after a barge-in if `clear` is lost.
DEFAULT_LEAD_MS: Final = 80
PLAYBACK_GRACE_MS: Final = 1000


class CallRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def call_options(parameters: Mapping[str, str]) -> dict[str, OptionValue]:
    """Session options from `customParameters` (all strings on the wire), checked with the
    protocol's option validator; raises `CallRefused("bad_field", ...)`."""
    chosen: dict[str, Any] = {}
    for name in CALL_OPTIONS & parameters.keys():
        value = parameters[name]
        if name in _INTEGER_OPTIONS:
            if not value.strip().lstrip("-").isdigit() or len(value) > 6:
                raise CallRefused("bad_field", f"option {name!r} must be an integer")
            chosen[name] = int(value)
        else:
            chosen[name] = value
    if "policy" in chosen and chosen["policy"] not in PRESETS:
        raise CallRefused("bad_field", f"option 'policy' must be a preset: {', '.join(PRESETS)}")
    try:
        return checked_options({"options": chosen})
    except Invalid as bad:
        raise CallRefused(bad.code.value, bad.message) from None


@dataclass(slots=True)
class CallRecord:
    """What happened on one call (no audio, no words the caller said)."""

    carrier: str
    session_id: str | None = None
    end_reason: str | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)
    rejections: Counter[str] = field(default_factory=Counter)
    marks: MarkStats = field(default_factory=MarkStats)
    written: WriteLog = field(default_factory=WriteLog)
    dtmf: list[str] = field(default_factory=list)
    # Each mark echo as we judged it: (turn, samples, "played" | "dropped"), oldest first.
    echoes: deque[tuple[int, int, str]] = field(default_factory=lambda: deque(maxlen=4096))
    media_in: int = 0
    ended: trio.Event = field(default_factory=trio.Event)


@dataclass(slots=True)
class TelephonyStats:
    connections: int = 0
    calls: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    ended: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    stalled: int = 0

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in ("refused", "ended", "rejections"):
            out[name] = dict(getattr(self, name))
        return out


class TelephonyServer:
    """Serves carrier media streams; one `handle(ws, carrier)` call per stream."""

    def __init__(
        self,
        engines_factory: EnginesFactory,
        *,
        hub: EventHub | None = None,
        token: str | None = None,
        lead_ms: int = DEFAULT_LEAD_MS,
        limits: TelephonyLimits | None = None,
        max_calls: int = 32,
        others_running: Callable[[], int] = lambda: 0,
        shutting_down: trio.Event | None = None,
        system_prompt: str | None = None,
        default_policy: str | None = None,
    ) -> None:
        self.engines_factory = engines_factory
        # The preset of calls whose parameters name none (None: SessionConfig's own settings);
        # an unknown name fails here, at start-up.
        self.default_policy = (
            default_policy if default_policy is None else preset(default_policy).name
        )
        self.hub = hub if hub is not None else EventHub()
        self.token = token
        self.lead_ms = lead_ms
        self.limits = limits or TelephonyLimits()
        self.max_calls = max_calls
        # Sessions of other transports on the same server share `max_calls`.
        self.others_running = others_running
        self.shutting_down = shutting_down if shutting_down is not None else trio.Event()
        self.system_prompt = system_prompt
        self.stats = TelephonyStats()
        self.calls: dict[str, CallRecord] = {}
        self.records: deque[CallRecord] = deque(maxlen=256)  # ended calls, newest last
        self._idle = trio.Event()
        self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def handle(self, ws: WebSocketLike, carrier: Carrier, *, authorized: bool) -> None:
        """Serve one accepted stream until the call ends. `authorized`: the upgrade already
        proved itself (a valid Twilio signature or token); else `start` must carry `token`."""
        self.stats.connections += 1
        codec = CarrierCodec(carrier)
        record = CallRecord(carrier.name)
        close_code = 1008  # refused until the call is served
        try:
            start = await self._handshake(ws, codec)
            options = self._admit(start, authorized)
            engines = self.engines_factory(options)
        except CallRefused as refused:
            self.stats.refused[refused.code] += 1
            log.info("%s call refused: %s (%s)", carrier.name, refused.code, refused)
        except (TypeError, ValueError) as exc:
            self.stats.refused["bad_field"] += 1
            log.info("%s call refused: bad options (%s)", carrier.name, exc)
        else:
            await self._serve(ws, codec, start, options, engines, record)
            close_code = 1000 if record.end_reason in ("stop", "carrier_gone") else 1011
        finally:
            self.stats.rejections.update(codec.rejections)
            record.rejections.update(codec.rejections)
            with trio.CancelScope(shield=True), trio.move_on_after(self.limits.close_timeout):
                try:
                    await ws.close(close_code, "")
                except Exception as exc:  # the carrier hung up already
                    log.debug("telephony close failed: %r", exc)

    async def _handshake(self, ws: WebSocketLike, codec: CarrierCodec) -> Start:
        with trio.move_on_after(self.limits.handshake_timeout):
            while True:
                for message in codec.feed(await ws.receive()):
                    if isinstance(message, Start):
                        return message
                    if isinstance(message, Rejected) and message.code == UNSUPPORTED_CODEC:
                        raise CallRefused(UNSUPPORTED_CODEC, message.detail)
                    if isinstance(message, Stop):
                        raise CallRefused("stopped", "'stop' before 'start'")
                if sum(codec.rejections.values()) > self.limits.max_rejections:
                    raise CallRefused("too_many_errors", "no valid 'start'")
        timeout = self.limits.handshake_timeout
        raise CallRefused("handshake_timeout", f"no 'start' within {timeout} s")

    def _admit(self, start: Start, authorized: bool) -> dict[str, OptionValue]:
        if not authorized and self.token is not None:
            given = start.parameters.get("token", "")
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                raise CallRefused("unauthorized", "a valid 'token' parameter is required")
        if self.shutting_down.is_set():
            raise CallRefused("shutting_down", "the server is stopping")
        if len(self.calls) + self.others_running() >= self.max_calls:
            raise CallRefused("server_busy", f"{self.max_calls} sessions running")
        return call_options(start.parameters)

    def _config(self, session_id: str, options: Mapping[str, OptionValue]) -> SessionConfig:
        config = SessionConfig(
            input_rate=SAMPLE_RATE,
            output_rate=SAMPLE_RATE,
            output_frame_ms=20,  # one media message per frame
            egress_lead_ms=self.lead_ms,
            # The carrier plays behind us by its own jitter buffer and the network: the last
            # word's mark may come back this late and still count.
            playback_grace_ms=PLAYBACK_GRACE_MS,
            system_prompt=self.system_prompt,
            session_id=session_id,
        )
        # `call_options` refused any other name; no name: the server's default preset.
        name = options.get("policy", self.default_policy)
        return config if name is None else preset(str(name)).apply(config)

    async def _serve(
        self,
        ws: WebSocketLike,
        codec: CarrierCodec,
        start: Start,
        options: Mapping[str, OptionValue],
        engines: Engines,
        record: CallRecord,
    ) -> None:
        session_id = "call-" + secrets.token_hex(6)
        record.session_id = session_id
        marks = MarkTracker()
        transport = TelephonyTransport(codec, marks, self.limits)
        self.calls[session_id] = record
        self.stats.calls += 1
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        session: Session | None = None
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(transport.run_writer, ws.send)
                async with open_session(
                    self._config(session_id, options), engines, transport, hub=self.hub
                ) as session:
                    transport.report = session.report_playback
                    for code, count in codec.rejections.items():  # before `start`
                        for _ in range(count):
                            session.reject(code, "before 'start'")
                    async with trio.open_nursery() as inner:
                        inner.start_soon(self._read, ws, codec, marks, session, record)
                        inner.start_soon(self._stop_on_shutdown, session)
                        await session.wait_ended()
                        inner.cancel_scope.cancel()
                record.end_reason = session.end_reason
                if record.end_reason != "stop":  # after `stop` nobody is listening
                    transport.close()
                    with trio.move_on_after(self.limits.close_timeout):
                        await transport.wait_drained()
                nursery.cancel_scope.cancel()
        except* CarrierStalled as group:
            self.stats.stalled += 1
            record.end_reason = "carrier_stalled"
            log.info("closing a stalled carrier stream: %s", group.exceptions[0])
        finally:
            record.end_reason = (
                record.end_reason
                or (session.end_reason if session is not None else None)
                or "closed"
            )
            record.marks = marks.stats
            record.written = transport.written
            record.turns = [
                {
                    "turn": e.turn,
                    "status": "completed" if e.type is EventType.TURN_COMPLETED else "interrupted",
                    "heard": e.data.get("heard_text", ""),
                    "heard_ms": e.data.get("heard_ms", 0),
                }
                for e in transport.events
            ]
            self.stats.ended[record.end_reason] += 1
            del self.calls[session_id]
            self.records.append(record)
            if not self.calls:
                self._idle.set()
            record.ended.set()

    async def _read(
        self,
        ws: WebSocketLike,
        codec: CarrierCodec,
        marks: MarkTracker,
        session: Session,
        record: CallRecord,
    ) -> None:
        collector = DtmfCollector()
        typed = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._dtmf_timeouts, collector, lambda: typed, session, record)
            done = False
            while not done:
                try:
                    with trio.move_on_after(self.limits.silence_timeout) as quiet:
                        frame = await ws.receive()
                except Exception as exc:  # the carrier went away without `stop`
                    log.info("carrier stream lost: %r", exc)
                    session.close("carrier_gone")
                    break
                if quiet.cancelled_caught:
                    log.info("carrier silent for %s s: the call ends", self.limits.silence_timeout)
                    session.close("carrier_silent")
                    break
                for message in codec.feed(frame):
                    if isinstance(message, Media):
                        record.media_in += 1
                        session.push_audio(message.pcm)
                    elif isinstance(message, MarkEcho):
                        echo = marks.echoed(message.name)
                        if isinstance(echo, Played):
                            record.echoes.append((echo.turn, echo.samples, "played"))
                            session.report_playback(echo.turn, echo.samples)
                        elif isinstance(echo, Dropped):  # our clear dropped it: not heard
                            record.echoes.append((echo.turn, echo.samples, "dropped"))
                        else:
                            assert isinstance(echo, Unknown)
                            session.reject("unknown_mark", "an echo of a mark we did not send")
                    elif isinstance(message, Dtmf):
                        session.bus.emit(
                            EventType.STATUS, text=f"dtmf {message.digit}", digit=message.digit
                        )
                        entry = collector.press(message.digit, trio.current_time())
                        if entry is not None:
                            self._typed(session, record, entry)
                        typed.set()
                        typed = trio.Event()
                    elif isinstance(message, Stop):
                        session.close("stop")
                        done = True
                        break
                    elif isinstance(message, Rejected):
                        session.reject(message.code, message.detail)
                if not done and sum(codec.rejections.values()) > self.limits.max_rejections:
                    session.close("protocol_error")
                    done = True
            # The call is over: pending DTMF timers have nobody left to type to.
            nursery.cancel_scope.cancel()

    @staticmethod
    def _typed(session: Session, record: CallRecord, digits: str) -> None:
        record.dtmf.append(digits)
        session.push_text(dtmf_text(digits))

    async def _dtmf_timeouts(
        self,
        collector: DtmfCollector,
        pressed: Callable[[], trio.Event],
        session: Session,
        record: CallRecord,
    ) -> None:
        """End an entry when no key came for the collector's gap."""
        while True:
            due = collector.due()
            if due is None:
                await pressed().wait()
                continue
            with trio.move_on_at(due):
                await pressed().wait()
                continue
            entry = collector.expire(trio.current_time())
            if entry is not None:
                self._typed(session, record, entry)

    async def _stop_on_shutdown(self, session: Session) -> None:
        await self.shutting_down.wait()
        session.close("shutdown")
