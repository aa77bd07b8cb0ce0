"""`SessionServer`: what is shared across connections, and the handler of one connection.

It owns the engines factory, the event hub, the session limit, the conversations that can be
resumed, and the counters `/healthz` reports. It works with any object that has quart's
websocket methods (`accept`, `receive`, `send`, `close`), which is how the tests drive it
without a server too.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import trio

from bargein.engines.base import Engines
from bargein.runtime.bus import EventHub
from bargein.session import Session, SessionConfig, open_session
from bargein.store import MemoryStore, Store, StoreUnavailable
from bargein.transports.protocol import (
    SUPPORTED_RATES,
    Capabilities,
    ErrorCode,
    ErrorMessage,
    OptionValue,
    ServerProtocol,
    SessionStart,
    SessionStarted,
    max_audio_bytes,
)
from bargein.transports.websocket.connection import serve_connection
from bargein.transports.websocket.conversations import (
    Conversation,
    Conversations,
    ResumeRefused,
    TurnRecorder,
    find_or_load,
    heard_history,
    record_of,
)
from bargein.transports.websocket.inbound import (
    Activity,
    handshake,
    known_policy,
    read_input,
    stop_on_shutdown,
    stop_when_idle,
)
from bargein.transports.websocket.limits import ConnectionLimits, is_loopback
from bargein.transports.websocket.stats import ServerStats, one_line
from bargein.transports.websocket.transport import WebSocketLike, WebSocketTransport

log = logging.getLogger("bargein.transports")

EnginesFactory = Callable[[Mapping[str, OptionValue]], Engines]


def default_session_config(start: SessionStart, session_id: str) -> SessionConfig:
    return SessionConfig(
        input_rate=start.sample_rate,
        output_rate=start.effective_output_rate,
        session_id=session_id,
        # A little audio in flight absorbs network jitter; `clear` flushes it on barge-in.
        egress_lead_ms=60,
    )


@dataclass(eq=False, slots=True)
class _Owner:
    """The connection serving a conversation: what a takeover needs to end it."""

    transport: WebSocketTransport
    client: str = ""  # the peer's address, for the per-client session limit
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    ended: trio.Event = field(default_factory=trio.Event)
    session: Session | None = None


class SessionServer:
    """Serves voice sessions over WebSockets; one `handle(ws)` call per connection."""

    def __init__(
        self,
        engines_factory: EnginesFactory,
        *,
        hub: EventHub | None = None,
        token: str | None = None,
        max_sessions: int = 32,
        max_sessions_per_client: int = 8,
        remembered_conversations: int = 256,
        store: Store | None = None,
        limits: ConnectionLimits | None = None,
        session_config: Callable[[SessionStart, str], SessionConfig] = default_session_config,
        client_options: Mapping[str, str] | None = None,  # name -> what it does
        policies: Mapping[str, str] | None = None,  # capabilities: name -> what it does
    ) -> None:
        self.engines_factory = engines_factory
        self.hub = hub if hub is not None else EventHub()
        self.token = token
        self.max_sessions = max_sessions
        # Sessions of the server's other endpoints (calls, /v1/realtime) that share
        # `max_sessions` with this one's (wired by the app).
        self.others_running: Callable[[], int] = lambda: 0
        # Sessions one client address may hold at once (0: no limit). Behind a reverse proxy
        # every client has the proxy's address: raise it or set 0 there. Loopback clients (a
        # local page, load tests) are not limited unless `limit_loopback`.
        self.max_sessions_per_client = max_sessions_per_client
        self.limit_loopback = False
        self._per_client: Counter[str] = Counter()
        self.limits = limits or ConnectionLimits()
        self.session_config = session_config
        self.client_options = dict(client_options or {})
        self.policies = dict(policies or {})
        self.sessions: dict[str, Session] = {}
        self._starting: set[_Owner] = set()
        self._idle = trio.Event()
        self._idle.set()
        self.stats = ServerStats()
        self.shutting_down = trio.Event()
        self.conversations = Conversations(remembered_conversations)
        # Shared with the other workers (docs/deploy.md): conversation records, the limit.
        self.store = store if store is not None else MemoryStore()

    async def wait_idle(self) -> None:
        """Return once no session is running (each ended one is remembered for resumption)."""
        await self._idle.wait()

    def shutdown(self) -> None:
        """Tell every connection to end its session (with a `shutting_down` error)."""
        self.shutting_down.set()

    def capabilities(self, sample_rate: int) -> Capabilities:
        return Capabilities(
            sample_rates=tuple(sorted(SUPPORTED_RATES)),
            max_audio_bytes=max_audio_bytes(sample_rate),
            options=self.client_options,
            policies=tuple(self.policies),
            policy_descriptions={k: v for k, v in self.policies.items() if v},
        )

    async def handle(self, ws: WebSocketLike, *, authorized: bool = False) -> None:
        """Serve one connection until the session ends, the peer leaves or misbehaves.
        `authorized`: the app already checked a header or subprotocol token (docs/web.md)."""
        self.stats.connections += 1
        self.stats.connections_open += 1
        try:
            await self._handle(ws, authorized)
        finally:
            self.stats.connections_open -= 1

    async def _handle(self, ws: WebSocketLike, authorized: bool) -> None:
        client = str(getattr(ws, "remote_addr", None) or "unknown")

        async def converse(protocol: ServerProtocol, transport: WebSocketTransport) -> None:
            await self._converse(ws, protocol, transport, authorized, client)

        await serve_connection(ws, self.limits, self.stats, converse)

    def _token_ok(self, given: str | None) -> bool:
        if self.token is None:
            return True
        # Bytes: compare_digest raises TypeError for non-ASCII str.
        return given is not None and secrets.compare_digest(
            given.encode("utf-8", "replace"), self.token.encode()
        )

    def _refuse(self, transport: WebSocketTransport, code: ErrorCode, message: str) -> None:
        self.stats.refused[code.value] += 1
        transport.send_message(ErrorMessage(code.value, message, fatal=True))

    async def _resumable(
        self, start: SessionStart, transport: WebSocketTransport
    ) -> Conversation | None:
        """The conversation `start` may resume, or None (told why, counted: a new one starts)."""
        if start.session_id is None:
            return None
        try:
            return await find_or_load(
                self.conversations, self.store, start.session_id, start.resume_secret
            )
        except ResumeRefused as refused:
            self.stats.resume_refused[refused.code.value] += 1
            transport.send_message(
                ErrorMessage(refused.code.value, f"{refused.message}; starting a new one")
            )
            return None

    async def _take_over(self, conversation: Conversation) -> None:
        """End the connection that serves `conversation` now and wait (bounded) until it has
        handed back where it got to."""
        while isinstance(previous := conversation.owner, _Owner):
            self.stats.takeovers += 1
            previous.transport.send_message(
                ErrorMessage(
                    ErrorCode.SESSION_TAKEN_OVER.value,
                    "a newer connection resumed this session",
                    fatal=True,
                )
            )
            if previous.session is not None:
                previous.session.close("taken_over")
            else:
                previous.scope.cancel()
            with trio.move_on_after(2 * self.limits.close_timeout + 1.0) as late:
                await previous.ended.wait()
            if late.cancelled_caught:
                log.warning("session %s did not end in time for its takeover", conversation)
                return

    async def _converse(
        self,
        ws: WebSocketLike,
        protocol: ServerProtocol,
        transport: WebSocketTransport,
        authorized: bool = False,
        client: str = "unknown",
    ) -> None:
        start: SessionStart | None = None
        with trio.move_on_after(self.limits.handshake_timeout) as late:
            start = await handshake(ws, protocol, transport)
        if late.cancelled_caught:
            self.stats.handshake_timeouts += 1
            transport.send_message(
                ErrorMessage(
                    ErrorCode.HANDSHAKE_TIMEOUT.value,
                    f"no valid 'session.start' within {self.limits.handshake_timeout:g} s",
                    fatal=True,
                )
            )
        if start is None:
            return
        if not authorized and not self._token_ok(start.token):
            self._refuse(transport, ErrorCode.UNAUTHORIZED, "a valid 'token' is required")
            return
        if self.shutting_down.is_set():
            self._refuse(transport, ErrorCode.SHUTTING_DOWN, "the server is stopping")
            return
        resumed = await self._resumable(start, transport)
        # A takeover frees the slot of the session it ends.
        freed = int(resumed is not None and resumed.owner is not None)
        running = len(self.sessions) + len(self._starting) + self.others_running()
        if running - freed >= self.max_sessions:
            self._refuse(transport, ErrorCode.SERVER_BUSY, f"{self.max_sessions} sessions running")
            return
        limit = self.max_sessions_per_client
        # Taking over one's own session does not count twice.
        taken = resumed.owner if resumed is not None else None
        same = int(isinstance(taken, _Owner) and taken.client == client)
        limited = self.limit_loopback or not is_loopback(client)
        if limit and limited and self._per_client[client] - same >= limit:
            self._refuse(
                transport, ErrorCode.TOO_MANY_SESSIONS, f"{limit} sessions from this address"
            )
            return
        try:
            engines = self.engines_factory(start.options)
        except (TypeError, ValueError) as exc:
            self._refuse(transport, ErrorCode.BAD_FIELD, f"options: {exc}")
            return
        start = known_policy(start, self.policies, protocol, transport)
        owner = _Owner(transport, client)
        self._starting.add(owner)
        self._per_client[client] += 1
        if self._idle.is_set():
            self._idle = trio.Event()
        try:
            with owner.scope:
                if resumed is not None:
                    await self._take_over(resumed)
                    self.conversations.claim(resumed, owner)
                    self.stats.sessions_resumed += 1
                conversation = resumed or self.conversations.new(owner)
                await self._serve(
                    ws,
                    protocol,
                    transport,
                    start,
                    engines,
                    conversation,
                    owner,
                    resumed=bool(resumed),
                )
        finally:
            self._starting.discard(owner)
            self._per_client[client] -= 1
            if self._per_client[client] <= 0:
                del self._per_client[client]
            if owner.session is not None and self.sessions.get(owner.session.id) is owner.session:
                del self.sessions[owner.session.id]
            if not self.sessions and not self._starting:
                self._idle.set()
            owner.ended.set()

    async def _serve(
        self,
        ws: WebSocketLike,
        protocol: ServerProtocol,
        transport: WebSocketTransport,
        start: SessionStart,
        engines: Engines,
        conversation: Conversation,
        owner: _Owner,
        *,
        resumed: bool,
    ) -> None:
        """Run the session of `conversation` on this connection until it ends."""
        session_id = conversation.session_id
        config = dataclasses.replace(
            self.session_config(start, session_id),
            history=conversation.history,
            first_turn=conversation.next_turn,
            first_seq=conversation.next_seq,
        )
        session: Session | None = None
        try:
            admitted = await self.store.acquire_session(session_id, self.max_sessions)
        except StoreUnavailable:
            admitted = True  # the store is down: this worker's own limit (checked) holds
        if not admitted:
            self._refuse(
                transport, ErrorCode.SERVER_BUSY, f"{self.max_sessions} sessions on all workers"
            )
            return
        self.store.save_conversation(record_of(conversation))
        try:
            async with open_session(config, engines, transport, hub=self.hub) as session:
                session.bus.add_listener(TurnRecorder(self.store, conversation, session))
                owner.session = session
                self._starting.discard(owner)
                self.sessions[session_id] = session
                self.stats.sessions_started += 1
                transport.clock = session.bus.now
                # Nothing the client can see has happened yet (no input was read), so this is
                # still the first message of the session; the codec refuses anything earlier.
                started = transport.send_message(
                    SessionStarted(
                        session_id=session_id,
                        sample_rate=config.input_rate,
                        output_rate=config.output_rate,
                        max_audio_bytes=max_audio_bytes(config.input_rate),
                        resumed=resumed,
                        t=round(session.bus.now(), 6),
                        resume_secret=conversation.secret,
                        history=heard_history(conversation.history),
                        capabilities=self.capabilities(config.input_rate),
                        policy=config.preset,
                    )
                )
                if not started:  # our bug (logged); the client must not wait for it forever
                    transport.send_message(
                        ErrorMessage(ErrorCode.INTERNAL.value, "could not start", fatal=True)
                    )
                    return
                # Rejections before the session existed still belong to its record.
                for code, count in protocol.rejections.items():
                    for _ in range(count):
                        session.reject(code, "before session.start")
                activity = Activity(trio.current_time())
                idle = self.limits.idle_timeout
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(read_input, ws, protocol, transport, session, activity)
                    nursery.start_soon(stop_on_shutdown, transport, session, self.shutting_down)
                    nursery.start_soon(
                        stop_when_idle, transport, session, activity, self.stats, idle
                    )
                    await session.wait_ended()
                    nursery.cancel_scope.cancel()
        except Exception as exc:
            # A session that fails while starting (an engine that cannot start) or anything we
            # did not foresee: this connection is told and closed; the server goes on.
            log.error("session %s failed: %s", session_id, one_line(exc))
            transport.send_message(
                ErrorMessage(ErrorCode.SESSION_FAILED.value, "the session failed", fatal=True)
            )
        finally:
            if session is not None:
                self.stats.interrupts_stale += int(session.stats().get("interrupts_stale", 0))
                self.conversations.release(
                    conversation,
                    owner,
                    history=session.messages,
                    next_turn=max(config.first_turn, transport.last_turn + 1),
                    next_seq=config.first_seq + sum(session.bus.counts.values()),
                )
            else:
                self.conversations.release(
                    conversation,
                    owner,
                    history=conversation.history,
                    next_turn=conversation.next_turn,
                    next_seq=conversation.next_seq,
                )
            self.store.release_session(session_id)
            if conversation.owner is None:  # released: where it got to, for the other workers
                self.store.save_conversation(record_of(conversation))
